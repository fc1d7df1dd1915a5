/**
 * From what a delivery attempt learned to what the queue records, PURE:
 * - RFC 5321 §4.2.1: 2yz delivered, 4yz transient (retry later), 5yz permanent;
 * - RFC 5321 §4.5.4.1: a transient failure is retried on the schedule until
 *   the maximum queue lifetime, then fails for good (queue/schedule.ts);
 * - RFC 7505 §4.2 / RFC 3463: a failed route becomes a reply with the
 *   enhanced code routeFailure gives (null MX 556 5.1.10, NXDOMAIN 5.1.2,
 *   DNS trouble 4.4.3);
 * - RFC 3464 §2 / RFC 3461 §6.2: when a message is finished and whether it
 *   needs a DSN — one per message, never for the null sender (a bounce is
 *   never bounced: that would loop).
 */
import { routeFailure, type Route } from '../dns/mx';
import { nextAttempt, type RetryPolicy } from '../queue/schedule';
import { oneLine } from '../smtp/client-session';
import { reply as makeReply, type Reply } from '../smtp/reply';

/** What the queue records for one recipient (queue.ts recordOutcomes). */
export type RcptOutcome =
  | { readonly kind: 'delivered'; readonly reply: string }
  | { readonly kind: 'deferred'; readonly reply: string; readonly nextAt: number }
  | { readonly kind: 'failed'; readonly reply: string };

/** The log's status word, as in Postfix's status= field. */
export type Status = 'sent' | 'deferred' | 'bounced';

export interface RetryContext {
  readonly policy: RetryPolicy;
  /** When the message arrived, ms since the epoch. */
  readonly arrivedMs: number;
  /** Attempts already recorded for this recipient, before this one. */
  readonly attemptsBefore: number;
  readonly nowMs: number;
  /** 0..1, 0.5 = no jitter. */
  readonly jitter: number;
}

/** The queue record for a reply to this recipient. */
export function outcomeFor(r: Reply, ctx: RetryContext): RcptOutcome {
  const text = oneLine(r);
  const klass = Math.floor(r.code / 100);
  if (klass === 2) return { kind: 'delivered', reply: text };
  if (klass === 5) return { kind: 'failed', reply: text };
  // Anything that is neither success nor permanent failure is retried (a 3yz here would be a broken peer).
  const next = nextAttempt(ctx.policy, ctx.arrivedMs, ctx.attemptsBefore + 1, ctx.nowMs, ctx.jitter);
  return next === 'expired' ? { kind: 'failed', reply: text } : { kind: 'deferred', reply: text, nextAt: next };
}

/** The reply that stands for a route that failed before any connection (null MX, NXDOMAIN, SERVFAIL …). */
export function routeReply(route: Route): Reply | null {
  const f = routeFailure(route);
  if (!f) return null;
  if (!f.permanent) return makeReply(451, f.enhanced, f.text);
  return makeReply(route.kind === 'null-mx' ? 556 : 550, f.enhanced, f.text);
}

export function statusOf(o: RcptOutcome): Status {
  switch (o.kind) {
    case 'delivered': return 'sent';
    case 'deferred': return 'deferred';
    case 'failed': return 'bounced';
  }
}

type State = 'queued' | 'deferred' | 'delivered' | 'failed';

/** Every recipient has a final state: the message can leave the queue. */
export function isFinished(states: readonly State[]): boolean {
  return states.every((s) => s === 'delivered' || s === 'failed');
}

/** RFC 3464: a DSN goes to a non-null sender when at least one recipient failed. */
export function needsBounce(sender: string, states: readonly State[]): boolean {
  return sender !== '' && states.includes('failed');
}

/** "550 5.1.1 text" → code and enhanced code, for a reply recorded as text (the queue keeps last_reply as one line). */
export function parseReplyText(text: string): { code: number; enhanced: string | undefined } {
  const m = /^([2-5]\d\d)(?:[ -]|$)(?:([245]\.\d{1,3}\.\d{1,3})(?=[ -]|$))?/.exec(text);
  if (!m) return { code: 451, enhanced: undefined };
  return { code: Number(m[1]), enhanced: m[2] };
}
