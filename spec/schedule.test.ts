/**
 * Executable spec for the retry schedule (src/queue/schedule.ts): RFC 5321
 * §4.5.4.1 retry intervals and give-up time, jitter against synchronised retries,
 * and Petrel's rule of one last attempt exactly at the lifetime boundary.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRetryPolicy, DEFAULT_RETRY_POLICY, nextAttempt } from '../src/queue/schedule';
import type { RetryPolicy } from '../src/queue/schedule';

const S = 1000;
const T0 = Date.UTC(2026, 0, 1);

/** 'expired' sorts after every time: it is "never again". */
const rank = (r: number | 'expired') => (r === 'expired' ? Number.POSITIVE_INFINITY : r);

/**
 * Non-decreasing schedules of 1..6 delays (seconds) and a lifetime up to a day,
 * at most 2000 shortest delays long so that a whole lifecycle stays a few thousand steps.
 */
const policyArb: fc.Arbitrary<RetryPolicy> = fc
  .record({
    steps: fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 6 }),
    maxLifetime: fc.integer({ min: 0, max: 86_400 }),
  })
  .map(({ steps, maxLifetime }) => {
    const schedule = [...steps].sort((a, b) => a - b);
    return { schedule, maxLifetime: Math.min(maxLifetime, (schedule[0] ?? 1) * 2000) };
  });

/** Runs a recipient from arrival to expiry, failing every attempt; returns the attempt times and the outcome. */
function lifecycle(p: RetryPolicy, arrived: number, jitter: (n: number) => number, maxSteps = 10_000) {
  const times = [arrived];
  for (let attempts = 1; attempts <= maxSteps; attempts++) {
    const now = times[times.length - 1] ?? arrived;
    const next = nextAttempt(p, arrived, attempts, now, jitter(attempts));
    if (next === 'expired') return { times, expired: true };
    times.push(next);
  }
  return { times, expired: false };
}

describe('nextAttempt: the default schedule (1m, 5m, 15m, 30m, then hourly; 5 days)', () => {
  it('uses the delay for the number of attempts made, then repeats the last one', () => {
    const p = DEFAULT_RETRY_POLICY;
    expect(checkRetryPolicy(p)).toBeNull();
    const now = T0 + 10 * S;
    expect(nextAttempt(p, T0, 1, now)).toBe(now + 60 * S);
    expect(nextAttempt(p, T0, 2, now)).toBe(now + 300 * S);
    expect(nextAttempt(p, T0, 4, now)).toBe(now + 1800 * S);
    expect(nextAttempt(p, T0, 5, now)).toBe(now + 3600 * S);
    expect(nextAttempt(p, T0, 60, now)).toBe(now + 3600 * S);
  });

  it('jitter 0 and 1 are the ends of the ±10 % band', () => {
    const now = T0 + 10 * S;
    expect(nextAttempt(DEFAULT_RETRY_POLICY, T0, 5, now, 0)).toBe(now + 3240 * S);
    expect(nextAttempt(DEFAULT_RETRY_POLICY, T0, 5, now, 1)).toBe(now + 3960 * S);
  });

  it('a recipient that never succeeds is tried for 5 days, the last time exactly at the boundary, then expires', () => {
    const { times, expired } = lifecycle(DEFAULT_RETRY_POLICY, T0, () => 0.5);
    expect(expired).toBe(true);
    const deadline = T0 + 5 * 86_400 * S;
    expect(times[times.length - 1]).toBe(deadline);
    // 1m+5m+15m+30m = 51m, then hourly: the attempt at 51m + 119h lies 9m before the boundary.
    expect(times[times.length - 2]).toBe(deadline - 9 * 60 * S);
    expect(times.length).toBe(1 + 4 + 119 + 1);
  });
});

describe('nextAttempt: the lifetime boundary', () => {
  it('clamps the last attempt to arrival + lifetime when the schedule would skip past it', () => {
    const p = { schedule: [60, 600], maxLifetime: 900 };
    expect(lifecycle(p, T0, () => 0.5).times).toEqual([T0, T0 + 60 * S, T0 + 660 * S, T0 + 900 * S]);
  });

  it('expires instead when the boundary is closer than the shortest delay (no retry moments after a failure)', () => {
    const p = { schedule: [60], maxLifetime: 150 };
    expect(lifecycle(p, T0, () => 0.5).times).toEqual([T0, T0 + 60 * S, T0 + 120 * S]);
    expect(nextAttempt(p, T0, 3, T0 + 120 * S)).toBe('expired');
  });

  it('a failure at or after the boundary is expired, and a lifetime of 0 means one attempt only', () => {
    const p = { schedule: [60], maxLifetime: 900 };
    expect(nextAttempt(p, T0, 7, T0 + 900 * S)).toBe('expired');
    expect(nextAttempt(p, T0, 7, T0 + 901 * S)).toBe('expired');
    expect(nextAttempt({ schedule: [60], maxLifetime: 0 }, T0, 1, T0)).toBe('expired');
  });
});

describe('nextAttempt: properties', () => {
  const jitterArb = fc.double({ min: 0, max: 1, noNaN: true });

  it('is monotonic in attempts (expired counting as never)', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 90_000 }), jitterArb, (p, k, elapsed, j) => {
        const now = T0 + elapsed * S;
        expect(rank(nextAttempt(p, T0, k + 1, now, j))).toBeGreaterThanOrEqual(rank(nextAttempt(p, T0, k, now, j)));
      }),
    );
  });

  it('is always after now and never after arrival + lifetime; within ±10 % of the delay unless clamped', () => {
    fc.assert(
      fc.property(policyArb, fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 90_000 }), jitterArb, (p, k, elapsed, j) => {
        const now = T0 + elapsed * S;
        const next = nextAttempt(p, T0, k, now, j);
        const deadline = T0 + p.maxLifetime * S;
        if (next === 'expired') return;
        expect(next).toBeGreaterThan(now);
        expect(next).toBeLessThanOrEqual(deadline);
        const delay = (p.schedule[Math.min(k, p.schedule.length) - 1] ?? 0) * S;
        if (next !== deadline) {
          expect(next - now).toBeGreaterThanOrEqual(Math.floor(delay * 0.9));
          expect(next - now).toBeLessThanOrEqual(Math.ceil(delay * 1.1));
        }
      }),
    );
  });

  it('every lifecycle ends in expired, strictly increasing, and its last attempt is near the boundary', () => {
    fc.assert(
      fc.property(policyArb, fc.array(jitterArb, { minLength: 1, maxLength: 8 }), (p, js) => {
        const { times, expired } = lifecycle(p, T0, (n) => js[n % js.length] ?? 0.5);
        expect(expired).toBe(true);
        for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] ?? 0);
        const deadline = T0 + p.maxLifetime * S;
        const last = times[times.length - 1] ?? T0;
        expect(last).toBeLessThanOrEqual(deadline);
        // Either the boundary itself was tried, or it was closer than the shortest delay.
        if (last !== deadline) expect(deadline - last).toBeLessThan((p.schedule[0] ?? 0) * S * 1.1 + 1);
      }),
    );
  });
});

describe('checkRetryPolicy and argument checks', () => {
  it('names what is wrong with a policy', () => {
    expect(checkRetryPolicy({ schedule: [], maxLifetime: 10 })).toMatch(/at least one/);
    expect(checkRetryPolicy({ schedule: [60, 0], maxLifetime: 10 })).toMatch(/delay 2 must be a positive/);
    expect(checkRetryPolicy({ schedule: [300, 60], maxLifetime: 10 })).toMatch(/shorter than the one before/);
    expect(checkRetryPolicy({ schedule: [60], maxLifetime: Number.NaN })).toMatch(/max_queue_lifetime/);
    expect(checkRetryPolicy({ schedule: [1, 1, 2], maxLifetime: 0 })).toBeNull();
  });

  it('throws RangeError for a bad policy, attempts < 1 or jitter outside 0..1', () => {
    expect(() => nextAttempt({ schedule: [], maxLifetime: 10 }, T0, 1, T0)).toThrow(RangeError);
    expect(() => nextAttempt(DEFAULT_RETRY_POLICY, T0, 0, T0)).toThrow(RangeError);
    expect(() => nextAttempt(DEFAULT_RETRY_POLICY, T0, 1.5, T0)).toThrow(RangeError);
    expect(() => nextAttempt(DEFAULT_RETRY_POLICY, T0, 1, T0, 1.01)).toThrow(RangeError);
    expect(() => nextAttempt(DEFAULT_RETRY_POLICY, T0, 1, T0, Number.NaN)).toThrow(RangeError);
  });
});
