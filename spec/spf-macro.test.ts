/**
 * RFC 7208 §7.4 macro examples, §7.3 transformer rules and URL escaping,
 * plus the record parser on hand-picked records (RFC 7208 §5, §6, §12).
 */
import { describe, expect, it } from 'vitest';
import { parseIp } from '../src/policy/cidr';
import type { MacroContext } from '../src/auth/spf/macro';
import { expandMacro, tokenizeMacro, truncateDomain } from '../src/auth/spf/macro';
import { parseRecord } from '../src/auth/spf/record';

function ctx(ip: string): MacroContext {
  const addr = parseIp(ip);
  if (!addr) throw new Error(ip);
  return {
    sender: 'strong-bad@email.example.com', domain: 'email.example.com', ip: addr, helo: 'mx.example.org',
    receiver: 'rcv.example.net', now: 1234, validatedName: async () => 'mx.example.org',
  };
}

describe('RFC 7208 §7.4 examples', () => {
  const v4: [string, string][] = [
    ['%{s}', 'strong-bad@email.example.com'], ['%{o}', 'email.example.com'], ['%{d}', 'email.example.com'],
    ['%{d4}', 'email.example.com'], ['%{d3}', 'email.example.com'], ['%{d2}', 'example.com'], ['%{d1}', 'com'],
    ['%{dr}', 'com.example.email'], ['%{d2r}', 'example.email'], ['%{l}', 'strong-bad'], ['%{l-}', 'strong.bad'],
    ['%{lr}', 'strong-bad'], ['%{lr-}', 'bad.strong'], ['%{l1r-}', 'strong'],
    ['%{ir}.%{v}._spf.%{d2}', '3.2.0.192.in-addr._spf.example.com'],
    ['%{lr-}.lp._spf.%{d2}', 'bad.strong.lp._spf.example.com'],
    ['%{lr-}.lp.%{ir}.%{v}._spf.%{d2}', 'bad.strong.lp.3.2.0.192.in-addr._spf.example.com'],
    ['%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}', '3.2.0.192.in-addr.strong.lp._spf.example.com'],
    ['%{d2}.trusted-domains.example.net', 'example.com.trusted-domains.example.net'],
  ];
  for (const [macro, want] of v4) {
    it(macro, async () => expect(await expandMacro(macro, ctx('192.0.2.3'))).toBe(want));
  }
  it('IPv6 %{ir}', async () => {
    expect(await expandMacro('%{ir}.%{v}._spf.%{d2}', ctx('2001:db8::cb01'))).toBe(
      '1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com');
  });
});

describe('macro rules', () => {
  it('uppercase letters are URL-escaped', async () => {
    expect(await expandMacro('%{S}', ctx('192.0.2.3'))).toBe('strong-bad%40email.example.com');
  });
  it('%%, %_ and %- escapes', async () => {
    expect(await expandMacro('a%%b%_c%-d', ctx('192.0.2.3'))).toBe('a%b c%20d');
  });
  it('c, r, t only in explanations', async () => {
    expect(await expandMacro('%{c}', ctx('192.0.2.3'))).toHaveProperty('error');
    expect(await expandMacro('%{c} %{r} %{t}', ctx('192.0.2.3'), true)).toBe('192.0.2.3 rcv.example.net 1234');
  });
  it('%{p} asks for the validated name', async () => {
    expect(await expandMacro('%{p}', ctx('192.0.2.3'))).toBe('mx.example.org');
  });
  it('rejects bad syntax', () => {
    for (const bad of ['%', '%{', '%{x}', '%{d0}', '%{d*}', '%x', 'a b', '%{d}\t'])
      expect(tokenizeMacro(bad, false), bad).toHaveProperty('error');
  });
  it('long names lose labels from the left', () => {
    const long = `${'a'.repeat(60)}.`.repeat(5) + 'example.com';
    const t = truncateDomain(long);
    expect(t.length).toBeLessThanOrEqual(253);
    expect(long.endsWith(t)).toBe(true);
    expect(t.startsWith('a')).toBe(true);
  });
});

describe('record parser', () => {
  it('parses every mechanism and modifier', () => {
    const r = parseRecord('v=spf1 +all -include:a.example ~a ?a:b.example/24//64 mx/30 ptr ptr:c.example ' +
      'ip4:192.0.2.0/24 ip6:2001:db8::/32 exists:%{i}.d.example redirect=e.example exp=x.%{d} foo=bar');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.record.mechanisms.map((m) => `${m.q}${m.kind}`)).toEqual(
      ['+all', '-include', '~a', '?a', '+mx', '+ptr', '+ptr', '+ip4', '+ip6', '+exists']);
    expect(r.record.mechanisms[3]).toMatchObject({ domain: 'b.example', cidr4: 24, cidr6: 64 });
    expect(r.record.mechanisms[4]).toMatchObject({ domain: null, cidr4: 30, cidr6: 128 });
    expect(r.record.redirect).toBe('e.example');
    expect(r.record.exp).toBe('x.%{d}');
  });
  it('refuses syntax errors', () => {
    for (const bad of ['v=spf1 a:1.2.3.4', 'v=spf1 ip4:1.2.3.4/33', 'v=spf1 ip4:01.2.3.4', 'v=spf1 ip6:1.2.3.4',
      'v=spf1 a/024', 'v=spf1 foo', 'v=spf1 include', 'v=spf1 redirect=a.example redirect=b.example',
      'v=spf1\t-all', 'v=spf1 all:x', 'v=spf1 mx:', 'v=spf1 exists:%{z}', 'v=spf1 x=%'])
      expect(parseRecord(bad).ok, bad).toBe(false);
  });
  it('version must be exactly v=spf1', () => {
    expect(parseRecord('v=spf10 -all').ok).toBe(false);
    expect(parseRecord('V=SPF1 -all').ok).toBe(true);
  });
});
