/**
 * The Reverse-path / Forward-path of MAIL FROM and RCPT TO: a strict parser of
 * the RFC 5321 §4.1.2 Path and Mailbox grammar, with the address literals of
 * §4.1.3, the size limits of §4.5.3.1, the `<Postmaster>` form of §4.1.1.3 and
 * the SMTPUTF8 extensions of RFC 6531 §3.3 (UTF-8 in atoms, quoted strings and
 * U-labels). Pure: no I/O; it never throws, a bad path is a `{ ok: false }`.
 *
 *   Path     = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox  = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 */

export type DomainKind = 'dns' | 'ipv4' | 'ipv6' | 'general' | 'none';

export interface Mailbox {
  /** Decoded: a quoted local part without its quotes, quoted-pairs resolved. */
  readonly localPart: string;
  /** True if it was written as a Quoted-string. */
  readonly quoted: boolean;
  /** As written: "example.com", "[192.0.2.1]", "[IPv6:2001:db8::1]"; '' only when domainKind is 'none'. */
  readonly domain: string;
  readonly domainKind: DomainKind;
  /** Any non-ASCII character in local part or domain (needs SMTPUTF8, RFC 6531 §3.4). */
  readonly utf8: boolean;
}

export interface Path {
  /** null for the null reverse-path "<>". */
  readonly mailbox: Mailbox | null;
  /** Source-route domains of an A-d-l: accepted, then ignored (RFC 5321 §4.1.2, Appendix C). */
  readonly route: readonly string[];
}

export type PathParse = { ok: true; path: Path; rest: string } | { ok: false; reason: string };

export interface PathOptions {
  /** SMTPUTF8 was given (MAIL) or is in effect (RCPT): UTF-8 allowed (RFC 6531 §3.3). */
  readonly smtputf8: boolean;
  /** "<>" allowed: the null reverse-path of MAIL (RFC 5321 §4.5.5). */
  readonly allowNull: boolean;
  /** "<Postmaster>" without a domain allowed: RCPT only (RFC 5321 §4.1.1.3). */
  readonly allowBarePostmaster: boolean;
}

/** RFC 5321 §4.5.3.1.1-3 size limits, in octets; domains are measured in A-label form (see aLabelLength). */
const MAX_LOCAL_PART = 64;
const MAX_DOMAIN = 255;
const MAX_PATH = 256;
/** RFC 1035 §2.3.4; for a U-label, its A-label must fit (RFC 5890 §2.3.2.1). */
const MAX_LABEL = 63;

/**
 * General-address-literal tags other than IPv6 registered in the IANA "Address
 * Literal Tags" registry. RFC 5321 §4.1.3: a Standardized-tag MUST be registered;
 * the registry holds only "IPv6", which has its own grammar, so today every
 * other tag (e.g. "[IPv5:...]") is refused. Adding a tag here is all it takes.
 */
const REGISTERED_LITERAL_TAGS: ReadonlySet<string> = new Set<string>();

/** Parses "<...>" at the start of `input`; `rest` is what follows the closing ">" (parameters). */
export function parsePath(input: string, opts: PathOptions): PathParse {
  try {
    return { ok: true, ...parseAngle(input, opts) };
  } catch (e) {
    if (e instanceof PathError) return { ok: false, reason: e.reason };
    throw e;
  }
}

/** Wire form of a mailbox, quoting the local part only when Dot-string cannot express it (RFC 5321 §4.1.2 SHOULD). */
export function formatMailbox(m: Mailbox): string {
  if (m.domainKind === 'none') return m.localPart;
  const local = isDotString(m.localPart) ? m.localPart : quoteLocalPart(m.localPart);
  return `${local}@${m.domain}`;
}

/** "user@example.com" form used in logs and the queue (formatMailbox, or "" for the null path). */
export function formatPath(p: Path): string {
  return p.mailbox ? formatMailbox(p.mailbox) : '';
}

/**
 * Domain in the form used for comparisons: domains are case-insensitive
 * (RFC 5321 §2.4), local parts are not, so only the domain is folded.
 */
export function domainKey(domain: string): string {
  return domain.toLowerCase();
}

// ---------------------------------------------------------------------------
// Cursor and failure

/** Thrown only inside this module and always caught by parsePath. */
class PathError {
  constructor(readonly reason: string) {}
}

function fail(reason: string): never {
  throw new PathError(reason);
}

interface Cursor {
  readonly s: string;
  i: number;
  readonly smtputf8: boolean;
}

const END = -1;

function peek(c: Cursor): number {
  return c.s.codePointAt(c.i) ?? END;
}

function advance(c: Cursor, cp: number): void {
  c.i += cp > 0xffff ? 2 : 1;
}

function eat(c: Cursor, ch: string): boolean {
  if (c.s[c.i] !== ch) return false;
  c.i++;
  return true;
}

function expect(c: Cursor, ch: string, where: string): void {
  if (!eat(c, ch)) unexpected(c, `${where} (expected '${ch}')`);
}

/** A reason naming the kind of character found, never the character itself (replies must not echo input). */
function unexpected(c: Cursor, where: string): never {
  const cp = peek(c);
  if (cp === END) fail(`address ends too early in ${where}`);
  if (cp < 0x20 || cp === 0x7f) fail(`control character in ${where}`);
  if (cp === 0x20) fail(`space in ${where}`);
  fail(`unexpected character in ${where}`);
}

// ---------------------------------------------------------------------------
// Characters

/** RFC 5322 §3.2.3 atext, the ASCII part. */
function isAtextAscii(cp: number): boolean {
  return isAlnum(cp) || (cp < 0x80 && "!#$%&'*+-/=?^_`{|}~".includes(String.fromCharCode(cp)));
}

function isAlnum(cp: number): boolean {
  return (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
}

function isSurrogate(cp: number): boolean {
  return cp >= 0xd800 && cp <= 0xdfff;
}

/** Unicode white space (NBSP, U+2028 ...): a space outside quotes even when it is UTF-8. */
function isUnicodeSpace(cp: number): boolean {
  return /\s/u.test(String.fromCodePoint(cp));
}

/**
 * RFC 6531 §3.3 UTF8-non-ascii. A lone surrogate is not a character (the input
 * was not UTF-8); C1 controls are refused like C0 ones (RFC 5198 §2).
 */
function checkNonAscii(c: Cursor, cp: number): void {
  if (isSurrogate(cp)) fail('malformed Unicode (lone surrogate)');
  if (cp <= 0x9f) fail('control character in address');
  if (!c.smtputf8) fail('non-ASCII character without SMTPUTF8 (RFC 6531 section 3.3)');
}

/** An atom or label character that is non-ASCII and acceptable under SMTPUTF8; checked without a cursor. */
function isUtf8WordChar(cp: number): boolean {
  return cp > 0x9f && !isSurrogate(cp) && !isUnicodeSpace(cp);
}

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Path

function parseAngle(input: string, opts: PathOptions): { path: Path; rest: string } {
  if (!input.startsWith('<')) fail("path must be enclosed in '<' and '>' (RFC 5321 section 4.1.2)");
  if (input.startsWith('<>')) {
    if (!opts.allowNull) fail('null path <> not allowed here (RFC 5321 section 4.5.5)');
    return { path: { mailbox: null, route: [] }, rest: input.slice(2) };
  }
  const bare = barePostmaster(input, opts);
  if (bare) return bare;
  const c: Cursor = { s: input, i: 1, smtputf8: opts.smtputf8 };
  const route = parseRoute(c);
  const routeOctets = utf8Length(input.slice(1, c.i));
  const { mailbox, octets } = parseMailbox(c);
  expect(c, '>', 'path');
  if (2 + routeOctets + octets > MAX_PATH) fail(`path longer than ${MAX_PATH} octets (RFC 5321 section 4.5.3.1.3)`);
  return { path: { mailbox, route }, rest: input.slice(c.i) };
}

/** "<Postmaster>", any case, with no domain: RFC 5321 §4.1.1.3 makes every server accept it in RCPT. */
function barePostmaster(input: string, opts: PathOptions): { path: Path; rest: string } | null {
  if (!opts.allowBarePostmaster || !/^<postmaster>/i.test(input)) return null;
  const mailbox: Mailbox = { localPart: input.slice(1, 11), quoted: false, domain: '', domainKind: 'none', utf8: false };
  return { path: { mailbox, route: [] }, rest: input.slice(12) };
}

/** A-d-l = At-domain *( "," At-domain ) ":" — the obsolete source route (RFC 5321 §4.1.2, Appendix C). */
function parseRoute(c: Cursor): string[] {
  const route: string[] = [];
  if (c.s[c.i] !== '@') return route;
  do {
    expect(c, '@', 'source route');
    route.push(parseDomain(c).text);
  } while (eat(c, ','));
  expect(c, ':', 'source route');
  return route;
}

/** Mailbox, and its length in octets with the domain in A-label form. */
function parseMailbox(c: Cursor): { mailbox: Mailbox; octets: number } {
  const start = c.i;
  const quoted = c.s[c.i] === '"';
  const localPart = quoted ? parseQuotedString(c) : parseDotString(c);
  const localOctets = utf8Length(c.s.slice(start, c.i));
  if (localOctets > MAX_LOCAL_PART) fail(`local part longer than ${MAX_LOCAL_PART} octets (RFC 5321 section 4.5.3.1.1)`);
  if (c.s[c.i] === '>') fail('address has no @domain (RFC 5321 section 4.1.2)');
  if (c.s[c.i] !== '@') unexpected(c, "local part (expected '@' and a domain)");
  c.i++;
  const d = c.s[c.i] === '[' ? parseAddressLiteral(c) : parseDomain(c);
  const utf8 = /[^\x00-\x7f]/.test(localPart) || /[^\x00-\x7f]/.test(d.text);
  const mailbox: Mailbox = { localPart, quoted, domain: d.text, domainKind: d.kind, utf8 };
  return { mailbox, octets: localOctets + 1 + d.octets };
}

// ---------------------------------------------------------------------------
// Local part

/** Dot-string = Atom *("." Atom); Atom = 1*atext (RFC 5321 §4.1.2, RFC 6531 §3.3 adds UTF-8). */
function parseDotString(c: Cursor): string {
  const start = c.i;
  do parseAtom(c);
  while (eat(c, '.'));
  return c.s.slice(start, c.i);
}

function parseAtom(c: Cursor): void {
  const start = c.i;
  for (let cp = peek(c); ; cp = peek(c)) {
    if (cp >= 0x80 && !isUnicodeSpace(cp)) checkNonAscii(c, cp);
    else if (!isAtextAscii(cp)) break;
    advance(c, cp);
  }
  if (c.i === start) unexpected(c, 'local part');
}

/**
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE; qtextSMTP = %d32-33 / %d35-91 /
 * %d93-126 (plus UTF-8 under SMTPUTF8); quoted-pairSMTP = %d92 %d32-126, so a
 * backslash can never smuggle a control character or CR/LF (RFC 5321 §4.1.2).
 */
function parseQuotedString(c: Cursor): string {
  c.i++;
  let out = '';
  for (;;) {
    const cp = peek(c);
    if (cp === 0x22) {
      c.i++;
      return out;
    }
    if (cp === 0x5c) {
      c.i++;
      const q = peek(c);
      if (q < 0x20 || q > 0x7e) fail('quoted-pair must escape a printable ASCII character (RFC 5321 section 4.1.2)');
    } else if (cp >= 0x80) {
      checkNonAscii(c, cp);
    } else if (cp < 0x20 || cp === 0x7f) {
      unexpected(c, 'quoted local part');
    }
    const ch = peek(c);
    out += String.fromCodePoint(ch);
    advance(c, ch);
  }
}

function isDotString(s: string): boolean {
  return s.split('.').every((atom) => atom.length > 0 && [...atom].every(isWordChar));
}

function isWordChar(ch: string): boolean {
  const cp = ch.codePointAt(0) ?? 0;
  return cp < 0x80 ? isAtextAscii(cp) : isUtf8WordChar(cp);
}

function quoteLocalPart(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

// ---------------------------------------------------------------------------
// Domain

interface DomainPart {
  readonly text: string;
  readonly kind: DomainKind;
  /** Length in octets, U-labels counted as their A-labels. */
  readonly octets: number;
}

/** Domain = sub-domain *("." sub-domain) (RFC 5321 §4.1.2); sub-domain =/ U-label (RFC 6531 §3.3). */
function parseDomain(c: Cursor): DomainPart {
  const start = c.i;
  let octets = parseLabel(c);
  while (eat(c, '.')) octets += 1 + parseLabel(c);
  if (octets > MAX_DOMAIN) fail(`domain longer than ${MAX_DOMAIN} octets (RFC 5321 section 4.5.3.1.2)`);
  return { text: c.s.slice(start, c.i), kind: 'dns', octets };
}

/** sub-domain = Let-dig [Ldh-str]: letters, digits, inner hyphens. Returns the A-label length. */
function parseLabel(c: Cursor): number {
  const cps: number[] = [];
  for (let cp = peek(c); ; cp = peek(c)) {
    if (cp >= 0x80 && !isUnicodeSpace(cp)) checkNonAscii(c, cp);
    else if (!isAlnum(cp) && cp !== 0x2d) break;
    // Every code point costs at least one A-label octet, so this bounds the work on hostile input.
    if (cps.push(cp) > MAX_LABEL) fail(`domain label longer than ${MAX_LABEL} octets (RFC 1035 section 2.3.4)`);
    advance(c, cp);
  }
  if (cps.length === 0) unexpected(c, 'domain');
  if (cps[0] === 0x2d || cps[cps.length - 1] === 0x2d) {
    fail('domain label must not begin or end with a hyphen (RFC 5321 section 4.1.2)');
  }
  const octets = aLabelLength(cps);
  if (octets > MAX_LABEL) fail(`domain label longer than ${MAX_LABEL} octets as an A-label (RFC 5890 section 2.3.2.1)`);
  return octets;
}

/**
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]" (RFC 5321 §4.1.3). dcontent excludes "[", "]"
 * and "\", so the literal ends at the first "]".
 */
function parseAddressLiteral(c: Cursor): DomainPart {
  const start = c.i;
  const end = c.s.indexOf(']', start);
  if (end < 0) fail('address literal has no closing bracket');
  c.i = end + 1;
  const text = c.s.slice(start, c.i);
  return { text, kind: literalKind(text.slice(1, -1)), octets: text.length };
}

function literalKind(inner: string): DomainKind {
  if (/^ipv6:/i.test(inner)) {
    if (isIpv6(inner.slice(5))) return 'ipv6';
    fail('bad IPv6 address literal (RFC 5321 section 4.1.3)');
  }
  if (isIpv4(inner)) return 'ipv4';
  if (/^[\d.]+$/.test(inner)) fail('bad IPv4 address literal (RFC 5321 section 4.1.3)');
  const general = /^([A-Za-z0-9-]*[A-Za-z0-9]):[\x21-\x5a\x5e-\x7e]+$/.exec(inner);
  if (!general) fail('bad address literal (RFC 5321 section 4.1.3)');
  if (!REGISTERED_LITERAL_TAGS.has((general[1] ?? '').toLowerCase())) {
    fail('address literal tag not registered with IANA (RFC 5321 section 4.1.3)');
  }
  return 'general';
}

/** IPv4-address-literal = Snum 3("." Snum); Snum = 1*3DIGIT, 0-255. */
function isIpv4(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) && s.split('.').every((n) => Number(n) <= 255);
}

/**
 * IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp. "::" stands
 * for at least two zero groups, so with it at most 6 groups may be written
 * (4 before an IPv4 tail); without it exactly 8 (6 before an IPv4 tail).
 */
function isIpv6(s: string): boolean {
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  const v4 = tail.includes('.');
  if (v4 && !isIpv4(tail)) return false;
  let head = v4 ? s.slice(0, lastColon + 1) : s;
  if (v4 && !head.endsWith('::')) head = head.slice(0, -1);
  const groups = v4 ? 6 : 8;
  const halves = head.split('::');
  if (halves.length > 2) return false;
  if (halves.length === 1) return hexGroups(head) === groups;
  const left = halves[0] === '' ? 0 : hexGroups(halves[0] ?? '');
  const right = halves[1] === '' ? 0 : hexGroups(halves[1] ?? '');
  return left >= 0 && right >= 0 && left + right <= groups - 2;
}

/** Number of ":"-separated IPv6-hex groups (1*4HEXDIG), or -1 if any is malformed. */
function hexGroups(s: string): number {
  const parts = s.split(':');
  return parts.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g)) ? parts.length : -1;
}

// ---------------------------------------------------------------------------
// A-label length (RFC 3492 Punycode)

/**
 * Octets of the label on the DNS wire: itself if ASCII, else "xn--" plus its
 * Punycode. Only a measure for the length limits: no IDNA mapping is applied,
 * the label is encoded as written.
 */
function aLabelLength(cps: readonly number[]): number {
  return cps.every((cp) => cp < 0x80) ? cps.length : 4 + punycode(cps).length;
}

/**
 * RFC 3492 Punycode of one label, as written: no IDNA mapping or validation,
 * no "xn--" prefix. Enough to measure or display a U-label, not to look it up.
 */
export function punycodeEncode(label: string): string {
  return punycode([...label].map((ch) => ch.codePointAt(0) ?? 0));
}

const BASE = 36;
const TMIN = 1;
const TMAX = 26;

/** RFC 3492 §6.3 encoding procedure. */
function punycode(cps: readonly number[]): string {
  const basic = cps.filter((cp) => cp < 0x80);
  let out = String.fromCharCode(...basic) + (basic.length > 0 ? '-' : '');
  let n = 0x80;
  let delta = 0;
  let bias = 72;
  for (let h = basic.length; h < cps.length; n++) {
    const m = Math.min(...cps.filter((cp) => cp >= n));
    delta += (m - n) * (h + 1);
    n = m;
    for (const cp of cps) {
      if (cp < n) delta++;
      if (cp !== n) continue;
      out += encodeVarint(delta, bias);
      bias = adapt(delta, h + 1, h === basic.length);
      delta = 0;
      h++;
    }
    delta++;
  }
  return out;
}

function encodeVarint(q: number, bias: number): string {
  let out = '';
  for (let k = BASE; ; k += BASE) {
    const t = k <= bias ? TMIN : k >= bias + TMAX ? TMAX : k - bias;
    if (q < t) return out + punyDigit(q);
    out += punyDigit(t + ((q - t) % (BASE - t)));
    q = Math.floor((q - t) / (BASE - t));
  }
}

function punyDigit(d: number): string {
  return String.fromCharCode(d < 26 ? 0x61 + d : 0x16 + d);
}

function adapt(delta: number, points: number, first: boolean): number {
  delta = first ? Math.floor(delta / 700) : delta >> 1;
  delta += Math.floor(delta / points);
  let k = 0;
  for (; delta > ((BASE - TMIN) * TMAX) >> 1; k += BASE) delta = Math.floor(delta / (BASE - TMIN));
  return k + Math.floor(((BASE - TMIN + 1) * delta) / (delta + 38));
}
