/**
 * The running MTA: opens the queue (recovery first), starts the listeners
 * (plain SMTP with optional STARTTLS, implicit TLS), admits connections
 * within the limits and stops gracefully: no new connections, sessions
 * finish their transaction, the queue log is flushed and synced.
 */
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type TlsOptions } from 'node:tls';
import type { Config, Endpoint } from '../config';
import type { Logger } from '../observe/log';
import { inNetworks } from '../policy/cidr';
import { Queue, type QueueFs } from '../queue/queue';
import { reply, renderReply } from '../smtp/reply';
import { Delivery } from '../delivery/scheduler';
import { createResolver, type MxResolver } from '../dns/resolver';
import { ConnectionLimits } from './conn-limits';
import { ControlServer } from './control';
import { Connection, normalizeIp } from './connection';

/** How long a graceful stop waits for sessions to finish their transaction. */
export const SHUTDOWN_GRACE_MS = 30_000;
/** How often finished segments are deleted and long-lived messages copied forward (DESIGN.md "The queue log"). */
export const COMPACT_EVERY_MS = 60_000;

type ListenerKind = 'smtp' | 'smtps';

export interface Listening {
  readonly kind: ListenerKind;
  readonly address: AddressInfo;
}

export class PetrelServer {
  private readonly servers: { kind: ListenerKind; server: NetServer }[] = [];
  private readonly connections = new Set<Connection>();
  private readonly limits: ConnectionLimits;
  private readonly tlsContext: SecureContext | null;
  private nextSession = 0;
  private stopping: Promise<void> | null = null;
  private drainArmed = false;
  private control: ControlServer | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private delivery: Delivery | null = null;
  /** One resolver and cache for the whole server: delivery and MAIL FROM checks share it. */
  private readonly resolver: MxResolver;
  /** Called after an operator's `queue flush`: the delivery scheduler's wake-up, once one is attached. */
  onFlush: () => void = () => undefined;

  private constructor(
    readonly cfg: Config,
    readonly queue: Queue,
    private readonly log: Logger,
  ) {
    this.limits = new ConnectionLimits(cfg.maxConnections, cfg.maxConnectionsPerIp);
    this.tlsContext = cfg.tlsCert && cfg.tlsKey ? loadTls(cfg.tlsCert, cfg.tlsKey) : null;
    this.resolver = createResolver({ servers: cfg.dnsServers, self: [cfg.hostname] });
  }

  /** Some connection stopped reading because the queue's write backlog is high: wake it when the queue drains. */
  private armDrain(): void {
    if (this.drainArmed) return;
    this.drainArmed = true;
    this.queue.onDrain(() => {
      this.drainArmed = false;
      for (const c of this.connections) if (c.isPaused) c.updateFlow();
    });
  }

  /** `queueFs` replaces the file system under the queue (fault-injection tests only). */
  /** `queueFs` replaces the file system under the queue (fault-injection tests only); `delivery: false` keeps
   *  accepted mail in the queue (tests of the receiving side). */
  static async start(cfg: Config, log: Logger, opts: { queueFs?: QueueFs; delivery?: boolean } = {}): Promise<PetrelServer> {
    const queue = await Queue.open(join(cfg.dataDir, 'queue'), { fsync: cfg.queueFsync, fs: opts.queueFs });
    const report = (queue as { recoveryReport?: unknown }).recoveryReport;
    log.info('queue-open', { dir: join(cfg.dataDir, 'queue'), messages: queue.list().length, recovery: report });
    const server = new PetrelServer(cfg, queue, log);
    try {
      const delivery = opts.delivery === false ? null : Delivery.start({ cfg, queue, log, resolver: server.resolver });
      server.delivery = delivery;
      server.onFlush = () => delivery?.wake();
      server.control = await ControlServer.start({ dataDir: cfg.dataDir, queue, log, onFlush: () => server.onFlush() });
      server.compactTimer = setInterval(() => void server.compact(), COMPACT_EVERY_MS).unref();
      for (const ep of cfg.listen) await server.listen('smtp', ep);
      for (const ep of cfg.listenSmtps) await server.listen('smtps', ep);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  get listening(): Listening[] {
    return this.servers.map((s) => ({ kind: s.kind, address: s.server.address() as AddressInfo }));
  }

  get activeSessions(): number {
    return this.connections.size;
  }

  /** Graceful stop; resolves once the queue log is closed. Safe to call twice. */
  stop(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.stopping ??= this.drain(graceMs);
    return this.stopping;
  }

  /** Compaction failures are logged, never fatal: the log stays correct, it just uses more disk. */
  async compact(): Promise<void> {
    try {
      const r = await this.queue.compact();
      if (r.deletedSegments > 0 || r.copiedMessages > 0) this.log.info('queue-compacted', { ...r });
    } catch (err) {
      this.log.warn('queue-compact-failed', { error: err });
    }
  }

  private async drain(graceMs: number): Promise<void> {
    if (this.compactTimer) clearInterval(this.compactTimer);
    this.log.info('stopping', { sessions: this.connections.size });
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((r) => s.server.close(() => r()))));
    for (const c of this.connections) c.shutdown();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await sleep(20);
    for (const c of this.connections) c.destroy();
    await closed;
    await this.delivery?.stop();
    await this.control?.stop();
    await this.queue.close();
    this.log.info('stopped', {});
  }

  private listen(kind: ListenerKind, ep: Endpoint): Promise<void> {
    const server =
      kind === 'smtps'
        ? createTlsServer(this.tlsServerOptions()).on('secureConnection', (s) => this.admit(s, true))
        : createTcpServer((s) => this.admit(s, false));
    server.on('tlsClientError', (err: Error) => this.log.info('tls-error', { error: { message: err.message } }));
    this.servers.push({ kind, server });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: ep.host, port: ep.port, backlog: 1024 }, () => {
        server.removeListener('error', reject);
        server.on('error', (err) => this.log.error('listener-error', { error: err }));
        this.log.info('listening', { kind, address: server.address() });
        resolve();
      });
    });
  }

  private admit(socket: Socket, implicitTls: boolean): void {
    const ip = normalizeIp(socket.remoteAddress ?? '');
    socket.on('error', () => {});
    if (this.stopping) return void socket.end(renderReply(reply(421, '4.3.2', `${this.cfg.hostname} shutting down`)));
    const slot = this.limits.acquire(ip);
    if (slot !== 'ok') {
      this.log.info('refused', { client: ip, reason: slot === 'total' ? 'too many connections' : 'too many connections from this address' });
      return void socket.end(renderReply(reply(421, '4.7.0', `${this.cfg.hostname} too many connections, try again later`)));
    }
    const conn = new Connection(socket, this.connectionOptions(ip, implicitTls, () => {
      this.connections.delete(conn);
      this.limits.release(ip);
    }), (++this.nextSession).toString(36).padStart(6, '0'));
    this.connections.add(conn);
    conn.start();
  }

  private connectionOptions(ip: string, implicitTls: boolean, onClose: () => void) {
    const c = this.cfg;
    return {
      session: { hostname: c.hostname, maxMessageSize: c.maxMessageSize, maxRecipients: c.maxRecipients, maxErrors: c.maxErrors, tlsAvailable: this.tlsContext !== null },
      decisions: {
        hostname: c.hostname,
        queue: this.queue,
        log: this.log,
        localDomains: c.localDomains,
        relayDomains: c.relayDomains,
        nullMxCheck: c.rejectNullMxSender ? this.resolver : null,
      },
      log: this.log,
      idleTimeoutMs: c.idleTimeout * 1000,
      tlsContext: this.tlsContext,
      trusted: inNetworks(ip, c.trustedNetworks),
      implicitTls,
      onClose,
      onQueueBackpressure: () => this.armDrain(),
    };
  }

  /** tls.createServer ignores a `secureContext` option; it takes the key material itself. */
  private tlsServerOptions(): TlsOptions {
    const { tlsCert, tlsKey } = this.cfg;
    if (!tlsCert || !tlsKey) throw new Error('listen_smtps needs tls_cert and tls_key');
    return tlsOptions(tlsCert, tlsKey);
  }
}

/** TLS 1.2 and newer only (RFC 8996 deprecates 1.0 and 1.1). */
function tlsOptions(certFile: string, keyFile: string): TlsOptions {
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' };
}

function loadTls(certFile: string, keyFile: string): SecureContext {
  return createSecureContext(tlsOptions(certFile, keyFile));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
