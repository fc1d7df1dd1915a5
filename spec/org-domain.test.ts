/**
 * Organizational Domain (RFC 7489 §3.2) over the Public Suffix List: the
 * list's own test vectors (test_psl.txt from Debian's publicsuffix package,
 * when installed), hand-picked cases for wildcards, exceptions, the PRIVATE
 * section, case and trailing dots, and fast-check properties over generated
 * names and generated rule lists.
 */
import { existsSync, readFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultSuffixRules, organizationalDomain, parseSuffixRules } from '../src/auth/dmarc/org-domain';
import { PUBLIC_SUFFIX_RULES } from '../src/auth/dmarc/public-suffixes';

const org = (d: string) => organizationalDomain(d);

describe('organizationalDomain with the bundled list', () => {
  it.each([
    ['example.com', 'example.com'],
    ['mail.example.com', 'example.com'],
    ['a.b.example.co.uk', 'example.co.uk'],
    ['example.co.uk', 'example.co.uk'],
    ['deep.sub.example.org', 'example.org'],
  ])('%s → %s', (d, want) => expect(org(d)).toBe(want));

  it('wildcard *.ck makes every second-level name a suffix', () => {
    expect(org('b.test.ck')).toBe('b.test.ck');
    expect(org('a.b.test.ck')).toBe('b.test.ck');
    expect(org('test.ck')).toBe('test.ck'); // itself a public suffix
  });

  it('exception !www.ck beats the wildcard', () => {
    expect(org('www.ck')).toBe('www.ck');
    expect(org('mail.www.ck')).toBe('www.ck');
  });

  it('a name that is itself a public suffix is returned as it is', () => {
    for (const d of ['com', 'co.uk', 'uk', 'k12.ak.us', 'github.io']) expect(org(d)).toBe(d);
  });

  it('lowercases and drops one trailing dot', () => {
    expect(org('Mail.Example.COM.')).toBe('example.com');
    expect(org('WWW.EXAMPLE.CO.UK')).toBe('example.co.uk');
  });

  it('keeps PRIVATE section rules (a shared hosting suffix is an organizational boundary)', () => {
    expect(org('alice.github.io')).toBe('alice.github.io');
    expect(org('www.alice.github.io')).toBe('alice.github.io');
  });

  it('an unknown TLD falls under the default rule "*"', () => {
    expect(org('a.b.example.notatld')).toBe('example.notatld');
  });

  it('U-labels and A-labels give the same A-label answer', () => {
    expect(org('www.食狮.中国')).toBe('xn--85x722f.xn--fiqs8s');
    expect(org('www.xn--85x722f.xn--fiqs8s')).toBe('xn--85x722f.xn--fiqs8s');
  });

  it('the generated module holds both sections as A-labels, no comments or blanks', () => {
    const lines = PUBLIC_SUFFIX_RULES.split('\n');
    expect(lines.length).toBeGreaterThan(5000);
    expect(lines).toContain('co.uk');
    expect(lines).toContain('github.io');
    expect(lines).toContain('*.ck');
    expect(lines).toContain('!www.ck');
    expect(lines.every((l) => /^[!*a-z0-9._-]+$/.test(l))).toBe(true);
  });
});

const VECTORS = '/usr/share/doc/publicsuffix/examples/test_psl.txt';

describe('the Public Suffix List test vectors', () => {
  it.skipIf(!existsSync(VECTORS))('test_psl.txt: every checkPublicSuffix line', () => {
    const re = /^checkPublicSuffix\('([^']*)', (null|'[^']*')\);/;
    let checked = 0;
    for (const line of readFileSync(VECTORS, 'utf8').split('\n')) {
      const m = re.exec(line);
      if (!m) continue; // comments, null input
      const input = m[1] ?? '';
      if (input.startsWith('.')) continue; // leading dot: invalid input, rejected before lookup in DMARC
      // null means "the name is a public suffix": this API then returns the name itself.
      const want = m[2] === 'null' ? input.toLowerCase() : (m[2] ?? '').slice(1, -1);
      expect(org(input), line).toBe(domainToASCII(want));
      checked++;
    }
    expect(checked).toBeGreaterThan(60);
  });
});

describe('custom rule lists', () => {
  const rules = parseSuffixRules('com\nuk\nco.uk\n*.foo\n!bar.foo\n// comment\n\nx.y');
  const o = (d: string) => organizationalDomain(d, rules);

  it('plain, wildcard and exception rules', () => {
    expect(o('a.b.example.co.uk')).toBe('example.co.uk');
    expect(o('a.b.c.foo')).toBe('b.c.foo');
    expect(o('c.foo')).toBe('c.foo');
    expect(o('a.bar.foo')).toBe('bar.foo');
    expect(o('q.w.x.y')).toBe('w.x.y');
  });

  it('an exception prevails over a longer plain rule (PSL formal algorithm)', () => {
    const r = parseSuffixRules('c\n*.c\n!b.c\na.b.c');
    expect(organizationalDomain('z.a.b.c', r)).toBe('b.c');
  });

  it('the empty name stays empty', () => {
    expect(o('')).toBe('');
  });
});

const LABELS = ['com', 'co', 'uk', 'ck', 'www', 'test', 'jp', 'kobe', 'city', 'github', 'io', 'a', 'b', 'example', 'foo', 'bar', 'xn--fiqs8s', 'us', 'ak', 'k12'];
const name = fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 6 }).map((ls) => ls.join('.'));
const ruleList = fc
  .array(fc.tuple(fc.constantFrom('', '*.', '!'), fc.array(fc.constantFrom(...LABELS.slice(0, 12)), { minLength: 1, maxLength: 3 })), { maxLength: 25 })
  .map((rs) => rs.map(([p, ls]) => p + ls.join('.')).join('\n'));

describe('properties', () => {
  it('idempotent with the bundled list: org(org(x)) = org(x)', () => {
    fc.assert(fc.property(name, (x) => org(org(x)) === org(x)), { numRuns: 2000 });
  });

  it('idempotent for any rule list', () => {
    fc.assert(
      fc.property(ruleList, name, (text, x) => {
        const r = parseSuffixRules(text);
        const once = organizationalDomain(x, r);
        return organizationalDomain(once, r) === once;
      }),
      { numRuns: 2000 },
    );
  });

  it('the result is a whole-label suffix of the input', () => {
    fc.assert(
      fc.property(ruleList, name, (text, x) => {
        const o = organizationalDomain(x, parseSuffixRules(text));
        return o === x || x.endsWith(`.${o}`);
      }),
    );
  });

  it('a subdomain of a name below its Organizational Domain shares it', () => {
    fc.assert(
      fc.property(name, fc.constantFrom('mail', 'www', 'a'), (x, sub) => {
        fc.pre(org(x) !== x);
        return org(`${sub}.${x}`) === org(x);
      }),
    );
  });

  it('the bundled rules are parsed once', () => {
    expect(defaultSuffixRules()).toBe(defaultSuffixRules());
  });
});
