/**
 * SPF macro strings: syntax check and expansion. PURE apart from the one
 * injected lookup behind %{p}.
 *
 * RFC 7208 §7.1 (macro-string grammar), §7.2 (macro letters; c, r, t only in
 * explanation text), §7.3 (transformers: DIGIT keeps right-hand parts, "r"
 * reverses, delimiters split; uppercase letters are URL-escaped; an expanded
 * domain name longer than 253 octets loses labels from the left), §7.4
 * (IPv6 "i" in dotted nibbles).
 */
import type { IpAddress } from '../../policy/cidr';
import { formatIp } from '../../policy/cidr';
import { assertNever } from '../../smtp/assert-never';

/** Everything a macro can refer to (RFC 7208 §7.2). */
export interface MacroContext {
  /** <sender>, with "postmaster" already substituted for an empty local part. */
  readonly sender: string;
  /** <domain> of the check_host() call that is being evaluated. */
  readonly domain: string;
  readonly ip: IpAddress;
  readonly helo: string;
  /** Domain of the receiving MTA, for %{r}; "unknown" when not given. */
  readonly receiver?: string;
  /** Seconds since the epoch, for %{t}; the caller reads the clock (this module is pure). Without it %{t} is 0. */
  readonly now?: number;
  /** The validated client domain for %{p} (§5.5 procedure); asked only when used. */
  readonly validatedName: () => Promise<string>;
}

export type MacroError = { readonly error: string };

const DELIMITERS = '.-+,/_=';
const LETTERS = 'slodiphcrtv';
/** The macro letters of RFC 7208 §7.2. */
export type MacroLetter = 's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'c' | 'r' | 't' | 'v';
const EXP_ONLY = 'crt';

/** Splits a macro string into literal text and macro references, or names the syntax error. */
export type MacroPart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'macro'; readonly letter: MacroLetter; readonly upper: boolean; readonly digits: number | null; readonly reverse: boolean; readonly delims: string };

/**
 * Tokenizes a macro-string (or, with `explain`, an explain-string, which also
 * allows spaces and the c/r/t letters). Only printable ASCII is literal text.
 */
export function tokenizeMacro(s: string, explain: boolean): MacroPart[] | MacroError {
  const parts: MacroPart[] = [];
  let i = 0;
  let text = '';
  while (i < s.length) {
    const ch = s[i] ?? '';
    if (ch !== '%') {
      const code = ch.charCodeAt(0);
      const ok = (code >= 0x21 && code <= 0x7e) || (explain && code === 0x20);
      if (!ok) return { error: `illegal character 0x${code.toString(16)} in macro string` };
      text += ch;
      i++;
      continue;
    }
    const next = s[i + 1] ?? '';
    // §7.1: "%%" is a percent, "%_" a space, "%-" a URL-encoded space.
    if (next === '%' || next === '_' || next === '-') {
      text += next === '%' ? '%' : next === '_' ? ' ' : '%20';
      i += 2;
      continue;
    }
    if (next !== '{') return { error: `bare "%" in macro string` };
    const end = s.indexOf('}', i + 2);
    if (end < 0) return { error: 'unterminated macro' };
    const macro = parseMacroBody(s.slice(i + 2, end), explain);
    if ('error' in macro) return macro;
    if (text) parts.push({ kind: 'text', text });
    text = '';
    parts.push(macro);
    i = end + 1;
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

function parseMacroBody(body: string, explain: boolean): MacroPart | MacroError {
  const m = /^([A-Za-z])(\d*)(r?)(.*)$/.exec(body);
  if (!m) return { error: `bad macro "%{${body}}"` };
  const raw = m[1] ?? '';
  const letter = raw.toLowerCase();
  if (!LETTERS.includes(letter)) return { error: `unknown macro letter "${raw}"` };
  if (EXP_ONLY.includes(letter) && !explain) return { error: `macro "${raw}" is only allowed in explanations` };
  const delims = m[4] ?? '';
  for (const d of delims) if (!DELIMITERS.includes(d)) return { error: `bad macro delimiter "${d}"` };
  const digitText = m[2] ?? '';
  // §7.3: "If a DIGIT is specified, the value MUST be nonzero."
  const digits = digitText === '' ? null : Number(digitText);
  if (digits === 0) return { error: 'macro digit transformer must be nonzero' };
  return { kind: 'macro', letter: letter as MacroLetter, upper: raw !== letter, digits, reverse: m[3] === 'r', delims: delims || '.' };
}

/** Expands a macro string; the result is a string or a syntax error (→ permerror). */
export async function expandMacro(s: string, ctx: MacroContext, explain = false): Promise<string | MacroError> {
  const parts = tokenizeMacro(s, explain);
  if ('error' in parts) return parts;
  let out = '';
  for (const p of parts) {
    if (p.kind === 'text') out += p.text;
    else out += transform(await letterValue(p.letter, ctx), p);
  }
  return out;
}

/** Expands a domain-spec and applies the §7.3 253-octet rule. */
export async function expandDomain(s: string, ctx: MacroContext): Promise<string | MacroError> {
  const out = await expandMacro(s, ctx, false);
  if (typeof out !== 'string') return out;
  return truncateDomain(out.replace(/\.$/, ''));
}

/** §7.3: "left-hand labels are removed until the total length does not exceed 253". */
export function truncateDomain(name: string): string {
  let n = name;
  while (n.length > 253) {
    const dot = n.indexOf('.');
    if (dot < 0) return n.slice(n.length - 253);
    n = n.slice(dot + 1);
  }
  return n;
}

function transform(value: string, p: Extract<MacroPart, { kind: 'macro' }>): string {
  let labels = splitOn(value, p.delims);
  if (p.reverse) labels = labels.reverse();
  if (p.digits !== null && p.digits < labels.length) labels = labels.slice(labels.length - p.digits);
  const joined = labels.join('.');
  return p.upper ? urlEscape(joined) : joined;
}

function splitOn(value: string, delims: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const ch of value) {
    if (delims.includes(ch)) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** RFC 3986 §2.3 unreserved characters pass; everything else is percent-encoded. */
function urlEscape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const ch = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

async function letterValue(letter: MacroLetter, ctx: MacroContext): Promise<string> {
  const at = ctx.sender.lastIndexOf('@');
  switch (letter) {
    case 's': return ctx.sender;
    case 'l': return at < 0 ? 'postmaster' : ctx.sender.slice(0, at);
    case 'o': return at < 0 ? ctx.sender : ctx.sender.slice(at + 1);
    case 'd': return ctx.domain;
    case 'i': return ipDotted(ctx.ip);
    case 'p': return ctx.validatedName();
    case 'v': return ctx.ip.family === 4 ? 'in-addr' : 'ip6';
    case 'h': return ctx.helo;
    case 'c': return formatIp(ctx.ip);
    case 'r': return ctx.receiver ?? 'unknown';
    case 't': return String(Math.floor(ctx.now ?? 0));
    default: return assertNever(letter);
  }
}

/** §7.4: IPv4 as a dotted quad, IPv6 as 32 dot-separated nibbles. */
export function ipDotted(ip: IpAddress): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const nibbles: string[] = [];
  for (const b of ip.bytes) nibbles.push((b >> 4).toString(16), (b & 15).toString(16));
  return nibbles.join('.');
}
