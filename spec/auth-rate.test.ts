// Sliding-window rate limits (src/policy/rate.ts): checked against a naive
// model that keeps every event, for any sequence of events and clock steps;
// plus the bound on memory (timestamps per key, number of keys).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateWindow } from '../src/policy/rate';

type Op = { key: string; dt: number; kind: 'record' | 'try' | 'reached' };

const op: fc.Arbitrary<Op> = fc.record({
  key: fc.constantFrom('192.0.2.1', '192.0.2.2', 'alice@example.com'),
  dt: fc.oneof(fc.constant(0), fc.nat(30), fc.nat(200)),
  kind: fc.constantFrom('record', 'try', 'reached'),
});

describe('RateWindow', () => {
  it('answers like a model that keeps every event', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 100 }), fc.array(op, { maxLength: 60 }), (limit, windowMs, ops) => {
        const w = new RateWindow({ limit, windowMs });
        const model = new Map<string, number[]>();
        let now = 1_000;
        for (const o of ops) {
          now += o.dt;
          const inWindow = (model.get(o.key) ?? []).filter((t) => t > now - windowMs).length;
          const full = inWindow >= limit;
          const push = () => model.set(o.key, [...(model.get(o.key) ?? []), now]);
          if (o.kind === 'reached') expect(w.reached(o.key, now)).toBe(full);
          if (o.kind === 'try') {
            expect(w.tryRecord(o.key, now)).toBe(!full);
            if (!full) push();
          }
          if (o.kind === 'record') {
            push();
            expect(w.record(o.key, now)).toBe(Math.min(inWindow + 1, limit));
          }
        }
      }),
    );
  });

  it('limit 0 means no limit', () => {
    const w = new RateWindow({ limit: 0, windowMs: 1000 });
    for (let i = 0; i < 100; i++) expect(w.tryRecord('k', 5)).toBe(true);
    expect(w.reached('k', 5)).toBe(false);
    expect(w.size).toBe(0);
  });

  it('the Nth failure reaches the limit; the window sliding past frees the key', () => {
    const w = new RateWindow({ limit: 3, windowMs: 60_000 });
    expect([w.record('ip', 0), w.record('ip', 10), w.record('ip', 20)]).toEqual([1, 2, 3]);
    expect(w.reached('ip', 30)).toBe(true);
    expect(w.reached('other', 30)).toBe(false);
    // An event exactly windowMs old has left the window.
    expect(w.reached('ip', 59_999)).toBe(true);
    expect(w.reached('ip', 60_000)).toBe(false);
    expect(w.count('ip', 60_020)).toBe(0);
  });

  it('keeps at most maxKeys keys, dropping expired ones first, then the least recently active', () => {
    const w = new RateWindow({ limit: 2, windowMs: 100 }, 3);
    w.record('old', 0);
    w.record('a', 150);
    w.record('b', 160);
    w.record('c', 170); // 4 keys: 'old' has expired and goes
    expect(w.size).toBe(3);
    w.record('a', 175);
    w.record('d', 180); // none expired: 'b', the least recently active, goes
    expect(w.size).toBe(3);
    expect(w.count('b', 180)).toBe(0);
    expect(w.count('a', 180)).toBe(2);
  });
});
