/**
 * The delivery engine's clock: decides WHEN queued mail is attempted.
 *
 * - Wakes when the queue says a message is available (new mail, flush,
 *   release) and at the queue's next retry time (RFC 5321 §4.5.4.1 retry
 *   intervals, from queue/schedule.ts); ticks are coalesced, one per event
 *   loop turn at most.
 * - Bounded work per tick (maxPerTick messages started) and in all
 *   (maxInFlight messages being attempted): a queue of a million messages
 *   is worked through, never loaded at once. Finished attempts refill the
 *   pipeline at a low-water mark (half of maxInFlight), since each tick
 *   scans the queue's index.
 * - Never two attempts of the same message at once: a message in flight is
 *   skipped until its attempt has recorded its outcomes.
 * - Recipients for local domains go to the local transport (`local`:
 *   Maildir or LMTP, local.ts). Without one they are left queued: a message
 *   whose only due recipients are local is skipped, and the queue's wake
 *   time (which counts them) is not allowed to make the engine spin: ticks
 *   are then at least POLL_MS apart.
 * - stop(): no new attempts; running ones finish within the grace period,
 *   after which their connections are dropped (the client defers whatever
 *   was not answered, so nothing acknowledged is lost); idle connections QUIT.
 *
 * Wiring (the server does this): Delivery.start({ cfg, queue, log }) after the
 * queue is open and before listening; await delivery.stop() before
 * queue.close(); delivery.wake() after an operator flush, if the queue's
 * onAvailable does not already fire for it.
 */
import type { Config } from '../config/schema';
import { createResolver, type MxResolver } from '../dns/resolver';
import type { Logger } from '../observe/log';
import type { RetryPolicy } from '../queue/schedule';
import { attempt, type DeliverableMessage, type DeliveryQueue } from './attempt';
import { isFinished } from './outcome';
import type { LocalDelivery } from './local';
import { ConnectionPool } from './pool';
import { isLocal } from './router';

export type { DeliveryQueue } from './attempt';

export interface DeliveryOptions {
  readonly cfg: Config;
  readonly queue: DeliveryQueue;
  readonly log: Logger;
  /** Default: node:dns over cfg.dnsServers (the system's when empty). */
  readonly resolver?: MxResolver;
  readonly now?: () => number;
  readonly random?: () => number;
  /** How long an idle outbound connection waits for another message (default 5 s). */
  readonly idleMs?: number;
  /** Caps the RFC 5321 §4.5.3.2 reply timeouts (tests). */
  readonly maxReplyTimeoutMs?: number;
  /** CA for outbound_tls = verify instead of the system store (tests). */
  readonly tlsCa?: string | Buffer;
  /** stop(): how long running attempts may take before their connections are dropped (default 10 s). */
  readonly graceMs?: number;
  readonly maxPerTick?: number;
  readonly maxInFlight?: number;
  /** The local transport (LocalDelivery.fromConfig); absent: local recipients stay queued. */
  readonly local?: LocalDelivery | null;
}

/** When only skipped messages (local recipients, backoff) are due, ticks are this far apart. */
const POLL_MS = 1000;
/** An attempt that failed inside Petrel (queue write error) is not retried sooner than this. */
const INTERNAL_BACKOFF_MS = 30_000;
/** setTimeout's ceiling; a later wake time is re-armed when reached. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Delivery {
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly backoff = new Map<string, number>();
  private readonly remoteMta = new Map<string, Map<number, string>>();
  private readonly pool: ConnectionPool;
  private readonly resolver: MxResolver;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly policy: RetryPolicy;
  private timer: NodeJS.Timeout | undefined;
  private tickQueued = false;
  private stopping = false;

  private constructor(private readonly opts: DeliveryOptions) {
    const { cfg } = opts;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.policy = { schedule: cfg.retrySchedule, maxLifetime: cfg.maxQueueLifetime };
    this.resolver = opts.resolver ?? createResolver({ servers: cfg.dnsServers, self: [cfg.hostname] });
    this.pool = new ConnectionPool({ global: cfg.maxDeliveryConcurrency, perDestination: cfg.destinationConcurrency, idleMs: opts.idleMs ?? 5000 });
  }

  static start(opts: DeliveryOptions): Delivery {
    const d = new Delivery(opts);
    opts.queue.onAvailable(() => d.wake());
    d.settleStranded();
    d.wake();
    return d;
  }

  /**
   * A crash between a message's last outcome record and its DONE leaves every recipient final but the message
   * still queued, and never due again: finish those now (with the DSN they owe), or they would stay forever and
   * their bounce would be lost. An attempt with no recipients to deliver does exactly that.
   */
  private settleStranded(): void {
    for (const m of this.opts.queue.list()) {
      if (m.recipients.length > 0 && isFinished(m.recipients.map((r) => r.state))) this.begin(m, []);
    }
  }

  /** Look at the queue again soon (coalesced). */
  wake(): void {
    if (this.stopping || this.tickQueued) return;
    this.tickQueued = true;
    setImmediate(() => {
      this.tickQueued = false;
      this.tick();
    });
  }

  /** Messages being attempted now. */
  get active(): number {
    return this.inFlight.size;
  }

  /** Outbound connections opened so far. */
  get connectionsOpened(): number {
    return this.pool.opened;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.timer);
    const all = Promise.all([this.pool.stop(), ...this.inFlight.values()]).then(() => true);
    const grace = this.opts.graceMs ?? 10_000;
    if (!(await within(all, grace))) {
      this.opts.log.warn('delivery-stop-forced', { active: this.inFlight.size });
      this.pool.destroyAll();
      await within(all, 2000);
    }
  }

  private tick(): void {
    if (this.stopping) return;
    const now = this.now();
    const limit = this.limit();
    const perTick = this.opts.maxPerTick ?? 200;
    let started = 0;
    let more = false;
    for (const msg of this.opts.queue.due(now)) {
      if (this.inFlight.has(msg.id) || msg.held || (this.backoff.get(msg.id) ?? 0) > now) continue;
      const indices = this.dueRemote(msg, now);
      if (indices.length === 0) continue;
      if (this.inFlight.size >= limit) break; // a finishing attempt wakes us again
      if (started >= perTick) {
        more = true;
        break;
      }
      this.begin(msg, indices);
      started += 1;
    }
    if (more) this.wake();
    else this.arm(now);
  }

  private limit(): number {
    return this.opts.maxInFlight ?? Math.max(100, this.opts.cfg.maxDeliveryConcurrency * 4);
  }

  /** Recipients of `msg` this transport should try now. */
  private dueRemote(msg: DeliverableMessage, now: number): number[] {
    const out: number[] = [];
    msg.recipients.forEach((r, i) => {
      const due = r.state === 'queued' || (r.state === 'deferred' && (r.nextAttempt ?? 0) <= now);
      if (due && (this.opts.local || !isLocal(r.address, this.opts.cfg.localDomains))) out.push(i);
    });
    return out;
  }

  private begin(msg: DeliverableMessage, indices: number[]): void {
    const { cfg, queue, log } = this.opts;
    const ctx = {
      cfg, queue, log,
      resolver: this.resolver,
      pool: this.pool,
      policy: this.policy,
      now: this.now,
      random: this.random,
      remoteMta: this.remoteMta,
      local: this.opts.local ?? null,
      connect: {
        connectTimeoutMs: cfg.connectTimeout * 1000,
        maxReplyTimeoutMs: this.opts.maxReplyTimeoutMs,
        tlsCa: this.opts.tlsCa,
        readBody: (id: string) => queue.readBody(id),
        log,
      },
    };
    const run = attempt(ctx, msg, indices)
      .catch((e: unknown) => {
        // The queue refused a record (full disk, poisoned writer): the message stays as it was and is retried later.
        this.backoff.set(msg.id, this.now() + INTERNAL_BACKOFF_MS);
        log.error('delivery-failed', { id: msg.id, error: e instanceof Error ? e.message : String(e) });
      })
      .finally(() => {
        this.inFlight.delete(msg.id);
        // due() scans the whole queue: refill in batches at the low-water mark, not after every message.
        if (this.inFlight.size <= this.limit() / 2) this.wake();
      });
    this.inFlight.set(msg.id, run);
  }

  /** The next tick: at the queue's next retry time, never sooner than POLL_MS when only skipped work is due. */
  private arm(now: number): void {
    clearTimeout(this.timer);
    const next = this.opts.queue.nextWake();
    if (next === null) return;
    const at = next > now ? next : now + POLL_MS;
    this.timer = setTimeout(() => this.tick(), Math.min(at - now, MAX_TIMER_MS));
    this.timer.unref();
    for (const [id, until] of this.backoff) if (until <= now) this.backoff.delete(id);
  }
}

function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
