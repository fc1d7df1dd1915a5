/**
 * DMARC (RFC 7489): record parsing and selection (§6.3, §6.4, §6.6.3 steps
 * 2, 5 and 6), policy discovery over an in-memory zone (§6.6.3), identifier
 * alignment in relaxed and strict modes (§3.1), the verdict (§4.2) and pct
 * sampling with an injected random source (§6.6.4); fast-check shows the
 * evaluator never throws and never applies more than the published policy.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DmarcDns, DmarcInput, TxtAnswer } from '../src/auth/dmarc/evaluate';
import { evaluateDmarc } from '../src/auth/dmarc/evaluate';
import { MAX_RECORD_LENGTH, parseDmarcRecord, selectDmarcRecord } from '../src/auth/dmarc/record';

type Entry = string[] | 'temp' | 'nodata' | 'throw';

/** In-memory resolver that records the names asked for; a missing name is NXDOMAIN. */
function zone(z: Record<string, Entry>): DmarcDns & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    txt: async (name: string): Promise<TxtAnswer> => {
      asked.push(name);
      const v = z[name.toLowerCase()];
      if (v === undefined) return { error: 'nxdomain' };
      if (v === 'throw') throw new Error('socket closed');
      if (v === 'temp' || v === 'nodata') return { error: v };
      return v;
    },
  };
}

const FROM = 'example.com';
const none = { result: 'none', domain: '' };
const input = (over: Partial<DmarcInput> = {}): DmarcInput => ({ fromDomain: FROM, spf: none, dkim: [], ...over });
const spfPass = (domain: string) => ({ spf: { result: 'pass', domain } });
const dkimPass = (domain: string) => ({ dkim: [{ result: 'pass', domain }] });
const reject = { '_dmarc.example.com': ['v=DMARC1; p=reject'] };

describe('parseDmarcRecord', () => {
  it('fills in the §6.3 defaults', () => {
    const r = parseDmarcRecord('v=DMARC1; p=quarantine');
    expect(r).toEqual({
      ok: true,
      record: { p: 'quarantine', sp: 'quarantine', adkim: 'r', aspf: 'r', pct: 100, fo: ['0'], rf: ['afrf'], ri: 86400, rua: [], ruf: [], impliedPolicy: false },
    });
  });

  it('reads every tag, case-insensitively except DMARC1', () => {
    const r = parseDmarcRecord('V = DMARC1 ;P=Reject; SP=none; adkim=s; aspf=S; pct=25; fo=1:d; ri=3600; rua=mailto:a@example.com!10m, mailto:b@example.net; ruf=mailto:f@example.com; x-future=1;');
    expect(r.ok && r.record).toMatchObject({ p: 'reject', sp: 'none', adkim: 's', aspf: 's', pct: 25, fo: ['1', 'd'], ri: 3600 });
    expect(r.ok && r.record.rua).toEqual(['mailto:a@example.com!10m', 'mailto:b@example.net']);
  });

  it.each([
    ['p=reject; v=DMARC1', 'v not first'],
    ['v=dmarc1; p=reject', 'DMARC1 is case-sensitive'],
    ['v=DMARC10; p=reject', 'another version'],
    ['v=DMARC1', 'no p'],
    ['v=DMARC1; p=bogus', 'bad p'],
    ['v=DMARC1; p=reject; sp=bogus', 'bad sp (§6.6.3 step 6)'],
  ])('%s is not a usable record (%s)', (text, why) => {
    expect(parseDmarcRecord(text).ok, why).toBe(false);
  });

  it('an unusable rua= is dropped, not fatal, when p= is valid', () => {
    const r = parseDmarcRecord('v=DMARC1; p=none; rua=not a uri');
    expect(r.ok && r.record.rua).toEqual([]);
  });

  it('a missing or invalid p with a valid rua acts as p=none (§6.6.3 step 6)', () => {
    for (const text of ['v=DMARC1; rua=mailto:d@example.com', 'v=DMARC1; p=block; rua=mailto:d@example.com', 'v=DMARC1; p=reject; sp=x; rua=mailto:d@example.com']) {
      const r = parseDmarcRecord(text);
      expect(r.ok && r.record, text).toMatchObject({ p: 'none', sp: 'none', impliedPolicy: true });
    }
    expect(parseDmarcRecord('v=DMARC1; rua=nonsense').ok).toBe(false);
  });

  it('a malformed optional tag falls back to its default', () => {
    for (const pct of ['101', '-1', '50.5', 'all', '', '99999999999']) {
      const r = parseDmarcRecord(`v=DMARC1; p=reject; pct=${pct}; adkim=x; ri=soon; fo=9`);
      expect(r.ok && r.record, pct).toMatchObject({ pct: 100, adkim: 'r', ri: 86400, fo: ['0'] });
    }
    expect(parseDmarcRecord('v=DMARC1; p=reject; pct=0')).toMatchObject({ ok: true, record: { pct: 0 } });
  });

  it('for a repeated tag the first counts; tag-specs without "=" are skipped', () => {
    const r = parseDmarcRecord('v=DMARC1; p=none; junk; p=reject;;');
    expect(r.ok && r.record.p).toBe('none');
  });

  it('bounds length and report lists', () => {
    expect(parseDmarcRecord(`v=DMARC1; p=none; x=${'a'.repeat(MAX_RECORD_LENGTH)}`).ok).toBe(false);
    const many = Array.from({ length: 50 }, (_, i) => `mailto:r${i}@example.com`).join(',');
    const r = parseDmarcRecord(`v=DMARC1; p=none; rua=${many}`);
    expect(r.ok && r.record.rua.length).toBe(8);
  });

  it('never throws', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => typeof parseDmarcRecord(`v=DMARC1; ${s}`).ok === 'boolean'));
  });
});

describe('selectDmarcRecord', () => {
  it('discards other TXT records and wants exactly one (§6.6.3 steps 2 and 5)', () => {
    expect(selectDmarcRecord(['v=spf1 -all', 'v=DMARC1; p=none'])).toEqual({ kind: 'one', text: 'v=DMARC1; p=none' });
    expect(selectDmarcRecord(['v=spf1 -all', 'google-site-verification=x'])).toEqual({ kind: 'none' });
    expect(selectDmarcRecord([])).toEqual({ kind: 'none' });
    expect(selectDmarcRecord(['v=DMARC1; p=none', 'v=DMARC1; p=reject'])).toEqual({ kind: 'several', count: 2 });
  });
});

describe('evaluateDmarc: alignment and verdict', () => {
  const cases: [string, Record<string, Entry>, Partial<DmarcInput>, string, boolean, boolean][] = [
    ['SPF aligned', reject, spfPass('example.com'), 'pass', true, false],
    ['DKIM aligned', reject, dkimPass('example.com'), 'pass', false, true],
    ['SPF relaxed: subdomain of the org domain', reject, spfPass('bounce.example.com'), 'pass', true, false],
    ['SPF strict: subdomain is not aligned', { '_dmarc.example.com': ['v=DMARC1; p=reject; aspf=s'] }, spfPass('bounce.example.com'), 'fail', false, false],
    ['SPF strict: exact match, any case', { '_dmarc.example.com': ['v=DMARC1; p=reject; aspf=s'] }, spfPass('EXAMPLE.com.'), 'pass', true, false],
    ['DKIM relaxed: d= a subdomain', reject, dkimPass('mail.example.com'), 'pass', false, true],
    ['DKIM strict: d= a subdomain', { '_dmarc.example.com': ['v=DMARC1; p=reject; adkim=s'] }, dkimPass('mail.example.com'), 'fail', false, false],
    ['DKIM strict: exact d=', { '_dmarc.example.com': ['v=DMARC1; p=reject; adkim=s'] }, dkimPass('Example.COM'), 'pass', false, true],
    ['unaligned passes are not enough', reject, { spf: { result: 'pass', domain: 'other.org' }, dkim: [{ result: 'pass', domain: 'other.org' }] }, 'fail', false, false],
    ['aligned SPF that did not pass', reject, { spf: { result: 'softfail', domain: 'example.com' } }, 'fail', false, false],
    ['a failed aligned signature beside a passing unaligned one', reject, { dkim: [{ result: 'fail', domain: 'example.com' }, { result: 'pass', domain: 'esp.example.net' }] }, 'fail', false, false],
    ['one aligned passing signature among several', reject, { dkim: [{ result: 'fail', domain: 'example.com' }, { result: 'pass', domain: 'x.example.com' }] }, 'pass', false, true],
    ['a shared public suffix is not one organization', { '_dmarc.alice.github.io': ['v=DMARC1; p=reject'] }, { fromDomain: 'alice.github.io', ...spfPass('mallory.github.io') }, 'fail', false, false],
  ];
  it.each(cases)('%s', async (_name, z, over, result, spf, dkim) => {
    const out = await evaluateDmarc(input(over), zone(z));
    expect({ result: out.result, spf: out.spfAligned, dkim: out.dkimAligned }).toEqual({ result, spf, dkim });
    expect(out.applied).toBe(result === 'pass' ? 'none' : 'reject');
  });
});

describe('evaluateDmarc: discovery (§6.6.3)', () => {
  const orgRecord = { '_dmarc.example.com': ['v=DMARC1; p=reject; sp=quarantine'] };

  it('a subdomain without its own record uses sp= from the org domain', async () => {
    const dns = zone(orgRecord);
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), dns);
    expect(out).toMatchObject({ result: 'fail', policy: 'quarantine', applied: 'quarantine', recordDomain: 'example.com', orgDomain: 'example.com' });
    expect(dns.asked).toEqual(['_dmarc.news.example.com', '_dmarc.example.com']);
  });

  it('sp= defaults to p=', async () => {
    const out = await evaluateDmarc(input({ fromDomain: 'a.b.example.com' }), zone(reject));
    expect(out.policy).toBe('reject');
  });

  it('the org domain itself is governed by p=, and a subdomain record by its own p=', async () => {
    expect((await evaluateDmarc(input(), zone(orgRecord))).policy).toBe('reject');
    const z = { ...orgRecord, '_dmarc.news.example.com': ['v=DMARC1; p=none'] };
    const dns = zone(z);
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), dns);
    expect(out).toMatchObject({ policy: 'none', recordDomain: 'news.example.com' });
    expect(dns.asked).toEqual(['_dmarc.news.example.com']);
  });

  it('NODATA and TXT records without v=DMARC1 fall back to the org domain', async () => {
    for (const first of ['nodata', ['v=spf1 -all']] as Entry[]) {
      const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), zone({ ...orgRecord, '_dmarc.news.example.com': first }));
      expect(out.recordDomain).toBe('example.com');
    }
  });

  it('no record anywhere → none, after asking both names', async () => {
    const dns = zone({});
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com', ...spfPass('example.com') }), dns);
    expect(out).toMatchObject({ result: 'none', policy: null, applied: 'none', recordDomain: null, spfAligned: true });
    expect(dns.asked).toEqual(['_dmarc.news.example.com', '_dmarc.example.com']);
  });

  it('a From domain that is its own org domain is asked once', async () => {
    const dns = zone({});
    await evaluateDmarc(input(), dns);
    expect(dns.asked).toEqual(['_dmarc.example.com']);
  });

  it('a temporary failure is temperror, with no fall-back past it', async () => {
    const dns = zone({ ...orgRecord, '_dmarc.news.example.com': 'temp' });
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), dns);
    expect(out).toMatchObject({ result: 'temperror', policy: null, applied: 'none' });
    expect(dns.asked).toEqual(['_dmarc.news.example.com']);
    const atOrg = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), zone({ '_dmarc.example.com': 'temp' }));
    expect(atOrg.result).toBe('temperror');
  });

  it('a rejected lookup promise is temperror, not an exception', async () => {
    const out = await evaluateDmarc(input(), zone({ '_dmarc.example.com': 'throw' }));
    expect(out.result).toBe('temperror');
    expect(out.reason).toContain('socket closed');
  });

  it('several DMARC records → none, and no fall-back to the org domain', async () => {
    const dns = zone({ ...orgRecord, '_dmarc.news.example.com': ['v=DMARC1; p=none', 'v=DMARC1; p=reject'] });
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), dns);
    expect(out).toMatchObject({ result: 'none', policy: null });
    expect(dns.asked).toEqual(['_dmarc.news.example.com']);
  });

  it('an invalid record → none (no DMARC processing), no fall-back', async () => {
    const dns = zone({ ...orgRecord, '_dmarc.news.example.com': ['v=DMARC1; p=destroy'] });
    const out = await evaluateDmarc(input({ fromDomain: 'news.example.com' }), dns);
    expect(out).toMatchObject({ result: 'none', policy: null, applied: 'none' });
    expect(out.reason).toContain('invalid');
    expect(dns.asked).toHaveLength(1);
  });

  it('a record without p= but with rua= is p=none: fail, nothing applied', async () => {
    const out = await evaluateDmarc(input(), zone({ '_dmarc.example.com': ['v=DMARC1; rua=mailto:dmarc@example.com'] }));
    expect(out).toMatchObject({ result: 'fail', policy: 'none', applied: 'none' });
  });

  it.each(['[192.0.2.1]', 'localhost', 'a..example.com', '-bad.example.com', '', 'example.123', 'exa mple.com', `${'a'.repeat(64)}.com`])(
    'invalid From domain %j → permerror without a query',
    async (d) => {
      const dns = zone(reject);
      const out = await evaluateDmarc(input({ fromDomain: d }), dns);
      expect(out.result).toBe('permerror');
      expect(dns.asked).toEqual([]);
    },
  );
});

describe('evaluateDmarc: pct sampling (§6.6.4)', () => {
  const fail = input(spfPass('other.org'));
  const run = (record: string, random?: () => number) => evaluateDmarc(fail, zone({ '_dmarc.example.com': [record] }), random ? { random } : {});

  it('inside the sample the policy applies', async () => {
    expect((await run('v=DMARC1; p=reject; pct=50', () => 0.49)).applied).toBe('reject');
    expect((await run('v=DMARC1; p=quarantine; pct=50', () => 0)).applied).toBe('quarantine');
  });

  it('outside it reject becomes quarantine and quarantine becomes none', async () => {
    expect((await run('v=DMARC1; p=reject; pct=50', () => 0.5)).applied).toBe('quarantine');
    expect((await run('v=DMARC1; p=quarantine; pct=50', () => 0.99)).applied).toBe('none');
  });

  it('pct=0 samples nothing, pct=100 everything', async () => {
    expect((await run('v=DMARC1; p=reject; pct=0', () => 0)).applied).toBe('quarantine');
    expect((await run('v=DMARC1; p=reject; pct=100', () => 0.999999)).applied).toBe('reject');
  });

  it('without a random source only pct=100 applies in full', async () => {
    expect((await run('v=DMARC1; p=reject; pct=99')).applied).toBe('quarantine');
    expect((await run('v=DMARC1; p=reject')).applied).toBe('reject');
  });

  it('a pass is never sampled into a policy', async () => {
    const out = await evaluateDmarc(input(spfPass(FROM)), zone({ '_dmarc.example.com': ['v=DMARC1; p=reject; pct=50'] }), { random: () => 0 });
    expect(out.applied).toBe('none');
  });
});

const RANK = { none: 0, quarantine: 1, reject: 2 } as const;
const domain = fc.constantFrom('example.com', 'news.example.com', 'EXAMPLE.COM.', 'other.org', 'example.co.uk', 'a.example.co.uk', 'co.uk', '', 'bad..name');
const records = fc.constantFrom<Entry>(
  'temp',
  'nodata',
  'throw',
  ['v=DMARC1; p=reject'],
  ['v=DMARC1; p=quarantine; sp=reject; pct=30; adkim=s'],
  ['v=DMARC1; p=none; aspf=s'],
  ['v=DMARC1; p=reject', 'v=DMARC1; p=none'],
  ['v=DMARC1; rua=mailto:x@example.com'],
  ['v=spf1 -all'],
);
const results = fc.constantFrom('pass', 'fail', 'none', 'temperror', 'PASS');

describe('evaluateDmarc: properties', () => {
  it('never throws, and never applies more than the published policy', async () => {
    await fc.assert(
      fc.asyncProperty(
        domain,
        fc.record({ result: results, domain }),
        fc.array(fc.record({ result: results, domain }), { maxLength: 3 }),
        fc.dictionary(fc.constantFrom('_dmarc.example.com', '_dmarc.news.example.com', '_dmarc.example.co.uk', '_dmarc.co.uk'), records),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        async (from, spf, dkim, z, r) => {
          const out = await evaluateDmarc({ fromDomain: from, spf, dkim }, zone(z), { random: () => r });
          if (out.result === 'pass') expect(out.spfAligned || out.dkimAligned).toBe(true);
          if (out.policy === null) expect(out.applied).toBe('none');
          else expect(RANK[out.applied]).toBeLessThanOrEqual(RANK[out.policy]);
          if (out.result !== 'fail') expect(out.applied).toBe('none');
        },
      ),
      { numRuns: 1000 },
    );
  });
});
