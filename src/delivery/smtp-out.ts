/**
 * One outbound SMTP connection: the socket side of the pure client
 * (src/smtp/client-session.ts, whose header is the contract). This file and
 * server/connection.ts are the only code that touch SMTP sockets.
 *
 * - RFC 5321 §4.5.3.2: reply timeouts come from the client per phase (capped
 *   by `maxReplyTimeoutMs` for tests); the TCP connect has its own timeout.
 * - RFC 3207: STARTTLS upgrades the existing socket with node:tls. SNI is the
 *   MX host NAME (RFC 6066 §3 forbids an IP there), and under `verify` the
 *   certificate is checked against that name, never the IP address we
 *   connected to (RFC 7672 §3.2.3 reasoning: the name is what DNS vouched for).
 *   Under may/encrypt any certificate is accepted (RFC 7435 opportunistic
 *   security: encryption without authentication beats plaintext).
 * - RFC 5321 §4.5.2: the body streams from the queue through DataEncoder
 *   (dot-stuffing, bare CR/LF → CRLF, so nothing we send can end the data
 *   early at a lenient peer) one chunk at a time, waiting for 'drain' when the
 *   socket buffer is full: memory stays bounded whatever the message size.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from '../observe/log';
import { assertNever } from '../smtp/assert-never';
import { ClientSession } from '../smtp/client-session';
import type { ClientConfig, ClientOutput, OutboundMessage, RecipientOutcome } from '../smtp/client-types';
import { DataEncoder } from '../smtp/data-decoder';
import type { Reply } from '../smtp/reply';

/** One address of one MX host (or of the smart host). */
export interface Endpoint {
  /** The host name: SNI and certificate name. */
  readonly host: string;
  readonly ip: string;
  readonly port: number;
}

export interface ConnectionOptions {
  readonly endpoint: Endpoint;
  readonly client: ClientConfig;
  readonly connectTimeoutMs: number;
  /** Upper bound on the RFC 5321 reply timeouts (tests shorten them). */
  readonly maxReplyTimeoutMs?: number;
  /** Trust anchors for `verify` instead of the system's (tests). */
  readonly tlsCa?: string | Buffer;
  readonly readBody: (id: string) => AsyncIterable<Buffer>;
  readonly log: Logger;
}

/** Why a connection could not be set up (the caller tries the next address or host). */
export interface OpenFailure {
  readonly reason: string;
  /** The server's reply that refused us (a 421 or 554 greeting, a refused EHLO…). */
  readonly reply?: Reply;
  /** The TLS handshake failed: under `may` the same host is retried in plaintext. */
  readonly tlsFailed: boolean;
  /** The TCP connection was made (the failure came from the SMTP dialogue). */
  readonly connected: boolean;
}

export type OpenResult = { readonly ok: true; readonly conn: SmtpConnection } | ({ readonly ok: false } & OpenFailure);

/** Body bytes gathered before a write: few syscalls, and memory bounded whatever the message size. */
const BODY_BATCH = 64 * 1024;

export class SmtpConnection {
  private socket: Socket | TLSSocket;
  private readonly session: ClientSession;
  private readonly waiting = new Map<string, (r: readonly RecipientOutcome[]) => void>();
  private timer: NodeJS.Timeout | undefined;
  private opened: ((r: OpenResult) => void) | null;
  private handshakeFailed = false;
  private closedResolve!: () => void;
  /** Resolves once the socket is closed. */
  readonly closedPromise = new Promise<void>((res) => (this.closedResolve = res));
  /** Messages sent over this connection (for logs and the reuse test). */
  sent = 0;

  private constructor(
    socket: Socket,
    private readonly opts: ConnectionOptions,
    opened: (r: OpenResult) => void,
  ) {
    this.socket = socket;
    this.opened = opened;
    this.session = new ClientSession(opts.client);
    this.attach(socket);
    this.armTimer();
  }

  /** TCP connect, greeting, EHLO, STARTTLS, AUTH: resolves when the session is ready for messages, or with why not. */
  static open(opts: ConnectionOptions): Promise<OpenResult> {
    return new Promise((resolve) => {
      const { ip, port } = opts.endpoint;
      const socket = netConnect({ host: ip, port });
      socket.setNoDelay(true); // pipelined command groups are latency-bound
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ ok: false, reason: `connect to ${ip}:${port} timed out after ${opts.connectTimeoutMs} ms`, tlsFailed: false, connected: false });
      }, opts.connectTimeoutMs);
      const failed = (e: Error) => {
        clearTimeout(timer);
        resolve({ ok: false, reason: `connect to ${ip}:${port} failed: ${(e as { code?: string }).code ?? e.message}`, tlsFailed: false, connected: false });
      };
      socket.once('error', failed);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', failed);
        new SmtpConnection(socket, opts, resolve);
      });
    });
  }

  get endpoint(): Endpoint {
    return this.opts.endpoint;
  }

  get closed(): boolean {
    return this.session.closed;
  }

  get tls(): boolean {
    return this.session.tls;
  }

  /** Sends one message; resolves with every recipient's outcome (deferred ones if the connection fails). */
  send(msg: OutboundMessage): Promise<readonly RecipientOutcome[]> {
    return new Promise((resolve) => {
      this.waiting.set(msg.id, resolve);
      this.sent += 1;
      this.run(this.session.send(msg));
    });
  }

  /** QUIT after the current message; resolves when the socket is closed. */
  quit(): Promise<void> {
    this.run(this.session.quit());
    return this.closedPromise;
  }

  /** Tears the connection down now (shutdown past its grace period). */
  destroy(): void {
    this.socket.destroy();
  }

  // ---- socket events ----

  private readonly onData = (data: Buffer) => this.run(this.session.receive(data));
  private readonly onEnd = () => this.run(this.session.eof());
  private readonly onError = (e: Error) => this.opts.log.debug('smtp-out-socket-error', { ...this.where(), error: e.message });

  private attach(s: Socket | TLSSocket): void {
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onEnd);
    s.on('error', this.onError);
  }

  private detach(s: Socket | TLSSocket): void {
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onEnd);
    s.removeListener('error', this.onError);
  }

  // ---- client outputs ----

  private run(outputs: readonly ClientOutput[]): void {
    for (const o of outputs) this.act(o);
    this.armTimer();
  }

  private act(o: ClientOutput): void {
    switch (o.type) {
      case 'write':
        this.socket.write(o.data);
        return;
      case 'start-tls':
        return this.startTls(o.servername, o.verify);
      case 'send-body':
        void this.streamBody(o.id);
        return;
      case 'message-done':
        return this.done(o.id, o.recipients);
      case 'ready':
        return this.settle({ ok: true, conn: this });
      case 'event':
        return this.opts.log.debug(`smtp-out-${o.event}`, { ...this.where(), ...o.fields });
      case 'close':
        return this.close(o.reason, o.failure?.reply);
      default:
        return assertNever(o);
    }
  }

  private done(id: string, recipients: readonly RecipientOutcome[]): void {
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    resolve?.(recipients);
  }

  private close(reason: string, reply: Reply | undefined): void {
    clearTimeout(this.timer);
    this.settle({ ok: false, reason, reply, tlsFailed: this.handshakeFailed, connected: true });
    // After QUIT's answer a half-close lets the server finish; on failure nothing more is owed.
    if (reason === 'QUIT answered') this.socket.end();
    else this.socket.destroy();
    if (this.socket.destroyed) this.closedResolve();
    else this.socket.once('close', () => this.closedResolve());
    this.socket.once('error', () => undefined);
  }

  private settle(r: OpenResult): void {
    const opened = this.opened;
    this.opened = null;
    opened?.(r);
  }

  // ---- STARTTLS ----

  private startTls(servername: string, verify: boolean): void {
    const raw = this.socket;
    this.detach(raw);
    const name = this.opts.endpoint.host;
    const tlsSocket = tlsConnect({
      socket: raw,
      // RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
      servername: isIP(servername) === 0 ? servername : undefined,
      rejectUnauthorized: verify,
      ca: this.opts.tlsCa,
      minVersion: 'TLSv1.2',
      // The MX host's name, never the address connected to.
      checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
    });
    const failed = (e: Error) => {
      this.handshakeFailed = true;
      this.run(this.session.tlsFailed(e.message));
    };
    tlsSocket.once('error', failed);
    tlsSocket.once('secureConnect', () => {
      tlsSocket.removeListener('error', failed);
      this.socket = tlsSocket;
      this.attach(tlsSocket);
      this.run(this.session.tlsReady());
    });
    this.socket = tlsSocket;
  }

  // ---- the body ----

  private async streamBody(id: string): Promise<void> {
    const enc = new DataEncoder();
    const out: Buffer[] = [];
    let pending = 0;
    try {
      for await (const chunk of this.opts.readBody(id)) {
        if (this.session.closed) return;
        enc.push(chunk, out);
        pending += chunk.length;
        // Small bodies go out with their final "." in one write; large ones in batches of BODY_BATCH.
        if (pending < BODY_BATCH) continue;
        const more = this.writeAll(out);
        out.length = 0;
        pending = 0;
        if (!more) await this.drained();
      }
      if (this.session.closed) return;
      enc.end(out);
      this.writeAll(out);
    } catch (e) {
      // A body we cannot read must not end in "." (the server would take a truncated message): drop the connection.
      this.opts.log.error('smtp-out-body-read-failed', { id, ...this.where(), error: e instanceof Error ? e.message : String(e) });
      this.socket.destroy();
      return;
    }
    this.run(this.session.bodySent(id));
  }

  private writeAll(pieces: readonly Buffer[]): boolean {
    if (pieces.length === 0) return true;
    this.socket.cork();
    let more = true;
    for (const p of pieces) more = this.socket.write(p);
    this.socket.uncork();
    return more;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const s = this.socket;
      const go = () => {
        s.removeListener('drain', go);
        s.removeListener('close', go);
        resolve();
      };
      s.on('drain', go);
      s.on('close', go);
    });
  }

  // ---- timers ----

  private armTimer(): void {
    clearTimeout(this.timer);
    const seconds = this.session.replyTimeout;
    if (seconds === null || this.session.closed) return;
    const ms = Math.min(seconds * 1000, this.opts.maxReplyTimeoutMs ?? Infinity);
    this.timer = setTimeout(() => this.run(this.session.timeout()), ms);
    this.timer.unref();
  }

  private where(): Record<string, unknown> {
    const e = this.opts.endpoint;
    return { relay: e.host, ip: e.ip, port: e.port };
  }
}
