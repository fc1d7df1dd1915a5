/**
 * src/dns/cache.ts: TTL expiry with an injected clock, the bounded LRU, and
 * the documented lifetime rules for routes (RFC 2181 §8 TTLs, RFC 2308
 * negative caching; node:dns gives no MX TTL, so a route follows its
 * addresses' TTLs, floored at 5 s and capped at 1 h).
 */
import { describe, expect, it } from 'vitest';
import { MAX_TTL_S, MIN_TTL_S, NEGATIVE_TTL_S, NULL_MX_TTL_S, TtlCache, routeTtl } from '../../src/dns/cache';
import type { Route } from '../../src/dns/mx';

function clock() {
  let now = 5_000;
  return { now: () => now, advance: (s: number) => void (now += s * 1000) };
}

const hosts: Route = { kind: 'hosts', implicit: false, hosts: [{ name: 'mx.test', preference: 10, addresses: ['127.0.0.2'] }] };

describe('TtlCache', () => {
  it('an entry lives exactly its TTL', () => {
    const c = clock();
    const cache = new TtlCache<string>({ now: c.now });
    cache.set('k', 'v', 10);
    c.advance(9.999);
    expect(cache.get('k')).toBe('v');
    c.advance(0.001);
    expect(cache.get('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('a TTL of 0 stores nothing and removes an older entry', () => {
    const cache = new TtlCache<string>();
    cache.set('k', 'v', 60);
    cache.set('k', 'w', 0);
    expect(cache.get('k')).toBeUndefined();
  });

  it('is bounded: the least recently used entry goes first', () => {
    const cache = new TtlCache<number>({ maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) cache.set(k, 1, 60);
    cache.get('a');
    cache.set('d', 1, 60);
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((k) => cache.get(k))).toEqual([1, 1, 1]);
  });

  it('10 000 distinct keys never hold more than maxEntries', () => {
    const cache = new TtlCache<number>({ maxEntries: 100 });
    for (let i = 0; i < 10_000; i++) cache.set(`d${i}.test`, i, 60);
    expect(cache.size).toBe(100);
    expect(cache.get('d9999.test')).toBe(9999);
  });
});

describe('routeTtl rules', () => {
  it.each([
    [[300, 60, 120], 60],
    [[0], MIN_TTL_S],
    [[2], MIN_TTL_S],
    [[86400], MAX_TTL_S],
    [[], MIN_TTL_S],
  ])('a route whose addresses have TTLs %j lives %i s', (ttls, want) => {
    expect(routeTtl(hosts, ttls)).toBe(want);
  });

  it('null MX, NXDOMAIN, unroutable and temporary', () => {
    expect(routeTtl({ kind: 'null-mx' }, [])).toBe(NULL_MX_TTL_S);
    expect(routeTtl({ kind: 'no-such-domain' }, [])).toBe(NEGATIVE_TTL_S);
    expect(routeTtl({ kind: 'unroutable', enhanced: '5.4.4', reason: 'x' }, [])).toBe(NEGATIVE_TTL_S);
    expect(routeTtl({ kind: 'temporary', reason: 'x' }, [])).toBe(0);
  });
});
