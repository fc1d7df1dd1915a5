/**
 * The retry schedule for a recipient that failed temporarily: when to try again,
 * and when to give up and bounce. Pure: times are numbers the caller supplies.
 *
 * RFC 5321 §4.5.4.1: retry at intervals of at least 30 minutes is the SHOULD for
 *   a sender-SMTP, and give-up time "at least 4-5 days"; Petrel's default
 *   (1m, 5m, 15m, 30m, then hourly; 5 days) retries the common short outages
 *   (greylisting, a restarting server) sooner, then settles at hourly.
 * RFC 5321 §4.5.4.1 also asks that retries of many messages not be synchronised:
 *   jitter spreads them by up to ±10 % of each delay.
 *
 * The rule at the end of the lifetime: when the next scheduled delay would land
 * past arrival + maxLifetime, the recipient is tried once more exactly at that
 * boundary (so a host that comes back in the last hours still gets the mail),
 * unless the boundary is closer than the schedule's first (shortest) delay, in
 * which case it expires now: a retry moments after a failure would only hammer
 * the host. A failure at or after the boundary is 'expired'.
 */

export interface RetryPolicy {
  /** Seconds between attempts: the first after attempt 1, and so on; the last entry repeats. */
  schedule: number[];
  /** Seconds after arrival after which a temporarily failing recipient fails for good. */
  maxLifetime: number;
}

/** DESIGN.md defaults for retry_schedule and max_queue_lifetime. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  schedule: Object.freeze([60, 300, 900, 1800, 3600]) as number[],
  maxLifetime: 5 * 24 * 3600,
});

/** Jitter spreads each delay over [delay × 0.9, delay × 1.1]. */
export const JITTER_SPREAD = 0.1;

/**
 * Why a policy is unusable, or null: for the config reader's "file:line: what is
 * wrong". A decreasing schedule is refused so that backoff never shrinks
 * (attempt n+1 never comes sooner than attempt n would).
 */
export function checkRetryPolicy(p: RetryPolicy): string | null {
  if (p.schedule.length === 0) return 'retry_schedule needs at least one delay';
  for (const [i, s] of p.schedule.entries()) {
    if (!Number.isFinite(s) || s <= 0) return `retry_schedule: delay ${i + 1} must be a positive number of seconds`;
    const prev = p.schedule[i - 1];
    if (prev !== undefined && s < prev) return `retry_schedule: delay ${i + 1} (${s}s) is shorter than the one before it (${prev}s)`;
  }
  if (!Number.isFinite(p.maxLifetime) || p.maxLifetime < 0) return 'max_queue_lifetime must be zero or a positive number of seconds';
  return null;
}

/**
 * When the next attempt happens after a temporary failure at `nowMs`, or
 * 'expired' when the recipient must now bounce. `attempts` counts the attempts
 * made so far (≥ 1); `jitter` in [0, 1] (0.5 = none) scales the delay by
 * 0.9 … 1.1. The result is always after nowMs and never after arrival + lifetime.
 */
export function nextAttempt(p: RetryPolicy, arrivedMs: number, attempts: number, nowMs: number, jitter = 0.5): number | 'expired' {
  const bad = checkRetryPolicy(p);
  if (bad !== null) throw new RangeError(bad);
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError('nextAttempt: attempts must be an integer ≥ 1');
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError('nextAttempt: jitter must be within 0..1');
  const deadline = arrivedMs + p.maxLifetime * 1000;
  if (nowMs >= deadline) return 'expired';
  const due = nowMs + Math.max(1, Math.round(delayMs(p, attempts) * (1 + (2 * jitter - 1) * JITTER_SPREAD)));
  if (due < deadline) return due;
  return deadline - nowMs >= minGapMs(p) ? deadline : 'expired';
}

/** The scheduled delay after the given number of attempts; past the end, the last entry repeats. */
function delayMs(p: RetryPolicy, attempts: number): number {
  const i = Math.min(attempts, p.schedule.length) - 1;
  return (p.schedule[i] ?? 0) * 1000;
}

/** The shortest delay the schedule allows: closer to the boundary than this, a final attempt is not worth it. */
function minGapMs(p: RetryPolicy): number {
  return (p.schedule[0] ?? 0) * 1000;
}
