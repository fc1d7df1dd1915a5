/**
 * The Authentication-Results header field (RFC 8601) that records what SPF,
 * DKIM and DMARC said about a message, and the parser for the authserv-id of
 * an existing field, so that forged fields carrying our id can be removed
 * before ours is added (RFC 8601 §5). PURE.
 *
 * RFC 8601 §2.2 (grammar: authserv-id, resinfo, reasonspec, propspec with
 * pvalue = value / [local-part] "@" domain-name), §2.3 (authserv-id is a
 * RFC 2045 value: token or quoted-string), §2.7.1-§2.7.2 (dkim and spf
 * result keywords and the header.d/header.s/smtp.mailfrom/smtp.helo
 * properties), RFC 6008 §4 (header.b: the first 8 characters of b=), RFC 7489
 * §11.2 (dmarc method, header.from). Folding per RFC 5322 §2.1.1/§2.2.3: lines
 * of at most 78 characters where possible, continuation lines start with a TAB.
 *
 * Every value (MAIL FROM, HELO, d=, s=, reasons) may come from a hostile peer:
 * values that are not tokens are quoted, control characters are dropped,
 * non-ASCII becomes "?" (or an A-label for domains), and lengths are bounded,
 * so nothing can end the field early or add a header line of its own.
 */
import { domainToASCII } from 'node:url';

export interface AuthResultsInput {
  /** This server's hostname. */
  readonly authservId: string;
  readonly spf?: { readonly result: string; readonly mailfrom?: string; readonly helo?: string; readonly reason?: string };
  /** Empty → "dkim=none". */
  readonly dkim: readonly { readonly result: string; readonly domain?: string; readonly selector?: string; readonly b?: string; readonly reason?: string }[];
  readonly dmarc?: { readonly result: string; readonly fromDomain: string; readonly policy?: string | null };
}

const FIELD_NAME = 'Authentication-Results:';
/** RFC 5322 §2.1.1: "SHOULD be no more than 78 characters, excluding the CRLF". */
const LINE_TARGET = 78;
/** Longest value kept: an RFC 5321 path is at most 256 octets; this keeps any line far below 998. */
const MAX_VALUE = 320;
const MAX_REASON = 120;
/** RFC 6008 §4: "the first eight characters" of the signature are enough to tell signatures apart. */
const B_PREFIX = 8;

/** RFC 8601 §2.7.1, §2.7.2 and RFC 7489 §11.2: the registered result keywords per method. */
const RESULTS: Readonly<Record<'spf' | 'dkim' | 'dmarc', ReadonlySet<string>>> = {
  spf: new Set(['none', 'neutral', 'pass', 'fail', 'softfail', 'policy', 'temperror', 'permerror']),
  dkim: new Set(['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror']),
  dmarc: new Set(['none', 'pass', 'fail', 'temperror', 'permerror']),
};

export function renderAuthResults(input: AuthResultsInput): Buffer {
  const groups: string[][] = [];
  if (input.spf) groups.push(spfUnits(input.spf));
  if (input.dkim.length === 0) groups.push(['dkim=none']);
  for (const sig of input.dkim) groups.push(dkimUnits(sig));
  if (input.dmarc) groups.push(dmarcUnits(input.dmarc));
  // resinfo = [CFWS] ";" methodspec ...: each result is introduced by ";".
  const lines = groups.map((g, i) => (i < groups.length - 1 ? withSemicolon(g) : g));
  return Buffer.from(`${FIELD_NAME} ${value(input.authservId)};${lines.map(fold).join('')}\r\n`, 'ascii');
}

function withSemicolon(units: readonly string[]): string[] {
  return units.map((u, i) => (i === units.length - 1 ? `${u};` : u));
}

/**
 * One result per continuation line, as large receivers write them; a result
 * too long for 78 characters folds greedily between its properties (a single
 * over-long unit still gets a line of its own, bounded by MAX_VALUE).
 */
function fold(units: readonly string[]): string {
  let out = '';
  let line = 0;
  for (const u of units) {
    if (line > 0 && line + 1 + u.length <= LINE_TARGET) {
      out += ` ${u}`;
      line += 1 + u.length;
    } else {
      out += `\r\n\t${u}`;
      line = 1 + u.length;
    }
  }
  return out;
}

function spfUnits(spf: NonNullable<AuthResultsInput['spf']>): string[] {
  const units = method('spf', spf.result, spf.reason);
  // RFC 8601 §2.7.2: smtp.mailfrom for a real sender; with the null sender SPF checked the HELO name.
  if (spf.mailfrom) units.push(`smtp.mailfrom=${addressValue(spf.mailfrom)}`);
  else if (spf.helo) units.push(`smtp.helo=${domainValue(spf.helo)}`);
  return units;
}

function dkimUnits(sig: AuthResultsInput['dkim'][number]): string[] {
  const units = method('dkim', sig.result, sig.reason);
  if (sig.domain) units.push(`header.d=${domainValue(sig.domain)}`);
  if (sig.selector) units.push(`header.s=${value(sig.selector)}`);
  const b = (sig.b ?? '').replace(/[ \t\r\n]+/g, '').slice(0, B_PREFIX);
  if (b) units.push(`header.b=${value(b)}`);
  return units;
}

function dmarcUnits(d: NonNullable<AuthResultsInput['dmarc']>): string[] {
  const units = method('dmarc', d.result, undefined);
  // An informational comment, as large receivers add; only the three policy keywords get in.
  const p = d.policy?.toLowerCase();
  if (p === 'none' || p === 'quarantine' || p === 'reject') units.push(`(p=${p})`);
  units.push(`header.from=${domainValue(d.fromDomain)}`);
  return units;
}

/** methodspec and, for anything but pass, reasonspec (RFC 8601 §2.2). */
function method(name: keyof typeof RESULTS, result: string, reason: string | undefined): string[] {
  const r = String(result).toLowerCase();
  // Not a registered keyword: only our own code supplies results, so this is a bug; claim nothing.
  const keyword = RESULTS[name].has(r) ? r : 'permerror';
  const units = [`${name}=${keyword}`];
  if (keyword !== 'pass' && reason) units.push(`reason=${quoted(reason, MAX_REASON)}`);
  return units;
}

/** RFC 2045 §5.1 tspecials: these (and SP, CTLs) cannot appear in a token. */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
/** RFC 5322 §3.2.3 dot-atom-text. */
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/;
/** RFC 6376 §3.5 domain-name = sub-domain 1*("." sub-domain); sub-domain = Let-dig [Ldh-str]. */
const DOMAIN_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;

/** RFC 2045 value: the token itself when it is one, else a quoted-string. */
function value(s: string): string {
  const v = String(s);
  return v.length <= MAX_VALUE && TOKEN.test(v) ? v : quoted(v, MAX_VALUE);
}

/**
 * RFC 5322 quoted-string of printable ASCII: controls (CR, LF, NUL...) are
 * dropped so no line can end inside it, other non-ASCII becomes "?", the
 * length is capped before "\" and DQUOTE are escaped.
 */
function quoted(s: string, max: number): string {
  const printable = String(s)
    .replace(/[\x00-\x1f\x7f]/g, '')
    .replace(/[^\x20-\x7e]/gu, '?')
    .slice(0, max);
  return `"${printable.replace(/["\\]/g, '\\$&')}"`;
}

/** A-label form of a domain for header use; non-ASCII that does not convert is left for quoting. */
function asciiDomain(d: string): string {
  const s = String(d).replace(/\.$/, '');
  if (!/[^\x00-\x7f]/.test(s)) return s;
  return domainToASCII(s) || s;
}

function domainValue(d: string): string {
  return value(asciiDomain(d));
}

/** pvalue's [local-part] "@" domain-name form when it fits, else the whole address as a quoted-string. */
function addressValue(addr: string): string {
  const a = String(addr);
  const at = a.lastIndexOf('@');
  if (at < 0 || a.length > MAX_VALUE) return value(a);
  const local = a.slice(0, at);
  const domain = asciiDomain(a.slice(at + 1));
  if (!DOMAIN_NAME.test(domain)) return quoted(a, MAX_VALUE);
  if (local === '' || DOT_ATOM.test(local)) return `${local}@${domain}`;
  return `${quoted(local, MAX_VALUE)}@${domain}`;
}

/**
 * The authserv-id of an Authentication-Results field value: after leading
 * CFWS, a token or a quoted-string (RFC 8601 §2.2, §2.3). Null when there is
 * none. Comparison is the caller's: RFC 8601 §5 ids are host names, compare
 * them case-insensitively.
 */
export function authservIdOf(fieldValue: string): string | null {
  const start = skipCfws(fieldValue, 0);
  if (start < 0 || start >= fieldValue.length) return null;
  if (fieldValue[start] === '"') return quotedStringAt(fieldValue, start);
  let end = start;
  while (end < fieldValue.length && TOKEN.test(fieldValue[end] ?? '')) end++;
  return end > start ? fieldValue.slice(start, end) : null;
}

/** Index after any folding whitespace and (nested) comments; -1 for an unterminated comment. */
function skipCfws(s: string, from: number): number {
  let i = from;
  let depth = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && depth > 0) i += 2;
    else if (c === '(') (depth++, i++);
    else if (c === ')' && depth > 0) (depth--, i++);
    else if (depth > 0 || c === ' ' || c === '\t' || c === '\r' || c === '\n') i++;
    else break;
  }
  return depth > 0 ? -1 : i;
}

/** The content of the quoted-string opening at `start`, unescaped and unfolded; null when unterminated. */
function quotedStringAt(s: string, start: number): string | null {
  let out = '';
  for (let i = start + 1; i < s.length; i++) {
    const c = s[i] ?? '';
    if (c === '"') return out;
    if (c === '\\' && i + 1 < s.length) out += s[++i];
    else if (c !== '\r' && c !== '\n') out += c;
  }
  return null;
}
