/**
 * Outbound connections: per-destination queues of jobs, workers that own one
 * connection each, a per-destination and a global concurrency limit, and
 * connection reuse.
 *
 * A destination is a next hop (a recipient domain, or the smart host). A
 * worker connects (connect.ts), then takes that destination's jobs one after
 * another over the same connection — RFC 5321 §3.3 allows any number of
 * transactions per session, and the client sends RSET after a failed one —
 * and waits `idleMs` for more before it says QUIT. This is what Postfix's
 * connection cache does, and what keeps a burst of mail to one domain from
 * costing a TCP and TLS handshake per message.
 *
 * Limits: at most `perDestination` workers for one destination (so one busy
 * domain cannot take every slot, and a receiving server is not flooded, as
 * RFC 5321 §4.5.4.1 asks of retries too) and `global` in all. When every
 * global slot is taken, an idle worker elsewhere is told to close so that
 * waiting destinations get their turn.
 * When all of a destination's hosts fail, every job then waiting for it is
 * deferred with the same reason instead of each trying the dead hosts again.
 */
import type { RouteHost } from '../dns/mx';
import type { OutboundMessage, RecipientOutcome } from '../smtp/client-types';
import type { Reply } from '../smtp/reply';
import { reach, type ConnectSettings } from './connect';
import type { Endpoint, SmtpConnection } from './smtp-out';

export type JobResult =
  /** The message went through a connection: one outcome per recipient, in order. */
  | { readonly kind: 'sent'; readonly outcomes: readonly RecipientOutcome[]; readonly via: Endpoint }
  /** No host would talk to us: every recipient is deferred with `reply`. */
  | { readonly kind: 'unreachable'; readonly reply: Reply; readonly via: Endpoint | null }
  /** Shutdown came first; nothing was attempted and nothing is recorded. */
  | { readonly kind: 'cancelled' };

export interface Job {
  readonly msg: OutboundMessage;
  readonly hosts: readonly RouteHost[];
  /** Connection settings (port, TLS, AUTH) for this destination. */
  readonly settings: ConnectSettings;
}

interface Pending {
  readonly job: Job;
  readonly resolve: (r: JobResult) => void;
}

type Waiter = (p: Pending | null) => void;

/** One worker's connection and its wait (if any) for the next job, so that the connection's close can end the wait. */
interface IdleSlot {
  conn: SmtpConnection | null;
  waiter: Waiter | null;
}

class Destination {
  readonly jobs: Pending[] = [];
  /** Idle workers waiting for a job (null: close). */
  readonly idle = new Set<Waiter>();
  workers = 0;
  constructor(readonly key: string) {}
}

export interface PoolLimits {
  readonly global: number;
  readonly perDestination: number;
  /** How long an idle connection waits for another message before QUIT. */
  readonly idleMs: number;
}

export class ConnectionPool {
  private readonly dests = new Map<string, Destination>();
  /** Destinations waiting for a global slot, in order. */
  private readonly starved: Destination[] = [];
  private workers = 0;
  private stopping = false;
  private readonly live = new Set<SmtpConnection>();
  private readonly running = new Set<Promise<void>>();
  /** Connections opened so far (tests and metrics). */
  opened = 0;

  constructor(private readonly limits: PoolLimits) {}

  /** Queues a message for `key`; resolves after the remote reply (or when it could not be tried). */
  submit(key: string, job: Job): Promise<JobResult> {
    if (this.stopping) return Promise.resolve({ kind: 'cancelled' });
    return new Promise((resolve) => {
      const d = this.dest(key);
      const pending = { job, resolve };
      const waiter = first(d.idle);
      if (waiter) {
        d.idle.delete(waiter);
        waiter(pending);
        return;
      }
      d.jobs.push(pending);
      this.spawn(d);
    });
  }

  get activeConnections(): number {
    return this.workers;
  }

  /** No new work; idle connections QUIT; queued jobs are cancelled; running ones finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const d of this.dests.values()) {
      for (const p of d.jobs.splice(0)) p.resolve({ kind: 'cancelled' });
      for (const w of [...d.idle]) w(null);
      d.idle.clear();
    }
    await Promise.all([...this.running]);
  }

  /** Past the grace period: drop every connection (their messages are deferred by the client). */
  destroyAll(): void {
    for (const c of this.live) c.destroy();
  }

  private dest(key: string): Destination {
    let d = this.dests.get(key);
    if (!d) {
      d = new Destination(key);
      this.dests.set(key, d);
    }
    return d;
  }

  /** Starts workers while jobs wait, within both limits (each worker takes its first job at once). */
  private spawn(d: Destination): void {
    while (d.jobs.length > 0 && d.workers < this.limits.perDestination) {
      if (this.workers >= this.limits.global) {
        if (!this.starved.includes(d)) this.starved.push(d);
        this.reclaimIdle(d);
        return;
      }
      this.workers += 1;
      d.workers += 1;
      const run = this.work(d).finally(() => {
        this.running.delete(run);
        this.release(d);
      });
      this.running.add(run);
    }
  }

  /** Global slots are full: close one idle connection of another destination. */
  private reclaimIdle(except: Destination): void {
    for (const d of this.dests.values()) {
      if (d === except) continue;
      const w = first(d.idle);
      if (w) {
        d.idle.delete(w);
        w(null);
        return;
      }
    }
  }

  private release(d: Destination): void {
    this.workers -= 1;
    d.workers -= 1;
    if (d.workers === 0 && d.jobs.length === 0) this.dests.delete(d.key);
    else if (d.jobs.length > 0) this.spawn(d);
    while (this.starved.length > 0 && this.workers < this.limits.global) {
      const next = this.starved.shift() as Destination;
      this.spawn(next);
    }
  }

  /** One worker: connect for the first job, then reuse the connection for as long as jobs come. */
  private async work(d: Destination): Promise<void> {
    let conn: SmtpConnection | null = null;
    const idle: IdleSlot = { conn: null, waiter: null };
    try {
      for (let p: Pending | null | undefined = d.jobs.shift(); p; p = d.jobs.shift() ?? (await this.nextJob(d, conn, idle))) {
        if (!conn || conn.closed) {
          const r = await reach(p.job.hosts, p.job.settings);
          if (!r.ok) {
            this.unreachable(d, p, r.reply, r.last);
            break;
          }
          conn = r.conn;
          this.opened += 1;
          this.live.add(conn);
          this.watchClose(d, conn, idle);
        }
        const outcomes = await conn.send(p.job.msg);
        p.resolve({ kind: 'sent', outcomes, via: conn.endpoint });
      }
    } finally {
      if (conn) {
        if (!conn.closed) await conn.quit();
        this.live.delete(conn);
      }
    }
  }

  /**
   * The server may drop an idle connection (RFC 5321 §4.5.3.2.7); a worker waiting on it stops waiting.
   * One handler per connection, not one per wait: a reaction added at every wait would keep every message
   * the connection ever carried reachable until it closed (on a busy relay, ~1 KB per message, unbounded).
   */
  private watchClose(d: Destination, conn: SmtpConnection, idle: IdleSlot): void {
    idle.conn = conn;
    void conn.closedPromise.then(() => {
      const w = idle.waiter;
      if (idle.conn === conn && w && d.idle.delete(w)) w(null);
    });
  }

  /** Waits up to idleMs for a job for this destination, holding the connection open. */
  private nextJob(d: Destination, conn: SmtpConnection | null, idle: IdleSlot): Promise<Pending | null> {
    if (this.stopping || !conn || conn.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: Waiter = (p) => {
        idle.waiter = null;
        clearTimeout(timer);
        resolve(p);
      };
      const timer = setTimeout(() => {
        d.idle.delete(waiter);
        waiter(null);
      }, this.limits.idleMs);
      idle.waiter = waiter;
      d.idle.add(waiter);
      // A starved destination needs this slot more than we need to idle.
      if (this.starved.length > 0 && this.workers >= this.limits.global) {
        d.idle.delete(waiter);
        waiter(null);
      }
    });
  }

  /** No host answered: this job and every job waiting for the same destination are deferred alike. */
  private unreachable(d: Destination, p: Pending, reply: Reply, via: Endpoint | null): void {
    p.resolve({ kind: 'unreachable', reply, via });
    for (const other of d.jobs.splice(0)) other.resolve({ kind: 'unreachable', reply, via });
  }
}

function first<T>(s: Set<T>): T | undefined {
  return s.values().next().value;
}
