/**
 * The running MTA: opens the queue (recovery first), starts the listeners
 * (plain SMTP with optional STARTTLS; submission, RFC 6409, where AUTH is
 * required; implicit TLS, RFC 8314, also AUTH-only), admits connections
 * within the limits (concurrency, per-address rate) and stops gracefully: no new connections, sessions
 * finish their transaction, the queue log is flushed and synced.
 */
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type TlsOptions } from 'node:tls';
import type { Config, Endpoint } from '../config';
import { formatRate, type RateSetting } from '../config/values';
import type { Logger } from '../observe/log';
import { MECHANISMS } from '../policy/auth';
import { inNetworks } from '../policy/cidr';
import { RateWindow, type Rate } from '../policy/rate';
import { UserStore } from '../policy/users';
import { Queue, type QueueFs } from '../queue/queue';
import { reply, renderReply } from '../smtp/reply';
import { LocalDelivery } from '../delivery/local';
import { Delivery } from '../delivery/scheduler';
import { createResolver, type MxResolver } from '../dns/resolver';
import { createAuthDns } from '../dns/auth-dns';
import { loadSigningKeys } from '../auth/load-keys';
import type { SigningKey } from '../auth/dkim/keys';
import { MessageAuth, signingQueue } from './message-auth';
import { ConnectionLimits } from './conn-limits';
import { ControlServer } from './control';
import { Connection, normalizeIp } from './connection';
import type { AuthContext } from './decisions';

/** How long a graceful stop waits for sessions to finish their transaction. */
export const SHUTDOWN_GRACE_MS = 30_000;
/** How often finished segments are deleted and long-lived messages copied forward (DESIGN.md "The queue log"). */
export const COMPACT_EVERY_MS = 60_000;

/** smtp: MX port, STARTTLS offered · submission: STARTTLS then AUTH required · smtps: implicit TLS, AUTH required. */
type ListenerKind = 'smtp' | 'submission' | 'smtps';

export interface Listening {
  readonly kind: ListenerKind;
  readonly address: AddressInfo;
}

export class PetrelServer {
  private readonly servers: { kind: ListenerKind; server: NetServer }[] = [];
  private readonly connections = new Set<Connection>();
  private readonly limits: ConnectionLimits;
  /** New connections per untrusted client address (max_connection_rate). */
  private readonly connectionRate: RateWindow;
  /** AUTH users and limits, shared by every session; null without TLS (AUTH is offered only over TLS). */
  private readonly auth: AuthContext | null;
  private readonly users: UserStore;
  /** Maildir/LMTP delivery for local_domains; also answers "does this local recipient exist?" at RCPT time. */
  private readonly local: LocalDelivery;
  private readonly tlsContext: SecureContext | null;
  private nextSession = 0;
  private stopping: Promise<void> | null = null;
  private drainArmed = false;
  private control: ControlServer | null = null;
  private compactTimer: NodeJS.Timeout | null = null;
  private delivery: Delivery | null = null;
  /** One resolver and cache for the whole server: delivery and MAIL FROM checks share it. */
  private readonly resolver: MxResolver;
  /** DKIM signing and inbound SPF/DKIM/DMARC checks; set in start() once the keys are read. */
  private messageAuth: MessageAuth | null = null;
  /** dkim_sign keys, read once at start. */
  private keys: SigningKey[] = [];
  /** Called after an operator's `queue flush`: the delivery scheduler's wake-up, once one is attached. */
  onFlush: () => void = () => undefined;

  private constructor(
    readonly cfg: Config,
    readonly queue: Queue,
    private readonly log: Logger,
  ) {
    this.limits = new ConnectionLimits(cfg.maxConnections, cfg.maxConnectionsPerIp);
    this.tlsContext = cfg.tlsCert && cfg.tlsKey ? loadTls(cfg.tlsCert, cfg.tlsKey) : null;
    this.connectionRate = new RateWindow(windowOf(cfg.maxConnectionRate));
    // One users file serves AUTH and local mailboxes (issue 4); it is re-read when it changes.
    this.users = new UserStore(cfg.usersFile, (message) => log.error('users-file-error', { file: cfg.usersFile, error: message }));
    this.local = LocalDelivery.fromConfig(cfg, { users: this.users, log });
    this.auth = this.tlsContext ? authContext(cfg, this.users) : null;
    this.resolver = createResolver({ servers: cfg.dnsServers, self: [cfg.hostname], timeoutMs: cfg.dnsTimeout * 1000 });
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
      server.keys = await loadKeys(cfg, log);
      server.messageAuth = createMessageAuth(cfg, server.keys);
      // queue_only: accept and queue, deliver nothing (maintenance; the queue is delivered once it is off).
      const deliver = opts.delivery !== false && !cfg.queueOnly;
      const delivery = deliver ? Delivery.start({ cfg, queue, log, resolver: server.resolver, local: server.local }) : null;
      if (!deliver) log.info('delivery-off', { reason: cfg.queueOnly ? 'queue_only = yes' : 'disabled by the caller' });
      server.delivery = delivery;
      server.onFlush = () => delivery?.wake();
      server.control = await ControlServer.start({ dataDir: cfg.dataDir, queue: signingQueue(queue, server.keys, log), log, onFlush: () => server.onFlush() });
      server.compactTimer = setInterval(() => void server.compact(), COMPACT_EVERY_MS).unref();
      for (const ep of cfg.listen) await server.listen('smtp', ep);
      for (const ep of cfg.listenSubmission) await server.listen('submission', ep);
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
        ? createTlsServer(this.tlsServerOptions()).on('secureConnection', (s) => this.admit(s, kind))
        : createTcpServer((s) => this.admit(s, kind));
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

  private admit(socket: Socket, kind: ListenerKind): void {
    const ip = normalizeIp(socket.remoteAddress ?? '');
    socket.on('error', () => {});
    if (this.stopping) return void socket.end(renderReply(reply(421, '4.3.2', `${this.cfg.hostname} shutting down`)));
    const trusted = inNetworks(ip, this.cfg.trustedNetworks);
    if (!trusted && !this.connectionRate.tryRecord(ip, Date.now())) {
      this.log.info('refused', { client: ip, reason: 'connection rate', limit: formatRate(this.cfg.maxConnectionRate) });
      return void socket.end(renderReply(reply(421, '4.7.0', `${this.cfg.hostname} too many connections from your address, try again later`)));
    }
    const slot = this.limits.acquire(ip);
    if (slot !== 'ok') {
      this.log.info('refused', { client: ip, reason: slot === 'total' ? 'too many connections' : 'too many connections from this address' });
      return void socket.end(renderReply(reply(421, '4.7.0', `${this.cfg.hostname} too many connections, try again later`)));
    }
    const conn = new Connection(socket, this.connectionOptions(trusted, kind, () => {
      this.connections.delete(conn);
      this.limits.release(ip);
    }), (++this.nextSession).toString(36).padStart(6, '0'));
    this.connections.add(conn);
    conn.start();
  }

  private connectionOptions(trusted: boolean, kind: ListenerKind, onClose: () => void) {
    const c = this.cfg;
    return {
      session: {
        hostname: c.hostname,
        maxMessageSize: c.maxMessageSize,
        maxRecipients: c.maxRecipients,
        maxErrors: c.maxErrors,
        tlsAvailable: this.tlsContext !== null,
        authMechanisms: this.auth ? MECHANISMS : [],
      },
      decisions: {
        hostname: c.hostname,
        queue: this.queue,
        log: this.log,
        localDomains: c.localDomains,
        relayDomains: c.relayDomains,
        nullMxCheck: c.rejectNullMxSender ? this.resolver : null,
        auth: this.auth ?? undefined,
        // RFC 5321 §3.5.3 / no backscatter: an unknown local user is refused during the dialogue, not bounced later.
        verifyRecipient: (address: string) => this.local.opts.directory.verify(address),
        messageAuth: this.messageAuth ?? undefined,
      },
      log: this.log,
      idleTimeoutMs: c.idleTimeout * 1000,
      tlsContext: this.tlsContext,
      trusted,
      implicitTls: kind === 'smtps',
      authRequired: kind !== 'smtp',
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

function windowOf(r: RateSetting): Rate {
  return { limit: r.count, windowMs: r.per * 1000 };
}

/** The users file is re-read when it changes, so `petrel user add` needs no restart; a broken file keeps the last good list. */
function authContext(cfg: Config, users: UserStore): AuthContext {
  return {
    users,
    failures: new RateWindow({ limit: cfg.authMaxFailures, windowMs: cfg.authFailureWindow * 1000 }),
    messages: new RateWindow(windowOf(cfg.maxMessagesPerUser)),
    now: Date.now,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Signing keys are read once at start: an unreadable or too weak key stops the server with the reason. */
async function loadKeys(cfg: Config, log: Logger): Promise<SigningKey[]> {
  const keys = await loadSigningKeys(cfg.dkimSign);
  for (const k of keys) {
    // RFC 8301 §3.2: 1024 bits is the floor for verifiers; signers SHOULD use at least 2048.
    if (k.algorithm === 'rsa-sha256' && k.bits < 2048) log.warn('dkim-weak-key', { domain: k.domain, selector: k.selector, bits: k.bits });
    log.info('dkim-key', { domain: k.domain, selector: k.selector, algorithm: k.algorithm, bits: k.bits });
  }
  return keys;
}

function createMessageAuth(cfg: Config, keys: readonly SigningKey[]): MessageAuth | null {
  if (keys.length === 0 && !cfg.authChecks) return null;
  return new MessageAuth({
    authservId: cfg.hostname,
    keys,
    checks: cfg.authChecks,
    enforcement: cfg.dmarcEnforcement,
    dns: createAuthDns({ servers: cfg.dnsServers, timeoutMs: cfg.dnsTimeout * 1000 }),
    now: Date.now,
  });
}
