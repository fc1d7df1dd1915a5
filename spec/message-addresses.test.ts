/**
 * The RFC 5322 address parser (src/message/address-list.ts) against Dominic
 * Sayers' is_email suites (shared/corpus/addresses, see its README): for every
 * case, isAddrSpec(address) must equal `rfc5322_addr_spec_ok` (true unless
 * is_email says ISEMAIL_ERR). Then the list grammar: the RFC 5322 Appendix A
 * address examples, groups, obsolete forms, RFC 2047 names, and recovery.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAddrSpec, parseAddressList, parseMsgId } from '../src/message/address-list';
import { DefectList } from '../src/message/header';

interface Case {
  readonly id: string;
  readonly address: string;
  readonly diagnosis: string;
  readonly rfc5322_addr_spec_ok: boolean;
}

const CORPUS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/corpus/addresses');
const FILES = readdirSync(CORPUS).filter((f) => f.endsWith('.jsonl')).sort();
const ALL: Case[] = FILES.flatMap((f) =>
  readFileSync(path.join(CORPUS, f), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Case),
);

/** Cases where isAddrSpec is meant to disagree with is_email, by id, with the reason. None. */
const expectedDisagreements: Readonly<Record<string, string>> = {};

describe('is_email corpus: isAddrSpec agrees with rfc5322_addr_spec_ok', () => {
  it('the corpus is there: 653 cases, both verdicts present', () => {
    expect(ALL).toHaveLength(653);
    expect(ALL.filter((c) => c.rfc5322_addr_spec_ok).length).toBeGreaterThan(300);
    expect(ALL.filter((c) => !c.rfc5322_addr_spec_ok).length).toBeGreaterThan(200);
  });

  it.each(ALL.map((c) => [c.id, JSON.stringify(c.address), c] as const))('%s %s', (id, _shown, c) => {
    const expected = id in expectedDisagreements ? !c.rfc5322_addr_spec_ok : c.rfc5322_addr_spec_ok;
    expect(isAddrSpec(c.address), c.diagnosis).toBe(expected);
  });
});

function list(value: string): { boxes: { name: string | null; address: string }[]; codes: string[] } {
  const d = new DefectList();
  const boxes = parseAddressList(value, d, 'To');
  return { boxes, codes: d.items.map((x) => x.code) };
}

describe('address lists (RFC 5322 §3.4, §4.4, Appendix A)', () => {
  it('A.1.2: a quoted display name with specials and escaped quotes', () => {
    expect(list('"Joe Q. Public" <john.q.public@example.com>').boxes).toEqual([{ name: 'Joe Q. Public', address: 'john.q.public@example.com' }]);
    expect(list('"Giant; \\"Big\\" Box" <sysservices@example.net>').boxes).toEqual([{ name: 'Giant; "Big" Box', address: 'sysservices@example.net' }]);
  });

  it('A.1.2: several mailboxes, with and without display names', () => {
    expect(list('Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>').boxes).toEqual([
      { name: 'Mary Smith', address: 'mary@x.test' },
      { name: null, address: 'jdoe@example.org' },
      { name: 'Who?', address: 'one@y.test' },
    ]);
  });

  it('A.1.3: groups are flattened; an empty group gives nothing', () => {
    const v = 'A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;';
    expect(list(v).boxes.map((b) => b.address)).toEqual(['c@a.test', 'joe@where.test', 'jdoe@one.test']);
    expect(list('Undisclosed recipients:;')).toEqual({ boxes: [], codes: [] });
  });

  it('A.5: comments everywhere are dropped, including in the group name and the domain', () => {
    const v = 'Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>';
    expect(list(v).boxes).toEqual([{ name: 'Pete', address: 'pete@silly.test' }]);
    const g = "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)";
    expect(list(g).boxes).toEqual([
      { name: 'Chris Jones', address: 'c@public.example' },
      { name: null, address: 'joe@example.org' },
      { name: 'John', address: 'jdoe@one.test' },
    ]);
    expect(list('(Empty list)(start)Hidden recips  :(nobody(that I know))  ;')).toEqual({ boxes: [], codes: [] });
  });

  it('A.6.1 / §4.4: obs-phrase with ".", a source route, empty list elements, CFWS in the domain', () => {
    expect(list('Joe Q. Public <john.q.public@example.com>').boxes).toEqual([{ name: 'Joe Q. Public', address: 'john.q.public@example.com' }]);
    const v = 'Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example';
    expect(list(v)).toEqual({ boxes: [{ name: 'Mary Smith', address: 'mary@example.net' }, { name: null, address: 'jdoe@test.example' }], codes: [] });
  });

  it('obs-local-part: quoted words are joined and unquoted where a dot-atom can say the same', () => {
    expect(list('"first".last@example.com').boxes[0]?.address).toBe('first.last@example.com');
    expect(list('"john q"@example.com').boxes[0]?.address).toBe('"john q"@example.com');
    expect(list('"a\\"b"@example.com').boxes[0]?.address).toBe('"a\\"b"@example.com');
  });

  it('RFC 2047 display names: B and Q, adjacent words joined, a phrase mixing words', () => {
    expect(list('=?utf-8?B?SsO8cmdlbg==?= <j@x.test>').boxes[0]?.name).toBe('Jürgen');
    expect(list('=?iso-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>').boxes[0]?.name).toBe('André Pirard');
    expect(list('=?utf-8?Q?a?= =?utf-8?Q?b?= <ab@x.test>').boxes[0]?.name).toBe('ab');
  });

  it('lenient forms carry a defect: no domain, an empty <>, a bad address skipped up to the comma', () => {
    expect(list('Whomever')).toEqual({ boxes: [{ name: null, address: 'Whomever' }], codes: ['address-without-domain'] });
    expect(list('MAILER DAEMON <>')).toEqual({ boxes: [{ name: 'MAILER DAEMON', address: '' }], codes: ['empty-address'] });
    const r = list('a@b.test, <<bad>>, c@d.test');
    expect(r.boxes.map((b) => b.address)).toEqual(['a@b.test', 'c@d.test']);
    expect(r.codes).toEqual(['invalid-address']);
  });

  it('an unterminated group and junk in a display name are reported, the mailboxes kept', () => {
    expect(list('g: a@b.test')).toEqual({ boxes: [{ name: null, address: 'a@b.test' }], codes: ['unterminated-group'] });
    expect(list('x@y.test <a@b.test>')).toEqual({ boxes: [{ name: 'x@y.test', address: 'a@b.test' }], codes: ['invalid-display-name'] });
  });
});

describe('msg-id (RFC 5322 §3.6.4, §4.5.4)', () => {
  it('plain, with CFWS, obsolete, and refused forms', () => {
    expect(parseMsgId('<1234@local.machine.example>')).toBe('<1234@local.machine.example>');
    expect(parseMsgId(' (comment) <1234 @ local(blah) .machine .example> ')).toBe('<1234@local.machine.example>');
    expect(parseMsgId('<testabcd.1234@silly.test>')).toBe('<testabcd.1234@silly.test>');
    expect(parseMsgId('<abc@[127.0.0.1]>')).toBe('<abc@[127.0.0.1]>');
    expect(parseMsgId('1234@local.machine.example')).toBeNull();
    expect(parseMsgId('<a@b> <c@d>')).toBeNull();
    expect(parseMsgId('<no-at-sign>')).toBeNull();
  });
});

/** An independent writer of RFC 5322 mailboxes: quoted-string or RFC 2047 names, quoted local parts when needed. */
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const quote = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;
const writeName = (n: string): string => (/^[\x20-\x7e]*$/.test(n) ? quote(n) : `=?UTF-8?B?${Buffer.from(n).toString('base64')}?=`);
const isDotAtom = (s: string): boolean => s.split('.').every((w) => ATEXT.test(w));
const writeLocal = (l: string): string => (isDotAtom(l) ? l : quote(l));

const atom = fc.string({ unit: fc.constantFrom(...'abcXYZ019!#$%&*+-/=?^_{|}~'.split('')), minLength: 1, maxLength: 8 });
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const mailbox = fc.record({
  name: fc.option(fc.string({ unit: fc.oneof(fc.constantFrom(' ', '"', '\\', ',', ':', ';', '<', '@', '(', 'é', '日'), fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 })), maxLength: 20 })),
  local: fc.oneof(fc.array(atom, { minLength: 1, maxLength: 3 }).map((a) => a.join('.')), fc.string({ unit: fc.constantFrom('a', ' ', '"', '\\', '.', '@', ','), maxLength: 6 })),
  domain: fc.array(label, { minLength: 1, maxLength: 3 }).map((a) => a.join('.')),
});

describe('property: parse ∘ serialize on generated address lists', () => {
  it('names and addresses come back, with or without a group around them', () => {
    fc.assert(
      fc.property(fc.array(mailbox, { minLength: 1, maxLength: 5 }), fc.boolean(), (boxes, group) => {
        const written = boxes.map((b) => {
          const addr = `${writeLocal(b.local)}@${b.domain}`;
          return b.name === null ? addr : `${writeName(b.name)} <${addr}>`;
        });
        const value = group ? `Team (the list): ${written.join(',\r\n ')};` : written.join(', ');
        const r = list(value);
        expect(r.codes).toEqual([]);
        expect(r.boxes).toEqual(boxes.map((b) => ({ name: b.name, address: `${writeLocal(b.local)}@${b.domain}` })));
        for (const b of r.boxes) expect(isAddrSpec(b.address)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('arbitrary text never throws, in lists, addr-specs or msg-ids', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(fc.constantFrom('"', '(', ')', '<', '>', '[', ']', '\\', ',', ';', ':', '@', '.', ' ', '\r\n ', '=?', '?='), fc.string({ maxLength: 2 })), maxLength: 60 }), (s) => {
        list(s);
        isAddrSpec(s);
        parseMsgId(s);
      }),
      { numRuns: 2000 },
    );
  });
});
