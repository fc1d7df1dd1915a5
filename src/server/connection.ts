/**
 * One SMTP connection: the thin adapter between a socket and the pure
 * ServerSession. It carries bytes in, writes replies out (one write per
 * batch of pipelined replies, RFC 2920), answers the session's questions
 * through decisions.ts, upgrades to TLS on STARTTLS, enforces the idle
 * timeout and applies back-pressure (stops reading while the session or the
 * queue holds too much). An exception here ends this session only.
 */
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from '../observe/log';
import { BACKLOG_HIGH_WATER } from '../queue/queue';
import { LIMITS } from '../smtp/limits';
import { R, renderReply } from '../smtp/reply';
import { ServerSession } from '../smtp/server-session';
import type { Decision, Output, Question, SessionConfig } from '../smtp/session-types';
import { decide, type ClientFacts, type DecisionContext } from './decisions';
import type { MessageObserver } from '../auth/message-observer';


export interface ConnectionOptions {
  readonly session: SessionConfig;
  readonly decisions: DecisionContext;
  readonly log: Logger;
  readonly idleTimeoutMs: number;
  readonly tlsContext: SecureContext | null;
  readonly trusted: boolean;
  readonly implicitTls: boolean;
  /** Submission or SMTPS listener: MAIL only after AUTH (RFC 6409 §4.3, RFC 8314). */
  readonly authRequired: boolean;
  readonly onClose: () => void;
  /** Called when reading stopped because of the queue's backlog, so the server can wake us on drain. */
  readonly onQueueBackpressure: () => void;
}

export class Connection implements ClientFacts {
  readonly clientIp: string;
  readonly trusted: boolean;
  traceBytes = 0;
  observer: MessageObserver | null = null;
  private readonly session: ServerSession;
  readonly log: Logger;
  private socket: Socket;
  private ended = false;
  private released = false;
  private paused = false;
  private readonly onData = (chunk: Buffer): void => this.guard(() => this.run(this.session.receive(chunk)));

  constructor(
    socket: Socket,
    private readonly opts: ConnectionOptions,
    sessionId: string,
  ) {
    this.socket = socket;
    this.clientIp = normalizeIp(socket.remoteAddress ?? '');
    this.trusted = opts.trusted;
    this.log = opts.log.child({ session: sessionId });
    this.session = new ServerSession(opts.session, { clientIp: this.clientIp, tls: opts.implicitTls, authRequired: opts.authRequired });
  }

  start(): void {
    this.log.info('connect', { client: this.clientIp, port: this.socket.remotePort, tls: this.opts.implicitTls });
    this.attach(this.socket);
    this.socket.setTimeout(this.opts.idleTimeoutMs);
    this.guard(() => this.run(this.session.start()));
  }

  /** Graceful stop: idle sessions get 421 now, busy ones after their transaction. */
  shutdown(): void {
    this.guard(() => this.run(this.session.shutdown()));
  }

  /** Ends the session at once (shutdown deadline passed). */
  destroy(): void {
    this.guard(() => this.run(this.session.timeout()));
    this.socket.destroy();
  }

  /** Re-evaluates back-pressure (called when the queue drains). */
  updateFlow(): void {
    const queueFull = this.opts.decisions.queue.backlogBytes > BACKLOG_HIGH_WATER;
    const hold = this.session.buffered > LIMITS.pipelineBuffer || queueFull;
    if (queueFull) this.opts.onQueueBackpressure();
    if (hold === this.paused || this.ended) return;
    this.paused = hold;
    if (hold) this.socket.pause();
    else this.socket.resume();
  }

  /** The user SMTP AUTH authenticated in this session (RFC 4954), or null. */
  get authUser(): string | null {
    return this.session.authUser;
  }

  get authenticated(): boolean {
    return this.session.authUser !== null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  tlsInfo(): { version: string; cipher: string } | undefined {
    const s = this.socket;
    if (!(s instanceof TLSSocket)) return undefined;
    return { version: s.getProtocol() ?? 'TLS', cipher: s.getCipher()?.standardName ?? s.getCipher()?.name ?? 'unknown' };
  }

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('timeout', () => this.guard(() => this.run(this.session.timeout())));
    socket.on('end', () => this.guard(() => this.run(this.session.eof())));
    socket.on('error', (err) => this.finish('socket error', err));
    socket.on('close', () => this.finish('closed'));
  }

  /** Handles outputs; answers synchronous questions in a loop (no recursion however long the pipeline). */
  private run(outputs: Output[]): void {
    let batch = outputs;
    let text = '';
    for (;;) {
      let question: Question | null = null;
      for (const o of batch) {
        const r = this.emit(o, text);
        text = r.text;
        if (r.question) question = r.question;
      }
      if (!question) break;
      const d = decide(question, this.opts.decisions, this);
      if (d instanceof Promise) {
        this.write(text);
        text = '';
        d.then(
          (x) => this.guard(() => this.run(this.session.decide(x))),
          (err) => this.fail(err),
        );
        break;
      }
      batch = this.session.decide(d as Decision);
    }
    this.write(text);
    this.updateFlow();
  }

  private emit(o: Output, text: string): { text: string; question?: Question } {
    switch (o.type) {
      case 'reply':
        return { text: text + renderReply(o.reply) };
      case 'body':
        if (this.observer) for (const b of this.observer.push(o.data)) this.opts.decisions.queue.appendBody(o.id, b);
        else this.opts.decisions.queue.appendBody(o.id, o.data);
        return { text };
      case 'abort':
        this.observer = null;
        this.opts.decisions.queue.discard(o.id);
        this.log.info('aborted', { id: o.id, reason: o.reason });
        return { text };
      case 'event':
        this.log.info(o.event, o.fields);
        return { text };
      case 'ask':
        return { text, question: o.question };
      case 'start-tls':
        this.write(text);
        this.upgrade();
        return { text: '' };
      case 'close':
        this.write(text);
        this.ended = true;
        this.socket.end();
        this.log.info('close', { reason: o.reason });
        return { text: '' };
    }
  }

  private write(text: string): void {
    if (text !== '' && !this.socket.destroyed) this.socket.write(text);
  }

  /** RFC 3207: the 220 has been queued on the plain socket; everything after it is the TLS handshake. */
  private upgrade(): void {
    const ctx = this.opts.tlsContext;
    if (!ctx) return this.fail(new Error('STARTTLS without a TLS context'));
    const plain = this.socket;
    plain.removeListener('data', this.onData);
    for (const ev of ['timeout', 'end', 'close', 'error']) plain.removeAllListeners(ev);
    // From here the TLS socket reports errors and the close; the plain one must still not throw unhandled.
    plain.on('error', () => {});
    const secure = new TLSSocket(plain, { isServer: true, secureContext: ctx });
    this.socket = secure;
    secure.setTimeout(this.opts.idleTimeoutMs);
    secure.once('secure', () => {
      this.log.info('tls', { ...this.tlsInfo() });
      this.guard(() => this.run(this.session.tlsReady()));
    });
    this.attach(secure);
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  /** A bug or an unexpected failure: log it, tell the client, end this session only. */
  private fail(err: unknown): void {
    this.log.error('session-error', { error: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) });
    if (!this.ended && !this.socket.destroyed) this.socket.end(renderReply(R.localError()));
    this.ended = true;
    for (const o of this.session.eof()) if (o.type === 'abort') this.opts.decisions.queue.discard(o.id);
  }

  private finish(reason: string, err?: Error): void {
    if (err) this.log.info('socket-error', { error: { message: err.message, code: (err as NodeJS.ErrnoException).code } });
    if (!this.ended) this.guard(() => this.run(this.session.eof()));
    this.ended = true;
    if (reason !== 'closed') return void this.socket.destroy();
    if (this.released) return;
    this.released = true;
    this.log.info('disconnect', {});
    this.opts.onClose();
  }
}

/** "::ffff:192.0.2.1" (an IPv4 client on a dual-stack socket) is logged and matched as 192.0.2.1. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
