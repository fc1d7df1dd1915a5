/**
 * Executable specification of MX selection (src/dns/mx.ts): RFC 5321 §5.1
 * ordering, shuffling and implicit MX, MX self-pruning, RFC 7505 null MX, the
 * host cap, address ordering (RFC 8305 §4), and when "no address" is
 * permanent or temporary.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_ADDRESSES_PER_HOST,
  MAX_MX_HOSTS,
  buildRoute,
  isHostName,
  orderAddresses,
  planMx,
  routeFailure,
  shuffleEqualPreferences,
  type HostAddresses,
  type MxPlan,
  type MxRecord,
  type MxTarget,
} from '../src/dns/mx';

/** Deterministic PRNG (mulberry32) so "different random sources" are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rec = (exchange: string, priority: number): MxRecord => ({ exchange, priority });

function targets(plan: MxPlan): readonly MxTarget[] {
  if (plan.kind !== 'targets') throw new Error(`expected targets, got ${plan.kind}`);
  return plan.targets;
}

// Few names and few preferences, so duplicates and ties are common.
const hostName = fc.constantFrom('a.test', 'b.test', 'c.test', 'd.test', 'e.test', 'f.test', 'g.test', 'h.test', 'i.test', 'j.test', 'k.test', 'l.test');
const records = fc.array(fc.record({ exchange: hostName, priority: fc.integer({ min: 0, max: 4 }).map((p) => p * 10) }), { minLength: 1, maxLength: 30 });
const randomSource = fc.integer().map(seeded);

/** The lowest preference each host was published with. */
function bestPreference(rs: readonly MxRecord[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of rs) m.set(r.exchange, Math.min(m.get(r.exchange) ?? Infinity, r.priority));
  return m;
}

describe('RFC 5321 §5.1 ordering', () => {
  it('preferences never decrease', () => {
    fc.assert(
      fc.property(records, randomSource, (rs, random) => {
        const ts = targets(planMx('x.test', rs, { random }));
        for (let i = 1; i < ts.length; i++) expect(ts[i]!.preference).toBeGreaterThanOrEqual(ts[i - 1]!.preference);
      }),
    );
  });

  it('every host appears once, at its lowest preference, up to the cap; the cap keeps the most preferred', () => {
    fc.assert(
      fc.property(records, randomSource, (rs, random) => {
        const ts = targets(planMx('x.test', rs, { random }));
        const best = bestPreference(rs);
        expect(new Set(ts.map((t) => t.name)).size).toBe(ts.length);
        expect(ts.length).toBe(Math.min(best.size, MAX_MX_HOSTS));
        for (const t of ts) expect(t.preference).toBe(best.get(t.name));
        const worstKept = Math.max(...ts.map((t) => t.preference));
        const kept = new Set(ts.map((t) => t.name));
        for (const [name, p] of best) if (!kept.has(name)) expect(p).toBeGreaterThanOrEqual(worstKept);
      }),
    );
  });

  it('a smaller cap is honoured', () => {
    const rs = ['a', 'b', 'c', 'd'].map((n, i) => rec(`${n}.test`, i));
    expect(targets(planMx('x.test', rs, { random: Math.random, maxHosts: 2 })).map((t) => t.name)).toEqual(['a.test', 'b.test']);
  });

  it('equal-preference groups are permutations of the input group', () => {
    fc.assert(
      fc.property(records, randomSource, (rs, random) => {
        const ts = targets(planMx('x.test', rs, { random }));
        if (ts.length < MAX_MX_HOSTS) {
          const best = bestPreference(rs);
          for (const p of new Set(best.values())) {
            const want = [...best].filter(([, q]) => q === p).map(([n]) => n).sort();
            expect(ts.filter((t) => t.preference === p).map((t) => t.name).sort()).toEqual(want);
          }
        }
      }),
    );
  });

  it('with different random sources, every member of a tie comes first sometimes (both orders occur)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), (n) => {
        const group = Array.from({ length: n }, (_, i) => rec(`h${i}.test`, 10));
        const firsts = new Set<string>();
        for (let seed = 0; seed < 200; seed++) firsts.add(targets(planMx('x.test', [rec('z.test', 20), ...group], { random: seeded(seed) }))[0]!.name);
        expect([...firsts].sort()).toEqual(group.map((r) => r.exchange).sort());
      }),
    );
  });

  it('two hosts at one preference: both orders occur, and no random value moves a host across preferences', () => {
    const rs = [rec('a.test', 10), rec('b.test', 10), rec('c.test', 5)];
    const orders = new Set([0, 0.25, 0.5, 0.75, 0.999999, 1].map((r) => targets(planMx('x.test', rs, { random: () => r })).map((t) => t.name).join(' ')));
    expect([...orders].sort()).toEqual(['c.test a.test b.test', 'c.test b.test a.test']);
  });

  it('host names are compared without case or root dot', () => {
    const ts = targets(planMx('x.test', [rec('MX.Example.TEST.', 20), rec('mx.example.test', 10)], { random: Math.random }));
    expect(ts).toEqual([{ name: 'mx.example.test', preference: 10 }]);
  });
});

describe('implicit MX (RFC 5321 §5.1)', () => {
  it('no MX records: the domain itself at preference 0', () => {
    expect(planMx('Example.TEST', [], { random: Math.random })).toEqual({ kind: 'targets', targets: [{ name: 'example.test', preference: 0 }], implicit: true });
  });
});

describe('null MX (RFC 7505)', () => {
  it('a single "0 ." (node:dns gives the exchange as "") is null MX', () => {
    expect(planMx('x.test', [rec('', 0)], { random: Math.random })).toEqual({ kind: 'null-mx' });
    expect(planMx('x.test', [rec('.', 0)], { random: Math.random })).toEqual({ kind: 'null-mx' });
  });

  it('"." mixed with real MX records, at any preference, is still null MX (the chosen reading)', () => {
    fc.assert(
      fc.property(records, fc.integer({ min: 0, max: 65535 }), fc.nat(), randomSource, (rs, pref, at, random) => {
        const mixed: MxRecord[] = [...rs];
        mixed.splice(at % (rs.length + 1), 0, rec('', pref));
        expect(planMx('x.test', mixed, { random })).toEqual({ kind: 'null-mx' });
      }),
    );
  });

  it('routeFailure gives 5.1.10, permanent', () => {
    expect(routeFailure({ kind: 'null-mx' })).toMatchObject({ permanent: true, enhanced: '5.1.10' });
  });
});

describe('MX self-pruning (RFC 5321 §5.1)', () => {
  const rs = [rec('primary.test', 10), rec('backup.test', 20), rec('other-backup.test', 20), rec('last.test', 30)];

  it('a backup MX keeps only hosts strictly preferred to itself', () => {
    const ts = targets(planMx('x.test', rs, { random: Math.random, self: ['backup.test'] }));
    expect(ts.map((t) => t.name)).toEqual(['primary.test']);
  });

  it('the best MX itself has nowhere to send: a routing loop (5.4.6), permanent', () => {
    const plan = planMx('x.test', rs, { random: Math.random, self: ['primary.test'] });
    expect(plan).toMatchObject({ kind: 'unroutable', enhanced: '5.4.6' });
  });

  it('a host not in the list changes nothing', () => {
    expect(targets(planMx('x.test', rs, { random: Math.random, self: ['elsewhere.test'] }))).toHaveLength(4);
  });
});

describe('shuffleEqualPreferences', () => {
  it('never throws or loses items, even for a source returning 1 or 0', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 })).map((ps) => ps.sort((a, b) => a - b).map((preference, i) => ({ preference, i }))), fc.constantFrom(0, 1, 0.5), (items, r) => {
        const out = shuffleEqualPreferences(items, () => r);
        expect(out.map((x) => x.i).sort((a, b) => a - b)).toEqual(items.map((x) => x.i));
        expect(out.map((x) => x.preference)).toEqual(items.map((x) => x.preference));
      }),
    );
  });
});

describe('address order per host (IPv6 first, families interleaved)', () => {
  const v6 = fc.uniqueArray(fc.ipV6(), { maxLength: 6 });
  const v4 = fc.uniqueArray(fc.ipV4(), { maxLength: 6 });

  it('keeps both families, each in DNS order, interleaved from IPv6, capped', () => {
    fc.assert(
      fc.property(v6, v4, (six, four) => {
        const out = orderAddresses(six, four);
        expect(out.length).toBe(Math.min(six.length + four.length, MAX_ADDRESSES_PER_HOST));
        expect(out.filter((a) => six.includes(a))).toEqual(six.slice(0, out.filter((a) => six.includes(a)).length));
        expect(out.filter((a) => four.includes(a))).toEqual(four.slice(0, out.filter((a) => four.includes(a)).length));
        if (six.length > 0) expect(out[0]).toBe(six[0]);
        if (six.length > 0 && four.length > 0) expect(out[1]).toBe(four[0]);
      }),
    );
  });

  it('example', () => {
    expect(orderAddresses(['::1', '::2'], ['127.0.0.2'])).toEqual(['::1', '127.0.0.2', '::2']);
  });
});

describe('buildRoute: hosts without addresses, and when that is temporary', () => {
  const plan: MxPlan = { kind: 'targets', implicit: false, targets: [{ name: 'a.test', preference: 10 }, { name: 'b.test', preference: 20 }] };
  const none: HostAddresses = { ipv6: [], ipv4: [], temporary: null };
  const failing: HostAddresses = { ipv6: [], ipv4: [], temporary: 'A ESERVFAIL' };
  const some: HostAddresses = { ipv6: [], ipv4: ['127.0.0.3'], temporary: null };

  it('a host with no address is skipped; the others keep their order', () => {
    const route = buildRoute('x.test', plan, new Map([['a.test', none], ['b.test', some]]));
    expect(route).toEqual({ kind: 'hosts', implicit: false, hosts: [{ name: 'b.test', preference: 20, addresses: ['127.0.0.3'] }] });
  });

  it('a host whose lookup failed temporarily is skipped when another host has addresses', () => {
    expect(buildRoute('x.test', plan, new Map([['a.test', failing], ['b.test', some]])).kind).toBe('hosts');
  });

  it('no host has an address and every answer was definite: permanent (5.4.4)', () => {
    const route = buildRoute('x.test', plan, new Map([['a.test', none], ['b.test', none]]));
    expect(route).toMatchObject({ kind: 'unroutable', enhanced: '5.4.4' });
    expect(routeFailure(route)?.permanent).toBe(true);
  });

  it('no host has an address and some lookup failed: temporary (4.4.3)', () => {
    const route = buildRoute('x.test', plan, new Map([['a.test', none], ['b.test', failing]]));
    expect(route.kind).toBe('temporary');
    expect(routeFailure(route)).toMatchObject({ permanent: false, enhanced: '4.4.3' });
  });

  it('null MX passes through', () => {
    expect(buildRoute('x.test', { kind: 'null-mx' }, new Map())).toEqual({ kind: 'null-mx' });
  });
});

describe('isHostName (RFC 1123 §2.1)', () => {
  it.each([
    ['mx.example.test', true],
    ['a', true],
    ['xn--bcher-kva.test', true],
    ['a..b', false],
    ['-a.test', false],
    ['a-.test', false],
    ['a_b.test', false],
    ['', false],
    [`${'a'.repeat(64)}.test`, false],
    [`${'a'.repeat(63)}.test`, true],
    [Array.from({ length: 64 }, () => 'abc').join('.'), false],
  ])('%s → %s', (name, want) => {
    expect(isHostName(name)).toBe(want);
  });
});
