/**
 * SPF record parser: "v=spf1 ..." text → directives and modifiers. PURE and
 * total: any string gives a record or a syntax error, never an exception.
 *
 * RFC 7208 §4.5 (version selection), §4.6.1 (terms separated by spaces only),
 * §4.6.2 (qualifiers), §5 (mechanisms and their arguments), §5.6 (ip4/ip6
 * with CIDR lengths), §6 (redirect and exp at most once; unknown modifiers
 * ignored), §12 (collected ABNF: dual-cidr-length without leading zeros,
 * domain-end / toplabel). Any syntax error anywhere is a permerror (§4.6).
 */
import type { IpAddress } from '../../policy/cidr';
import { parseIp } from '../../policy/cidr';
import { tokenizeMacro } from './macro';

export type Qualifier = '+' | '-' | '~' | '?';

/** Mechanisms that take a host name and an optional dual CIDR length. */
interface HostMechanism {
  readonly q: Qualifier;
  readonly domain: string | null;
  readonly cidr4: number;
  readonly cidr6: number;
}

export type Mechanism =
  | { readonly kind: 'all'; readonly q: Qualifier }
  | { readonly kind: 'include'; readonly q: Qualifier; readonly domain: string }
  | ({ readonly kind: 'a' } & HostMechanism)
  | ({ readonly kind: 'mx' } & HostMechanism)
  | { readonly kind: 'ptr'; readonly q: Qualifier; readonly domain: string | null }
  | { readonly kind: 'ip4'; readonly q: Qualifier; readonly ip: IpAddress; readonly prefix: number }
  | { readonly kind: 'ip6'; readonly q: Qualifier; readonly ip: IpAddress; readonly prefix: number }
  | { readonly kind: 'exists'; readonly q: Qualifier; readonly domain: string };

export interface SpfRecord {
  readonly mechanisms: readonly Mechanism[];
  /** redirect= domain-spec, unexpanded. */
  readonly redirect: string | null;
  /** exp= domain-spec, unexpanded. */
  readonly exp: string | null;
}

export type ParseResult = { readonly ok: true; readonly record: SpfRecord } | { readonly ok: false; readonly error: string };

/** §4.5: a record starts with exactly "v=spf1" followed by a space or the end. */
export function isSpfRecord(text: string): boolean {
  return /^v=spf1( |$)/i.test(text);
}

export function parseRecord(text: string): ParseResult {
  if (!isSpfRecord(text)) return { ok: false, error: 'not an SPF record' };
  const mechanisms: Mechanism[] = [];
  let redirect: string | null = null;
  let exp: string | null = null;
  // §4.6.1: terms are separated by SP only; a tab or other control char is an error.
  for (const term of text.slice(6).split(' ')) {
    if (term === '') continue;
    const mod = /^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$/s.exec(term);
    if (mod) {
      const name = (mod[1] ?? '').toLowerCase();
      const value = mod[2] ?? '';
      const err = checkModifier(name, value, redirect !== null, exp !== null);
      if (err) return { ok: false, error: err };
      if (name === 'redirect') redirect = value;
      if (name === 'exp') exp = value;
      continue;
    }
    const mech = parseDirective(term);
    if (typeof mech === 'string') return { ok: false, error: mech };
    mechanisms.push(mech);
  }
  return { ok: true, record: { mechanisms, redirect, exp } };
}

function checkModifier(name: string, value: string, haveRedirect: boolean, haveExp: boolean): string | null {
  if (name === 'redirect' || name === 'exp') {
    if ((name === 'redirect' && haveRedirect) || (name === 'exp' && haveExp)) return `duplicate ${name}= modifier`;
    return checkDomainSpec(value);
  }
  // §6: unknown modifiers are ignored, but their value must still be a macro-string (§12).
  const t = tokenizeMacro(value, false);
  return 'error' in t ? `modifier ${name}: ${t.error}` : null;
}

function parseDirective(term: string): Mechanism | string {
  const first = term[0] ?? '';
  const q: Qualifier = first === '+' || first === '-' || first === '~' || first === '?' ? first : '+';
  const body = q === first ? term.slice(1) : term;
  const m = /^([A-Za-z0-9]+)(.*)$/s.exec(body);
  if (!m) return `bad term "${term}"`;
  const name = (m[1] ?? '').toLowerCase();
  const rest = m[2] ?? '';
  switch (name) {
    case 'all': return rest === '' ? { kind: 'all', q } : `"all" takes no argument`;
    case 'include':
    case 'exists': return parseRequiredDomain(name, q, rest);
    case 'a':
    case 'mx': return parseHostMechanism(name, q, rest);
    case 'ptr': return parsePtr(q, rest);
    case 'ip4':
    case 'ip6': return parseIpMechanism(name, q, rest);
    default: return `unknown mechanism "${name}"`;
  }
}

function parseRequiredDomain(kind: 'include' | 'exists', q: Qualifier, rest: string): Mechanism | string {
  if (!rest.startsWith(':')) return `"${kind}" needs ":domain"`;
  const domain = rest.slice(1);
  const err = checkDomainSpec(domain);
  return err ?? { kind, q, domain };
}

function parsePtr(q: Qualifier, rest: string): Mechanism | string {
  if (rest === '') return { kind: 'ptr', q, domain: null };
  if (!rest.startsWith(':')) return `bad "ptr" argument`;
  const domain = rest.slice(1);
  return checkDomainSpec(domain) ?? { kind: 'ptr', q, domain };
}

/** "a" / "mx" [ ":" domain-spec ] [ dual-cidr-length ]; the CIDR suffix is taken from the right. */
function parseHostMechanism(kind: 'a' | 'mx', q: Qualifier, rest: string): Mechanism | string {
  const m = /^(.*?)(?:\/([0-9]+))?(?:\/\/([0-9]+))?$/s.exec(rest);
  if (!m) return `bad "${kind}" argument`;
  const spec = m[1] ?? '';
  const cidr4 = cidrLength(m[2], 32);
  const cidr6 = cidrLength(m[3], 128);
  if (cidr4 === null || cidr6 === null) return `bad CIDR length in "${kind}${rest}"`;
  if (spec === '') return { kind, q, domain: null, cidr4, cidr6 };
  if (!spec.startsWith(':')) return `bad "${kind}" argument`;
  const domain = spec.slice(1);
  return checkDomainSpec(domain) ?? { kind, q, domain, cidr4, cidr6 };
}

/** §12 ip4-cidr-length / ip6-cidr-length: "0" or a number without leading zero, in range. */
function cidrLength(text: string | undefined, max: number): number | null {
  if (text === undefined) return max;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text)) return null;
  const n = Number(text);
  return n <= max ? n : null;
}

function parseIpMechanism(kind: 'ip4' | 'ip6', q: Qualifier, rest: string): Mechanism | string {
  const m = /^:([^/]+)(?:\/([0-9]+))?$/s.exec(rest);
  if (!m) return `bad "${kind}" argument`;
  const text = m[1] ?? '';
  const ip = text.includes('%') ? null : parseIp(text);
  const family = kind === 'ip4' ? 4 : 6;
  if (!ip || ip.family !== family) return `bad ${kind} address "${text}"`;
  const prefix = cidrLength(m[2], family === 4 ? 32 : 128);
  if (prefix === null) return `bad CIDR length in "${kind}${rest}"`;
  return { kind, q, ip, prefix };
}

/**
 * §12: domain-spec = macro-string domain-end, where domain-end is a macro or
 * "." toplabel ["."]; toplabel is alphanumeric, not all digits, and may hold
 * inner hyphens. This refuses "a:1.2.3.4" (an IP where a name belongs).
 */
export function checkDomainSpec(spec: string): string | null {
  if (spec === '') return 'empty domain-spec';
  const t = tokenizeMacro(spec, false);
  if ('error' in t) return t.error;
  const last = t[t.length - 1];
  if (last?.kind === 'macro') return null;
  if (!validDomainEnd(spec)) return `bad domain "${spec}"`;
  return null;
}

function validDomainEnd(spec: string): boolean {
  const s = spec.endsWith('.') ? spec.slice(0, -1) : spec;
  const dot = s.lastIndexOf('.');
  if (dot < 0) return false;
  const top = s.slice(dot + 1);
  return /^(?=.*[A-Za-z])[A-Za-z0-9]+$/.test(top) || /^[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]$/.test(top) && top.includes('-');
}
