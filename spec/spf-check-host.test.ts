/**
 * check_host() limits and termination (RFC 7208 §4.6.4, §5.2, §5.4, §5.5, §6.1):
 * hand-built zones for each limit, and fast-check over random zones full of
 * include/redirect cycles, timeouts and oversized MX sets.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DnsAnswer, SpfDns } from '../src/auth/spf/check-host';
import { checkHost } from '../src/auth/spf/check-host';
import { parseRecord } from '../src/auth/spf/record';

interface Zone {
  txt?: Record<string, string[] | 'temp'>;
  a?: Record<string, string[]>;
  mx?: Record<string, string[]>;
  ptr?: Record<string, string[]>;
}

/** In-memory resolver that also counts queries per type. */
function stub(z: Zone): SpfDns & { calls: Record<string, number> } {
  const calls: Record<string, number> = { txt: 0, a: 0, aaaa: 0, mx: 0, ptr: 0 };
  const get = <T>(kind: string, table: Record<string, T[] | 'temp'> | undefined, name: string): DnsAnswer<T> => {
    calls[kind] = (calls[kind] ?? 0) + 1;
    const v = table?.[name.toLowerCase()];
    if (v === 'temp') return { error: 'temp' };
    return v && v.length ? v : { error: 'nxdomain' };
  };
  return {
    calls,
    txt: async (n) => get('txt', z.txt, n),
    a: async (n) => get('a', z.a, n),
    aaaa: async (n) => get('aaaa', undefined, n),
    mx: async (n) => {
      const r = get('mx', z.mx, n);
      return 'error' in r ? r : r.map((exchange, i) => ({ exchange, priority: i }));
    },
    ptr: async (ip) => get('ptr', z.ptr, ip),
  };
}

const run = (z: Zone, ip = '192.0.2.1') => checkHost(ip, 'd0.example', 'u@d0.example', 'helo.example', stub(z));

describe('lookup limits', () => {
  const chain = (n: number) => {
    const txt: Record<string, string[]> = {};
    for (let i = 0; i < n; i++) txt[`d${i}.example`] = [`v=spf1 include:d${i + 1}.example -all`];
    txt[`d${n}.example`] = ['v=spf1 +all'];
    return { txt };
  };
  it('10 includes are allowed, the 11th is a permerror', async () => {
    expect((await run(chain(10))).result).toBe('pass');
    expect((await run(chain(11))).result).toBe('permerror');
  });
  it('an include cycle ends in permerror', async () => {
    expect((await run({ txt: { 'd0.example': ['v=spf1 include:d0.example -all'] } })).result).toBe('permerror');
  });
  it('a redirect cycle ends in permerror', async () => {
    const z = { txt: { 'd0.example': ['v=spf1 redirect=d1.example'], 'd1.example': ['v=spf1 redirect=d0.example'] } };
    expect((await run(z)).result).toBe('permerror');
  });
  it('two void lookups are allowed, the third is a permerror', async () => {
    const two = { txt: { 'd0.example': ['v=spf1 a:x1.example a:x2.example -all'] } };
    const three = { txt: { 'd0.example': ['v=spf1 a:x1.example a:x2.example exists:x3.example -all'] } };
    expect((await run(two)).result).toBe('fail');
    expect((await run(three)).result).toBe('permerror');
  });
  it('more than 10 MX names is a permerror', async () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `mx${i}.example`);
    const a = Object.fromEntries(names(11).map((n) => [n, ['198.51.100.1']]));
    expect((await run({ txt: { 'd0.example': ['v=spf1 mx -all'] }, mx: { 'd0.example': names(10) }, a })).result).toBe('fail');
    expect((await run({ txt: { 'd0.example': ['v=spf1 mx -all'] }, mx: { 'd0.example': names(11) }, a })).result).toBe('permerror');
  });
  it('ptr checks only the first 10 names', async () => {
    const names = Array.from({ length: 11 }, (_, i) => `h${i}.d0.example`);
    const z = (validIndex: number): Zone => ({
      txt: { 'd0.example': ['v=spf1 ptr -all'] }, ptr: { '192.0.2.1': names }, a: { [`h${validIndex}.d0.example`]: ['192.0.2.1'] },
    });
    expect((await run(z(9))).result).toBe('pass');
    expect((await run(z(10))).result).toBe('fail');
  });
});

describe('results', () => {
  it('include results map per §5.2', async () => {
    const inc = (target: string[] | 'temp' | undefined) => run({ txt: { 'd0.example': ['v=spf1 include:i.example -all'], ...(target ? { 'i.example': target } : {}) } });
    expect((await inc(['v=spf1 +all'])).result).toBe('pass');
    expect((await inc(['v=spf1 -all'])).result).toBe('fail');
    expect((await inc('temp')).result).toBe('temperror');
    expect((await inc(undefined)).result).toBe('permerror');
    expect((await inc(['v=spf1 bogus'])).result).toBe('permerror');
  });
  it('several SPF records are a permerror; none is none', async () => {
    expect((await run({ txt: { 'd0.example': ['v=spf1 +all', 'v=spf1 -all'] } })).result).toBe('permerror');
    expect((await run({ txt: { 'd0.example': ['other text'] } })).result).toBe('none');
  });
  it('fail carries the exp= text, macro-expanded', async () => {
    const out = await run({ txt: { 'd0.example': ['v=spf1 -all exp=e.example'], 'e.example': ['%{i} is not allowed for %{d}'] } });
    expect(out).toMatchObject({ result: 'fail', explanation: '192.0.2.1 is not allowed for d0.example' });
  });
  it('redirect is ignored when all is present', async () => {
    const z = { txt: { 'd0.example': ['v=spf1 ?all redirect=r.example'], 'r.example': ['v=spf1 -all'] } };
    expect((await run(z)).result).toBe('neutral');
  });
});

const RESULTS = ['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror'];
const NAMES = ['d0.example', 'd1.example', 'd2.example', 'd3.example'];
const name = fc.constantFrom(...NAMES, 'gone.example');
const qual = fc.constantFrom('', '+', '-', '~', '?');
const term = fc.oneof(
  fc.tuple(qual, fc.constantFrom('include:', 'a:', 'mx:', 'exists:', 'ptr:'), name).map((t) => t.join('')),
  name.map((n) => `redirect=${n}`),
  fc.constantFrom('a', 'mx', 'ptr', 'all', '-all', 'ip4:192.0.2.0/24', 'ip6:2001:db8::/32', 'exists:%{i}.%{d}', 'include:%{d2}', 'exp=d1.example', 'bogus'),
);
const record = fc.array(term, { maxLength: 8 }).map((ts) => ['v=spf1', ...ts].join(' '));
const zoneArb = fc.record({
  txt: fc.dictionary(name, fc.oneof(fc.array(record, { minLength: 1, maxLength: 2 }), fc.constant('temp' as const))),
  a: fc.dictionary(fc.constantFrom(...NAMES, 'mx0.example'), fc.array(fc.constantFrom('192.0.2.1', '198.51.100.7'), { minLength: 1, maxLength: 3 })),
  mx: fc.dictionary(name, fc.array(fc.constantFrom(...NAMES, 'mx0.example', 'gone.example'), { minLength: 1, maxLength: 13 })),
  ptr: fc.constant({ '192.0.2.1': NAMES }),
});

describe('properties', () => {
  it('parseRecord never throws', () => {
    const spfish = fc.array(fc.oneof(fc.string(), term, fc.constantFrom('%{', '/', '//', ':', '=', ' ', '\t')), { maxLength: 10 })
      .map((parts) => `v=spf1 ${parts.join('')}`);
    fc.assert(fc.property(fc.oneof(fc.string(), spfish, fc.string({ unit: 'binary' })), (s) => {
      const r = parseRecord(s);
      expect(typeof r.ok).toBe('boolean');
    }), { numRuns: 2000 });
  });

  it('check_host never throws and stays within the lookup limits', async () => {
    await fc.assert(fc.asyncProperty(zoneArb, fc.constantFrom('192.0.2.1', '2001:db8::1'), async (z, ip) => {
      const dns = stub(z);
      const out = await checkHost(ip, 'd0.example', 'u@d0.example', 'helo.example', dns);
      expect(RESULTS).toContain(out.result);
      // 1 top-level TXT + at most 10 include/redirect targets + 1 exp.
      expect(dns.calls.txt ?? 0).toBeLessThanOrEqual(12);
      // at most 10 terms, each at most 1 MX/PTR query plus 10 address queries.
      const total = Object.values(dns.calls).reduce((x, y) => x + y, 0);
      expect(total).toBeLessThanOrEqual(12 + 10 * 11);
    }), { numRuns: 500 });
  });
});
