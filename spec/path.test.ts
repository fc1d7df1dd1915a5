/**
 * Executable specification of the RFC 5321 §4.1.2 Path grammar (src/smtp/path.ts):
 * example tables, one row per rule with its clause, then fast-check properties
 * (round trip through formatMailbox, no throw on any input, no control
 * character ever accepted).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { domainKey, formatMailbox, formatPath, parsePath, punycodeEncode, type Mailbox, type PathOptions } from '../src/smtp/path';

const STRICT: PathOptions = { smtputf8: false, allowNull: false, allowBarePostmaster: false };
const UTF8: PathOptions = { ...STRICT, smtputf8: true };

function ok(input: string, opts: PathOptions = STRICT) {
  const r = parsePath(input, opts);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(input)} to parse, got: ${r.reason}`);
  return r;
}

function mailboxOf(input: string, opts: PathOptions = STRICT): Mailbox {
  const m = ok(input, opts).path.mailbox;
  if (!m) throw new Error('null path');
  return m;
}

const x = (n: number, ch = 'a') => ch.repeat(n);

describe('accepted paths', () => {
  const cases: [string, string, PathOptions, Partial<Mailbox>][] = [
    ['RFC 5321 §4.1.2 Dot-string', '<user@example.com>', STRICT, { localPart: 'user', quoted: false, domain: 'example.com', domainKind: 'dns', utf8: false }],
    ['RFC 5321 §4.1.2 Dot-string: several atoms', '<first.middle.last@example.com>', STRICT, { localPart: 'first.middle.last' }],
    ['RFC 5322 §3.2.3 atext: every special allowed in an atom', "<!#$%&'*+-/=?^_`{|}~@example.com>", STRICT, { localPart: "!#$%&'*+-/=?^_`{|}~" }],
    ['RFC 5321 §2.4 local part and domain kept as written', '<John.Doe@Example.COM>', STRICT, { localPart: 'John.Doe', domain: 'Example.COM' }],
    ['RFC 5321 §4.1.2 Quoted-string with a space', '<"john doe"@example.com>', STRICT, { localPart: 'john doe', quoted: true }],
    ['RFC 5321 §4.1.2 quoted-pairSMTP resolved', '<"a\\"b\\\\c"@example.com>', STRICT, { localPart: 'a"b\\c', quoted: true }],
    ['RFC 5321 §4.1.2 quoted-pairSMTP of an ordinary character', '<"\\a"@example.com>', STRICT, { localPart: 'a' }],
    ['RFC 5321 §4.1.2 Quoted-string may hold specials, even ">"', '<"a@b,c:d<e>f[g]"@example.com>', STRICT, { localPart: 'a@b,c:d<e>f[g]' }],
    ['RFC 5321 §4.1.2 empty Quoted-string', '<""@example.com>', STRICT, { localPart: '', quoted: true }],
    ['RFC 5321 §4.1.2 Domain of one label', '<user@localhost>', STRICT, { domain: 'localhost', domainKind: 'dns' }],
    ['RFC 5321 §4.1.2 sub-domain may be all digits', '<a@192.168.0.1>', STRICT, { domain: '192.168.0.1', domainKind: 'dns' }],
    ['RFC 5321 §4.1.2 Ldh-str: inner hyphens', '<a@mason-dixon.c--n.example>', STRICT, { domain: 'mason-dixon.c--n.example' }],
    ['RFC 5890 A-label is plain LDH', '<a@xn--hxajbheg2az3al.xn--jxalpdlp>', STRICT, { utf8: false }],
    ['RFC 5321 §4.1.3 IPv4-address-literal', '<a@[192.0.2.1]>', STRICT, { domain: '[192.0.2.1]', domainKind: 'ipv4' }],
    ['RFC 5321 §4.1.3 Snum 0-255 with leading zeros', '<a@[255.010.0.000]>', STRICT, { domainKind: 'ipv4' }],
    ['RFC 5321 §4.1.3 IPv6-full', '<a@[IPv6:2001:db8:0:0:0:0:0:1]>', STRICT, { domain: '[IPv6:2001:db8:0:0:0:0:0:1]', domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6-comp', '<a@[IPv6:2001:db8::1]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6-comp "::" alone', '<a@[IPv6:::]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6-comp with 6 groups', '<a@[IPv6:1:2:3::4:5:6]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6-comp at the end', '<a@[IPv6:1:2:3:4:5:6::]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6v4-full', '<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6v4-comp', '<a@[IPv6:::ffff:192.0.2.1]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5321 §4.1.3 IPv6v4-comp with 4 groups', '<a@[IPv6:1:2::3:4:192.0.2.1]>', STRICT, { domainKind: 'ipv6' }],
    ['RFC 5234 §2.3 the "IPv6:" tag is case-insensitive', '<a@[ipv6:::1]>', STRICT, { domain: '[ipv6:::1]', domainKind: 'ipv6' }],
    ['RFC 5321 §4.5.3.1.1 local part of exactly 64 octets', `<${x(64)}@example.com>`, STRICT, { localPart: x(64) }],
    ['RFC 1035 §2.3.4 label of exactly 63 octets', `<a@${x(63, 'b')}.example>`, STRICT, { domain: `${x(63, 'b')}.example` }],
    ['RFC 6531 §3.3 UTF-8 atoms and U-labels under SMTPUTF8', '<用户@例子.广告>', UTF8, { localPart: '用户', domain: '例子.广告', utf8: true }],
    ['RFC 6531 §3.3 UTF-8 in a Quoted-string', '<"ñ x"@example.com>', UTF8, { localPart: 'ñ x', quoted: true, utf8: true }],
    ['RFC 6531 §3.3 U-label only', '<a@bücher.example>', UTF8, { localPart: 'a', utf8: true }],
    ['RFC 5890 §2.3.2.1 U-label measured as its A-label (68 UTF-8 octets, 24 as A-label)', `<a@${x(17, '😆')}.org>`, UTF8, { utf8: true }],
  ];
  it.each(cases)('%s: %j', (_name, input, opts, expected) => {
    expect(mailboxOf(input, opts)).toMatchObject(expected);
  });

  it('RFC 5321 §4.5.3.1.3 a mailbox of 254 octets fills the 256-octet path', () => {
    const input = `<${x(64)}@${x(63, 'b')}.${x(63, 'c')}.${x(61, 'd')}>`;
    expect(input.length).toBe(256);
    expect(ok(input).path.mailbox?.localPart).toBe(x(64));
  });

  it('RFC 5321 §4.5.5 null reverse-path "<>" when allowed', () => {
    expect(ok('<>', { ...STRICT, allowNull: true })).toEqual({ ok: true, path: { mailbox: null, route: [] }, rest: '' });
  });

  it('RFC 5321 §4.1.2 rest is whatever follows ">" (the parameters)', () => {
    expect(ok('<a@b.example> SIZE=10').rest).toBe(' SIZE=10');
    expect(ok('<> BODY=8BITMIME', { ...STRICT, allowNull: true }).rest).toBe(' BODY=8BITMIME');
    expect(ok('<"x>y"@b.example> z').rest).toBe(' z');
  });

  it('RFC 5321 §4.1.2 / App. C source route is parsed into route, then ignored', () => {
    const r = ok('<@a.example,@b.example:user@c.example>');
    expect(r.path.route).toEqual(['a.example', 'b.example']);
    expect(r.path.mailbox).toMatchObject({ localPart: 'user', domain: 'c.example' });
    expect(formatPath(r.path)).toBe('user@c.example');
  });

  it('RFC 5321 §4.1.1.3 "<Postmaster>" without a domain, any case, when allowed', () => {
    const opts = { ...STRICT, allowBarePostmaster: true };
    expect(mailboxOf('<PostMaster>', opts)).toEqual({ localPart: 'PostMaster', quoted: false, domain: '', domainKind: 'none', utf8: false });
    expect(ok('<postmaster> NOTIFY=NEVER', opts).rest).toBe(' NOTIFY=NEVER');
    expect(mailboxOf('<postmaster@example.com>', opts).domain).toBe('example.com');
  });
});

describe('refused paths', () => {
  const cases: [string, string, PathOptions][] = [
    ['RFC 5321 §4.1.2 angle brackets are required', 'user@example.com', STRICT],
    ['RFC 5321 §4.1.2 closing ">" is required', '<user@example.com', STRICT],
    ['RFC 5321 §4.1.2 empty input', '', STRICT],
    ['RFC 5321 §4.5.5 "<>" only where a null path is allowed', '<>', STRICT],
    ['RFC 5321 §4.1.2 Mailbox needs "@" Domain', '<user>', STRICT],
    ['RFC 5321 §4.1.1.3 bare "<postmaster>" only when allowed', '<postmaster>', STRICT],
    ['RFC 5321 §4.1.1.3 bare postmaster is the Dot-string only', '<"postmaster">', { ...STRICT, allowBarePostmaster: true }],
    ['RFC 5321 §4.1.2 no local part', '<@example.com>', STRICT],
    ['RFC 5321 §4.1.2 empty domain', '<user@>', STRICT],
    ['RFC 5321 §4.1.2 two "@"', '<a@b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 Dot-string: empty atom', '<a..b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 Dot-string: leading dot', '<.a@example.com>', STRICT],
    ['RFC 5321 §4.1.2 Dot-string: trailing dot', '<a.@example.com>', STRICT],
    ['RFC 5321 §4.1.2 space outside quotes', '<a b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 space after "<"', '< a@example.com>', STRICT],
    ['RFC 5321 §4.1.2 space before ">"', '<a@example.com >', STRICT],
    ['RFC 5321 §4.1.2 backslash outside quotes', '<a\\@b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 Quoted-string then atom (obsolete local part)', '<"a".b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 comments are not SMTP syntax', '<(c)a@example.com>', STRICT],
    ['RFC 5321 §4.1.2 unterminated Quoted-string', '<"a@example.com>', STRICT],
    ['RFC 5321 §4.1.2 Let-dig: leading hyphen', '<a@-b.example>', STRICT],
    ['RFC 5321 §4.1.2 Ldh-str: trailing hyphen', '<a@b-.example>', STRICT],
    ['RFC 5321 §4.1.2 Domain: empty label', '<a@b..example>', STRICT],
    ['RFC 5321 §4.1.2 Domain: trailing dot', '<a@b.example.>', STRICT],
    ['RFC 5321 §4.1.2 Domain: underscore', '<a@b_c.example>', STRICT],
    ['RFC 5321 §4.1.2 Domain: address literal inside a domain', '<a@b.[192.0.2.1]>', STRICT],
    ['RFC 5321 §4.1.2 NUL', '<a\x00b@example.com>', STRICT],
    ['RFC 5321 §4.1.2 CR LF in an atom', '<a\r\nb@example.com>', STRICT],
    ['RFC 5321 §4.1.2 DEL in an atom', '<a\x7fb@example.com>', STRICT],
    ['RFC 5321 §4.1.2 qtextSMTP: no control characters', '<"a\x07"@example.com>', STRICT],
    ['RFC 5321 §4.1.2 qtextSMTP: no CR LF (folding)', '<"a\r\n b"@example.com>', STRICT],
    ['RFC 5321 §4.1.2 quoted-pairSMTP is %d92 %d32-126: no escaped CR', '<"a\\\r"@example.com>', STRICT],
    ['RFC 5321 §4.1.2 quoted-pairSMTP: no escaped NUL', '<"a\\\x00"@example.com>', STRICT],
    ['RFC 5321 §4.1.2 quoted-pairSMTP: no escaped DEL', '<"a\\\x7f"@example.com>', STRICT],
    ['RFC 6531 §3.3 quoted-pairSMTP stays ASCII under SMTPUTF8', '<"\\ñ"@example.com>', UTF8],
    ['RFC 6531 §3.3 non-ASCII atom without SMTPUTF8', '<ñ@example.com>', STRICT],
    ['RFC 6531 §3.3 non-ASCII Quoted-string without SMTPUTF8', '<"ñ"@example.com>', STRICT],
    ['RFC 6531 §3.3 U-label without SMTPUTF8', '<a@bücher.example>', STRICT],
    ['RFC 5198 §2 C1 control character under SMTPUTF8', '<a\u0085@example.com>', UTF8],
    ['RFC 5198 §2 C1 control character in a Quoted-string', '<"\u0080"@example.com>', UTF8],
    ['RFC 6531 §3.3 lone surrogate is not UTF-8', '<a\ud800@example.com>', UTF8],
    ['RFC 5321 §4.1.2 no-break space outside quotes under SMTPUTF8', '<a\u00a0b@example.com>', UTF8],
    ['RFC 5321 §4.1.3 Snum above 255', '<a@[256.0.0.1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv4 with three parts', '<a@[192.0.2]>', STRICT],
    ['RFC 5321 §4.1.3 IPv4 with five parts', '<a@[192.0.2.1.1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv4 Snum of four digits', '<a@[0192.0.2.1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6 without its tag', '<a@[2001:db8::1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-full with 7 groups', '<a@[IPv6:1:2:3:4:5:6:7]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-full with 9 groups', '<a@[IPv6:1:2:3:4:5:6:7:8:9]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-comp: at most 6 groups besides "::"', '<a@[IPv6:1:2:3::4:5:6:7]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-comp: two "::"', '<a@[IPv6:1::2::3]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-comp: ":::"', '<a@[IPv6:1:::2]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6: single leading colon', '<a@[IPv6::1:2:3:4:5:6:7]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6: trailing colon', '<a@[IPv6:1::2:]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-hex: five digits', '<a@[IPv6:12345::1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6-hex: not hex', '<a@[IPv6:g::1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6v4-full: 5 groups before IPv4', '<a@[IPv6:1:2:3:4:5:192.0.2.1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6v4-comp: at most 4 groups besides "::"', '<a@[IPv6:1:2:3::4:5:192.0.2.1]>', STRICT],
    ['RFC 5321 §4.1.3 IPv6v4: bad IPv4 tail', '<a@[IPv6:::1.2.3]>', STRICT],
    ['RFC 5321 §4.1.3 General-address-literal needs a registered tag', '<a@[IPv5:::12.34.56.78]>', STRICT],
    ['RFC 5321 §4.1.3 General-address-literal needs a tag and ":"', '<a@[RFC-5322-domain-literal]>', STRICT],
    ['RFC 5321 §4.1.3 empty address literal', '<a@[]>', STRICT],
    ['RFC 5321 §4.1.3 unterminated address literal', '<a@[192.0.2.1>', STRICT],
    ['RFC 5321 §4.1.3 text after an address literal', '<a@[192.0.2.1]x>', STRICT],
    ['RFC 5321 §4.5.3.1.1 local part of 65 octets', `<${x(65)}@example.com>`, STRICT],
    ['RFC 5321 §4.5.3.1.1 quoted local part of 65 octets as written', `<"${x(63)}"@example.com>`, STRICT],
    ['RFC 5321 §4.5.3.1.1 local part of 68 UTF-8 octets', `<${x(17, '😆')}@example.com>`, UTF8],
    ['RFC 1035 §2.3.4 label of 64 octets', `<a@${x(64, 'b')}.example>`, STRICT],
    ['RFC 5890 §2.3.2.1 U-label whose A-label exceeds 63 octets', `<a@${x(41, 'b')}${x(17, '😆')}.org>`, UTF8],
    ['RFC 5321 §4.5.3.1.2 domain of 256 octets', `<a@${x(63, 'b')}.${x(63, 'c')}.${x(63, 'd')}.${x(62, 'e')}.e>`, STRICT],
    ['RFC 5321 §4.5.3.1.3 path of 257 octets', `<${x(64)}@${x(63, 'b')}.${x(63, 'c')}.${x(62, 'd')}>`, STRICT],
    ['RFC 5321 §4.1.2 A-d-l: route domain must be a Domain', '<@[192.0.2.1]:a@example.com>', STRICT],
    ['RFC 5321 §4.1.2 A-d-l: each At-domain starts with "@"', '<@a.example,b.example:c@d.example>', STRICT],
    ['RFC 5321 §4.1.2 A-d-l: ":" then a Mailbox', '<@a.example:>', STRICT],
    ['RFC 5321 §4.1.2 A-d-l: ":" required', '<@a.example>', STRICT],
  ];
  it.each(cases)('%s: %j', (_name, input, opts) => {
    const r = parsePath(input, opts);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/\S/);
  });

  it('a reason never echoes the input (replies must not carry client bytes)', () => {
    for (const [, input, opts] of cases) {
      const r = parsePath(input, opts);
      if (!r.ok) expect(r.reason).toMatch(/^[\x20-\x7e§]+$/);
    }
  });

  it('reasons name the rule that failed', () => {
    const reason = (input: string, opts = STRICT) => {
      const r = parsePath(input, opts);
      return r.ok ? '' : r.reason;
    };
    expect(reason(`<${x(65)}@example.com>`)).toMatch(/64 octets/);
    expect(reason('<ñ@example.com>')).toMatch(/SMTPUTF8/);
    expect(reason('<a@[IPv6:1::2::3]>')).toMatch(/IPv6/);
    expect(reason('<a@[IPv5:::1]>')).toMatch(/registered/);
    expect(reason('<a\x00@example.com>')).toMatch(/control character/);
    expect(reason('<user>')).toMatch(/no @domain/);
  });
});

describe('formatMailbox / formatPath', () => {
  const cases: [string, string, string][] = [
    ['RFC 5321 §4.1.2 Dot-string kept as it is', '<a.b@example.com>', 'a.b@example.com'],
    ['RFC 5321 §4.1.2 SHOULD: needless quotes dropped', '<"abc"@example.com>', 'abc@example.com'],
    ['RFC 5321 §4.1.2 quotes kept when Dot-string cannot express it', '<"a b"@example.com>', '"a b"@example.com'],
    ['RFC 5321 §4.1.2 only " and \\ are escaped', '<"a\\"b\\\\c\\d"@example.com>', '"a\\"b\\\\cd"@example.com'],
    ['RFC 5321 §4.1.2 dots that Dot-string cannot hold', '<"a..b"@example.com>', '"a..b"@example.com'],
    ['RFC 5321 §4.1.2 empty local part', '<""@example.com>', '""@example.com'],
    ['RFC 5321 §4.1.3 address literal as written', '<a@[IPv6:2001:DB8::1]>', 'a@[IPv6:2001:DB8::1]'],
  ];
  it.each(cases)('%s: %j → %j', (_name, input, wire) => {
    expect(formatMailbox(mailboxOf(input))).toBe(wire);
  });

  it('RFC 6531 §3.3 UTF-8 local part stays a Dot-string', () => {
    expect(formatMailbox(mailboxOf('<"ñandú"@ejemplo.example>', UTF8))).toBe('ñandú@ejemplo.example');
  });

  it('null path formats as "" and bare postmaster as its local part', () => {
    expect(formatPath({ mailbox: null, route: [] })).toBe('');
    expect(formatPath(ok('<Postmaster>', { ...STRICT, allowBarePostmaster: true }).path)).toBe('Postmaster');
  });

  it('RFC 5321 §2.4 domainKey folds the domain only', () => {
    expect(domainKey(mailboxOf('<John@Example.COM>').domain)).toBe('example.com');
  });
});

describe('punycodeEncode (used to measure U-labels as A-labels)', () => {
  const cp = (...points: number[]) => String.fromCodePoint(...points);
  const cases: [string, string, string][] = [
    ['RFC 3492 §7.1 (A) Arabic', cp(0x644, 0x64a, 0x647, 0x645, 0x627, 0x628, 0x62a, 0x643, 0x644, 0x645, 0x648, 0x634, 0x639, 0x631, 0x628, 0x64a, 0x61f), 'egbpdaj6bu4bxfgehfvwxn'],
    ['RFC 3492 §7.1 (B) Chinese (simplified)', cp(0x4ed6, 0x4eec, 0x4e3a, 0x4ec0, 0x4e48, 0x4e0d, 0x8bf4, 0x4e2d, 0x6587), 'ihqwcrb4cv8a8dqg056pqjye'],
    ['RFC 3492 §7.1 (L) mixed basic and non-basic', cp(0x33, 0x5e74, 0x42, 0x7d44, 0x91d1, 0x516b, 0x5148, 0x751f), '3B-ww4c5e180e575a65lsy2b'],
    ['RFC 3492 §7.1 (S) basic only', '-> $1.00 <-', '-> $1.00 <--'],
    ['astral code points', '😆'.repeat(17), 'k28haaaaaaaaaaaaaaaa'],
    ['one Latin-1 letter', 'bücher', 'bcher-kva'],
  ];
  it.each(cases)('%s', (_name, label, encoded) => {
    expect(punycodeEncode(label)).toBe(encoded);
  });
});

// ---------------------------------------------------------------------------
// Properties

const ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".split('');
const UTF8_CHARS = ['ñ', 'é', 'ß', '用', '户', '😆', '𐐷', 'ж'];
const LDH = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'.split('');
const LET_DIG = LDH.filter((c) => c !== '-');
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));

const word = (chars: string[], max: number) => fc.array(fc.constantFrom(...chars), { minLength: 1, maxLength: max }).map((a) => a.join(''));
const atom = (utf8: boolean) => word(utf8 ? [...ATEXT, ...UTF8_CHARS] : ATEXT, 4);
const dotString = (utf8: boolean) => fc.array(atom(utf8), { minLength: 1, maxLength: 3 }).map((a) => a.join('.'));
/** Decoded content of a quoted string: any printable ASCII, specials and backslash included. */
const quotedContent = (utf8: boolean) =>
  fc.array(fc.constantFrom(...PRINTABLE, ...(utf8 ? UTF8_CHARS : [])), { maxLength: 12 }).map((a) => a.join(''));
const label = (utf8: boolean) =>
  fc
    .tuple(fc.constantFrom(...LET_DIG, ...(utf8 ? UTF8_CHARS : [])), fc.array(fc.constantFrom(...LDH), { maxLength: 8 }), fc.constantFrom(...LET_DIG))
    .map(([a, mid, z]) => a + mid.join('') + z);
const dnsDomain = (utf8: boolean) => fc.array(label(utf8), { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
const ipv6 = fc.oneof(
  fc.array(hex, { minLength: 8, maxLength: 8 }).map((g) => g.join(':')),
  fc.array(hex, { minLength: 6, maxLength: 6 }).chain((g) => ipv4.map((v4) => `${g.join(':')}:${v4}`)),
  fc.tuple(fc.nat(6), fc.array(hex, { maxLength: 6 })).map(([cut, g]) => compressed(g, Math.min(cut, g.length), '')),
  fc.tuple(fc.nat(4), fc.array(hex, { maxLength: 4 }), ipv4).map(([cut, g, v4]) => compressed(g, Math.min(cut, g.length), v4)),
);
function compressed(groups: string[], cut: number, v4: string): string {
  const right = groups.slice(cut).join(':');
  const tail = v4 === '' ? right : right === '' ? v4 : `${right}:${v4}`;
  return `${groups.slice(0, cut).join(':')}::${tail}`;
}
const domain = (utf8: boolean): fc.Arbitrary<[string, Mailbox['domainKind']]> =>
  fc.oneof(
    { weight: 3, arbitrary: dnsDomain(utf8).map((d): [string, Mailbox['domainKind']] => [d, 'dns']) },
    ipv4.map((a): [string, Mailbox['domainKind']] => [`[${a}]`, 'ipv4']),
    fc.tuple(fc.constantFrom('IPv6', 'ipv6', 'IPV6'), ipv6).map(([t, a]): [string, Mailbox['domainKind']] => [`[${t}:${a}]`, 'ipv6']),
  );
const mailbox = (utf8: boolean): fc.Arbitrary<Mailbox> =>
  fc
    .tuple(fc.oneof(dotString(utf8).map((l) => [l, false] as const), quotedContent(utf8).map((l) => [l, true] as const)), domain(utf8))
    .map(([[localPart, quoted], [d, domainKind]]) => ({
      localPart,
      quoted,
      domain: d,
      domainKind,
      utf8: /[^\x00-\x7f]/.test(localPart + d),
    }));

/** A written form of a local part that is valid but not canonical: needless quotes and quoted-pairs. */
const writtenLocalPart = (m: Mailbox) =>
  fc.array(fc.boolean(), { minLength: m.localPart.length, maxLength: m.localPart.length }).map((escape) => {
    const chars = [...m.localPart];
    return `"${chars.map((ch, i) => (/["\\]/.test(ch) || (escape[i] && ch < '\x7f') ? `\\${ch}` : ch)).join('')}"`;
  });

describe('properties', () => {
  it('RFC 5321 §4.1.2 parsePath(formatMailbox(m)) round-trips any valid mailbox', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean().chain((utf8) => mailbox(utf8).map((m) => [m, utf8] as const)), (viaUtf8, [m]) => {
        const wire = formatMailbox(m);
        const opts = m.utf8 || viaUtf8 ? UTF8 : STRICT;
        const back = mailboxOf(`<${wire}>`, opts);
        expect(back.localPart).toBe(m.localPart);
        expect(back.domain).toBe(m.domain);
        expect(back.domainKind).toBe(m.domainKind);
        expect(back.utf8).toBe(m.utf8);
        expect(back.quoted).toBe(wire.startsWith('"'));
        if (m.utf8) expect(parsePath(`<${wire}>`, STRICT).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('RFC 5321 §4.1.2 any written form parses to the same mailbox as its canonical form', () => {
    const arb = mailbox(true).chain((m) => writtenLocalPart(m).map((written) => [m, written] as const));
    fc.assert(
      fc.property(arb, ([m, written]) => {
        const parsed = mailboxOf(`<${written}@${m.domain}>`, UTF8);
        expect(parsed.localPart).toBe(m.localPart);
        expect(mailboxOf(`<${formatMailbox(parsed)}>`, UTF8)).toEqual({ ...parsed, quoted: formatMailbox(parsed).startsWith('"') });
      }),
      { numRuns: 1000 },
    );
  });

  const allOpts = fc.record({ smtputf8: fc.boolean(), allowNull: fc.boolean(), allowBarePostmaster: fc.boolean() });
  const pathAlphabet = fc.constantFrom(...'<>@.:,"\\[]-aZ09 IPv6\x00\r\n\x7fñ😆\ud800'.split(''), 'IPv6:', '::', 'postmaster');
  const pathLike = fc.array(pathAlphabet, { maxLength: 40 }).map((a) => `<${a.join('')}`);

  it('never throws, whatever the input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'binary-ascii' }), pathLike), allOpts, (s, opts) => {
        const r = parsePath(s, opts);
        expect(typeof r.ok).toBe('boolean');
        if (r.ok) expect(s.endsWith(r.rest)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('RFC 5321 §4.1.2 never accepts a control character anywhere inside the brackets', () => {
    const arb = fc.tuple(mailbox(true), fc.nat(), fc.constantFrom('\x00', '\x07', '\t', '\r', '\n', '\x1b', '\x7f', '\u0085'));
    fc.assert(
      fc.property(arb, ([m, at, ctl]) => {
        const wire = formatMailbox(m);
        const i = at % (wire.length + 1);
        const input = `<${wire.slice(0, i)}${ctl}${wire.slice(i)}>`;
        expect(parsePath(input, UTF8).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
