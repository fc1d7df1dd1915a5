/**
 * One delivery attempt of one queued message: route its due recipients
 * (router.ts), resolve each next hop (RFC 5321 §5.1, RFC 7505), hand each
 * group to the connection pool, record every recipient's outcome only AFTER
 * the remote reply (at-least-once: a crash before the record repeats the
 * delivery, never loses it), log each one like Postfix's status= lines, and
 * when every recipient is final, finish the message — with one DSN for all
 * failed recipients (bounce.ts) unless the sender is the null path.
 * Recipients in local_domains go to the local transport (local.ts) in the
 * same attempt; their outcomes are recorded the same way.
 */
import type { Config } from '../config/schema';
import type { Route } from '../dns/mx';
import type { MxResolver } from '../dns/resolver';
import type { Logger } from '../observe/log';
import type { RetryPolicy } from '../queue/schedule';
import type { Envelope, QueuedMessage } from '../queue/types';
import { assertNever } from '../smtp/assert-never';
import type { OutboundMessage } from '../smtp/client-types';
import { reply as makeReply, type Reply } from '../smtp/reply';
import { makeBounce, type FailedRecipient } from './bounce';
import type { ConnectSettings } from './connect';
import type { LocalDelivery } from './local';
import { isFinished, needsBounce, outcomeFor, routeReply, statusOf, type RcptOutcome } from './outcome';
import type { ConnectionPool, JobResult } from './pool';
import { route, type NextHop, type RecipientGroup } from './router';
import type { Endpoint } from './smtp-out';

/** What the delivery engine needs of the queue (src/queue/queue.ts). */
export interface DeliveryQueue {
  due(now: number): QueuedMessage[];
  nextWake(): number | null;
  recordOutcomes(id: string, outcomes: { index: number; outcome: RcptOutcome }[]): Promise<void>;
  finish(id: string, bounce?: { envelope: Envelope; body: Buffer }): Promise<string | null>;
  onAvailable(cb: (id: string) => void): void;
  readBody(id: string): AsyncIterable<Buffer>;
  get(id: string): QueuedMessage | undefined;
  list(): QueuedMessage[];
  /** Enqueues a message made here (alias forwarding, local.ts); optional for queues that never forward. */
  submit?(envelope: Envelope, body: Buffer): Promise<string>;
}

/** A queued message; `params` (SIZE/BODY/SMTPUTF8 from MAIL FROM) when the queue reports them. */
export type DeliverableMessage = QueuedMessage & { readonly params?: Envelope['params'] };

export interface AttemptContext {
  readonly cfg: Config;
  readonly queue: DeliveryQueue;
  readonly log: Logger;
  readonly resolver: MxResolver;
  readonly pool: ConnectionPool;
  readonly policy: RetryPolicy;
  readonly now: () => number;
  readonly random: () => number;
  /** Connection settings shared by every destination (timeouts, CA, body source). */
  readonly connect: Omit<ConnectSettings, 'port' | 'client'>;
  /** Remote-MTA of recipients failed earlier in this process, for the DSN: id → index → host. */
  readonly remoteMta: Map<string, Map<number, string>>;
  /** The local transport (local.ts); null leaves local recipients queued. */
  readonly local?: LocalDelivery | null;
}

/** Delivers the recipients at `indices`; resolves when their outcomes are recorded (and the message finished if it can be). */
export async function attempt(ctx: AttemptContext, msg: DeliverableMessage, indices: readonly number[]): Promise<void> {
  const addresses = msg.recipients.map((r) => r.address);
  const routing = route(addresses, indices, ctx.cfg);
  const local = ctx.local && routing.local.length > 0 ? deliverLocal(ctx, ctx.local, msg, routing.local) : null;
  await Promise.all([...routing.groups.map((g) => deliverGroup(ctx, msg, g)), local]);
  await finishIfDone(ctx, msg.id);
}

async function deliverGroup(ctx: AttemptContext, msg: DeliverableMessage, g: RecipientGroup): Promise<void> {
  const resolved = await resolveNextHop(ctx.resolver, g.nextHop);
  let failure = routeReply(resolved);
  // A smart host that cannot be resolved is our configuration's problem, not the recipient's: defer, never bounce.
  if (failure && g.nextHop.kind === 'relay' && Math.floor(failure.code / 100) === 5) failure = makeReply(451, '4.4.3', `smart host: ${failure.lines.join(' ')}`);
  if (failure || resolved.kind !== 'hosts') {
    const r = failure ?? makeReply(451, '4.4.3', 'no route');
    return record(ctx, msg, g.indices.map((i) => ({ index: i, reply: r, via: null, remote: false })));
  }
  const result = await ctx.pool.submit(g.key, { msg: outbound(msg, g), hosts: resolved.hosts, settings: settingsFor(ctx, g.nextHop) });
  const replies = repliesOf(result, g.indices);
  if (replies) await record(ctx, msg, replies);
}

/** Local recipients: their replies come from the Maildir writes or the LMTP server, recorded like remote ones. */
async function deliverLocal(ctx: AttemptContext, local: LocalDelivery, msg: DeliverableMessage, indices: readonly number[]): Promise<void> {
  const results = await local.deliver(ctx.queue, msg, indices);
  const transport = local.opts.transport.kind === 'maildir' ? 'local' : 'lmtp';
  await record(ctx, msg, results.map((r) => ({ index: r.index, reply: r.reply, via: null, remote: false, transport })));
}

function resolveNextHop(resolver: MxResolver, h: NextHop): Promise<Route> {
  if (h.kind === 'mx') return resolver.resolveRoute(h.domain);
  return h.mx ? resolver.resolveRoute(h.host) : resolver.resolveAddresses(h.host);
}

function settingsFor(ctx: AttemptContext, h: NextHop): ConnectSettings {
  const { cfg } = ctx;
  const relay = h.kind === 'relay';
  const auth = relay && cfg.relayAuthUser !== null && cfg.relayAuthPassword !== null ? { user: cfg.relayAuthUser, password: cfg.relayAuthPassword } : null;
  return {
    ...ctx.connect,
    port: relay ? h.port : cfg.outboundPort,
    client: { hostname: cfg.hostname, tls: cfg.outboundTls, auth },
  };
}

function outbound(msg: DeliverableMessage, g: RecipientGroup): OutboundMessage {
  return {
    id: msg.id,
    from: msg.sender,
    recipients: g.indices.map((i) => msg.recipients[i]?.address ?? ''),
    size: msg.size,
    eightBit: msg.params?.body === '8BITMIME',
    smtputf8: msg.params?.smtputf8 ?? false,
  };
}

interface Decided {
  readonly index: number;
  readonly reply: Reply;
  readonly via: Endpoint | null;
  /** The reply came from the host in `via` (not made up locally). */
  readonly remote: boolean;
  /** The log's relay= for a delivery without an SMTP host (local, lmtp). */
  readonly transport?: string;
}

/** null: cancelled by shutdown, nothing to record. */
function repliesOf(result: JobResult, indices: readonly number[]): Decided[] | null {
  switch (result.kind) {
    case 'cancelled':
      return null;
    case 'unreachable':
      return indices.map((index) => ({ index, reply: result.reply, via: result.via, remote: false }));
    case 'sent':
      return indices.map((index, k) => {
        const o = result.outcomes[k];
        if (!o) return { index, reply: makeReply(451, '4.3.0', 'No outcome for this recipient'), via: result.via, remote: false };
        return { index, reply: o.reply, via: result.via, remote: !o.local };
      });
    default:
      return assertNever(result);
  }
}

async function record(ctx: AttemptContext, msg: DeliverableMessage, decided: readonly Decided[]): Promise<void> {
  const now = ctx.now();
  const outcomes = decided.map((d) => {
    const attemptsBefore = msg.recipients[d.index]?.attempts ?? 0;
    const outcome = outcomeFor(d.reply, { policy: ctx.policy, arrivedMs: msg.arrived, attemptsBefore, nowMs: now, jitter: ctx.random() });
    return { index: d.index, outcome };
  });
  await ctx.queue.recordOutcomes(msg.id, outcomes);
  outcomes.forEach(({ index, outcome }, k) => {
    const d = decided[k] as Decided;
    logAttempt(ctx, msg, index, outcome, d.via, now, d.transport);
    if (outcome.kind === 'failed' && d.remote && d.via) remember(ctx.remoteMta, msg.id, index, d.via.host);
  });
}

function remember(map: Map<string, Map<number, string>>, id: string, index: number, host: string): void {
  const m = map.get(id) ?? new Map<number, string>();
  m.set(index, host);
  map.set(id, m);
}

function logAttempt(ctx: AttemptContext, msg: DeliverableMessage, index: number, o: RcptOutcome, via: Endpoint | null, now: number, transport?: string): void {
  const r = msg.recipients[index];
  ctx.log.info('delivery', {
    id: msg.id,
    to: r?.address,
    relay: via?.host ?? transport ?? 'none',
    ip: via?.ip ?? null,
    port: via?.port ?? null,
    reply: o.reply,
    delay: Math.round((now - msg.arrived) / 10) / 100,
    attempts: (r?.attempts ?? 0) + 1,
    status: statusOf(o),
    next_attempt: o.kind === 'deferred' ? new Date(o.nextAt).toISOString() : undefined,
  });
}

/** Every recipient final: DONE, with the bounce when one is owed (queue.finish writes both atomically). */
async function finishIfDone(ctx: AttemptContext, id: string): Promise<void> {
  const m = ctx.queue.get(id);
  if (!m) return; // deleted by the operator meanwhile
  const states = m.recipients.map((r) => r.state);
  if (!isFinished(states)) return;
  const failed = failedRecipients(ctx, m);
  if (needsBounce(m.sender, states)) {
    const bounce = await makeBounce({
      queueId: id, sender: m.sender, arrivedMs: m.arrived, failed, hostname: ctx.cfg.hostname, now: new Date(ctx.now()), body: ctx.queue.readBody(id),
    });
    const bounceId = await ctx.queue.finish(id, bounce);
    ctx.log.info('bounce-queued', { id, bounce_id: bounceId, to: m.sender, failed: failed.length });
  } else {
    await ctx.queue.finish(id);
  }
  ctx.remoteMta.delete(id);
  ctx.log.info('removed', { id, delivered: states.filter((s) => s === 'delivered').length, failed: failed.length });
}

function failedRecipients(ctx: AttemptContext, m: QueuedMessage): FailedRecipient[] {
  const hosts = ctx.remoteMta.get(m.id);
  return m.recipients.flatMap((r, i) => {
    if (r.state !== 'failed') return [];
    const host = hosts?.get(i);
    return [{ address: r.address, reply: r.lastReply ?? '550 5.0.0 Delivery failed', ...(host ? { remoteMta: host } : {}) }];
  });
}
