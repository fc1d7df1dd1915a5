/**
 * SPF check_host(): evaluates a sender's SPF policy for a client IP. PURE
 * apart from the injected DNS interface, so hostile zones can be simulated.
 *
 * RFC 7208 §2.6 (results), §4.3 (initial domain checks → none), §4.4 and §4.5
 * (record lookup and selection; several records → permerror), §4.6 (parse
 * before evaluating), §4.6.4 (at most 10 DNS-querying terms, at most 2 void
 * lookups, at most 10 names per mx and ptr), §4.7 (default neutral), §5
 * (mechanism semantics), §5.2 (include result table), §6.1 (redirect, ignored
 * when "all" is present), §6.2 (exp for fail), §5.5 (validated ptr names).
 */
import type { IpAddress } from '../../policy/cidr';
import { parseIp } from '../../policy/cidr';
import { assertNever } from '../../smtp/assert-never';
import type { MacroContext } from './macro';
import { expandDomain, expandMacro, ipDotted } from './macro';
import type { Mechanism, Qualifier, SpfRecord } from './record';
import { isSpfRecord, parseRecord } from './record';

export type SpfResult = 'none' | 'neutral' | 'pass' | 'fail' | 'softfail' | 'temperror' | 'permerror';

export type DnsError = { readonly error: 'nxdomain' | 'nodata' | 'temp' };
export type DnsAnswer<T> = readonly T[] | DnsError;

/** The lookups SPF needs; an adapter maps the real resolver onto it. */
export interface SpfDns {
  /** Each record is its character-strings (joined here, §3.3) or one string. */
  txt(name: string): Promise<DnsAnswer<string | readonly string[]>>;
  a(name: string): Promise<DnsAnswer<string>>;
  aaaa(name: string): Promise<DnsAnswer<string>>;
  mx(name: string): Promise<DnsAnswer<{ readonly exchange: string; readonly priority: number }>>;
  ptr(ip: string): Promise<DnsAnswer<string>>;
}

export interface SpfOptions {
  /** Receiving host name for %{r}. */
  readonly receiver?: string;
  /** Seconds since the epoch for %{t}. */
  readonly now?: number;
  /** §4.6.4 limits; the defaults are the RFC's. */
  readonly maxLookups?: number;
  readonly maxVoid?: number;
}

export interface SpfOutcome {
  readonly result: SpfResult;
  /** For fail: the exp= text, or a default one. */
  readonly explanation?: string;
  /** Why, for the log: the matching term or the error. */
  readonly reason: string;
}

const DEFAULT_EXPLANATION = 'SPF check failed';

/** Shared across the whole evaluation, including include and redirect (§4.6.4). */
interface State {
  readonly dns: SpfDns;
  readonly ip: IpAddress;
  readonly sender: string;
  readonly helo: string;
  readonly opts: SpfOptions;
  lookups: number;
  voids: number;
}

/** Ends evaluation early: temperror or permerror with a reason. */
class Abort {
  constructor(readonly result: 'temperror' | 'permerror', readonly reason: string) {}
}

export async function checkHost(ip: string, domain: string, sender: string, helo: string, dns: SpfDns, opts: SpfOptions = {}): Promise<SpfOutcome> {
  const addr = clientIp(ip);
  if (!addr) return { result: 'permerror', reason: `bad client IP "${ip}"` };
  const st: State = { dns, ip: addr, sender: withLocalPart(sender, domain), helo, opts, lookups: 0, voids: 0 };
  try {
    return await evaluate(st, domain, true);
  } catch (e) {
    if (e instanceof Abort) return { result: e.result, reason: e.reason };
    return { result: 'temperror', reason: `internal: ${String(e)}` };
  }
}

/** An IPv4-mapped IPv6 client is its IPv4 address (RFC 7208 §5: "ip6" vs "ip4" matching). */
function clientIp(ip: string): IpAddress | null {
  const a = parseIp(ip);
  if (!a || a.family === 4) return a;
  const b = a.bytes;
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? { family: 4, bytes: b.slice(12) } : a;
}

/** §4.3: an empty local part becomes "postmaster"; a bare domain is postmaster@domain. */
function withLocalPart(sender: string, domain: string): string {
  const at = sender.lastIndexOf('@');
  if (at < 0) return `postmaster@${sender || domain}`;
  return at === 0 ? `postmaster${sender}` : sender;
}

/** §4.3: a name that is not a multi-label FQDN with 1–63 octet labels is not checked. */
export function validDomain(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  const labels = n.split('.');
  if (labels.length < 2) return false;
  return labels.every((l) => l.length > 0 && l.length <= 63) && !/^\d+$/.test(labels[labels.length - 1] ?? '');
}

async function evaluate(st: State, domain: string, top: boolean): Promise<SpfOutcome> {
  if (!validDomain(domain)) return { result: 'none', reason: `not a valid domain "${domain}"` };
  const found = await fetchRecord(st, domain);
  if (typeof found !== 'string') return found;
  const parsed = parseRecord(found);
  if (!parsed.ok) return { result: 'permerror', reason: parsed.error };
  const ctx = macroContext(st, domain);
  for (const m of parsed.record.mechanisms) {
    if (await matches(st, m, ctx, domain)) {
      const result = qualifierResult(m.q);
      const reason = `matched ${m.kind} in ${domain}`;
      if (result !== 'fail' || !top) return { result, reason };
      return { result, reason, explanation: await explain(st, parsed.record, ctx) };
    }
  }
  return followRedirect(st, parsed.record, ctx, domain, top);
}

async function followRedirect(st: State, rec: SpfRecord, ctx: MacroContext, domain: string, top: boolean): Promise<SpfOutcome> {
  const hasAll = rec.mechanisms.some((m) => m.kind === 'all');
  if (rec.redirect === null || hasAll) return { result: 'neutral', reason: `no match in ${domain}` };
  countLookup(st);
  const target = await expandOrAbort(expandDomain(rec.redirect, ctx));
  if (!validDomain(target)) throw new Abort('permerror', `redirect to invalid domain "${target}"`);
  const out = await evaluate(st, target, top);
  // §6.1: a redirect to a domain with no SPF record is a permerror.
  return out.result === 'none' ? { result: 'permerror', reason: `redirect target ${target} has no SPF record` } : out;
}

/** §4.4–4.5: the single "v=spf1" TXT record at the domain, or the result that stands for it. */
async function fetchRecord(st: State, domain: string): Promise<string | SpfOutcome> {
  const ans = await st.dns.txt(domain);
  if (isError(ans)) {
    if (ans.error === 'temp') return { result: 'temperror', reason: `TXT lookup for ${domain} failed` };
    return { result: 'none', reason: `no TXT record at ${domain}` };
  }
  const records = ans.map((r) => (typeof r === 'string' ? r : r.join(''))).filter(isSpfRecord);
  if (records.length === 0) return { result: 'none', reason: `no SPF record at ${domain}` };
  if (records.length > 1) return { result: 'permerror', reason: `${records.length} SPF records at ${domain}` };
  return records[0] ?? '';
}

function qualifierResult(q: Qualifier): SpfResult {
  switch (q) {
    case '+': return 'pass';
    case '-': return 'fail';
    case '~': return 'softfail';
    case '?': return 'neutral';
    default: return assertNever(q);
  }
}

async function matches(st: State, m: Mechanism, ctx: MacroContext, domain: string): Promise<boolean> {
  switch (m.kind) {
    case 'all': return true;
    case 'ip4':
    case 'ip6': return st.ip.family === m.ip.family && sameBits(st.ip.bytes, m.ip.bytes, m.prefix);
    case 'include': return matchInclude(st, m.domain, ctx);
    case 'a': return matchA(st, await targetOf(st, m.domain, ctx, domain), m.cidr4, m.cidr6, true);
    case 'mx': return matchMx(st, await targetOf(st, m.domain, ctx, domain), m.cidr4, m.cidr6);
    case 'ptr': return matchPtr(st, await targetOf(st, m.domain, ctx, domain));
    case 'exists': return matchExists(st, await targetOf(st, m.domain, ctx, domain));
    default: return assertNever(m);
  }
}

/** Counts the term against the 10-lookup limit, then expands its domain-spec. */
async function targetOf(st: State, spec: string | null, ctx: MacroContext, domain: string): Promise<string> {
  countLookup(st);
  return spec === null ? domain : expandOrAbort(expandDomain(spec, ctx));
}

function countLookup(st: State): void {
  st.lookups++;
  if (st.lookups > (st.opts.maxLookups ?? 10)) throw new Abort('permerror', 'more than 10 DNS-querying terms');
}

/** §4.6.4: after two lookups that return nothing, the next one is a permerror. */
function countVoid(st: State, ans: DnsError): void {
  if (ans.error === 'temp') return;
  st.voids++;
  if (st.voids > (st.opts.maxVoid ?? 2)) throw new Abort('permerror', 'more than 2 void DNS lookups');
}

async function expandOrAbort(p: Promise<string | { readonly error: string }>): Promise<string> {
  const v = await p;
  if (typeof v !== 'string') throw new Abort('permerror', v.error);
  return v;
}

/** §5.2: include matches on pass; temperror passes up; permerror and none become permerror. */
async function matchInclude(st: State, spec: string, ctx: MacroContext): Promise<boolean> {
  countLookup(st);
  const target = await expandOrAbort(expandDomain(spec, ctx));
  const out = await evaluate(st, target, false);
  switch (out.result) {
    case 'pass': return true;
    case 'fail':
    case 'softfail':
    case 'neutral': return false;
    case 'temperror': throw new Abort('temperror', out.reason);
    case 'permerror': throw new Abort('permerror', out.reason);
    case 'none': throw new Abort('permerror', `included ${target} has no SPF record`);
    default: return assertNever(out.result);
  }
}

/** Addresses of a name in the client's family; void answers are counted when `countVoids`. */
async function addresses(st: State, name: string, countVoids: boolean): Promise<IpAddress[]> {
  if (!validDomain(name)) return [];
  const ans = st.ip.family === 4 ? await st.dns.a(name) : await st.dns.aaaa(name);
  if (isError(ans)) {
    if (ans.error === 'temp') throw new Abort('temperror', `address lookup for ${name} failed`);
    if (countVoids) countVoid(st, ans);
    return [];
  }
  return ans.map(parseIp).filter((a): a is IpAddress => a !== null && a.family === st.ip.family);
}

async function matchA(st: State, name: string, cidr4: number, cidr6: number, countVoids: boolean): Promise<boolean> {
  const prefix = st.ip.family === 4 ? cidr4 : cidr6;
  const addrs = await addresses(st, name, countVoids);
  return addrs.some((a) => sameBits(st.ip.bytes, a.bytes, prefix));
}

/** §5.4 and §4.6.4: more than 10 MX names is a permerror. */
async function matchMx(st: State, name: string, cidr4: number, cidr6: number): Promise<boolean> {
  if (!validDomain(name)) return false;
  const ans = await st.dns.mx(name);
  if (isError(ans)) {
    if (ans.error === 'temp') throw new Abort('temperror', `MX lookup for ${name} failed`);
    countVoid(st, ans);
    return false;
  }
  if (ans.length > 10) throw new Abort('permerror', `more than 10 MX names at ${name}`);
  const sorted = [...ans].sort((x, y) => x.priority - y.priority);
  for (const mx of sorted) {
    if (await matchA(st, mx.exchange.replace(/\.$/, ''), cidr4, cidr6, false)) return true;
  }
  return false;
}

/** §5.5: names from the PTR lookup (first 10 only) whose addresses include the client. */
async function validatedNames(st: State): Promise<string[]> {
  const ans = await st.dns.ptr(ipText(st.ip));
  if (isError(ans)) {
    if (ans.error !== 'temp') countVoid(st, ans);
    return [];
  }
  const out: string[] = [];
  for (const raw of ans.slice(0, 10)) {
    const name = raw.replace(/\.$/, '');
    try {
      const addrs = await addresses(st, name, false);
      if (addrs.some((a) => sameBits(st.ip.bytes, a.bytes, a.bytes.length * 8))) out.push(name);
    } catch (e) {
      // §5.5: a DNS error on one name skips that name.
      if (!(e instanceof Abort)) throw e;
    }
  }
  return out;
}

function isSubdomain(name: string, domain: string): boolean {
  const n = name.toLowerCase();
  const d = domain.toLowerCase().replace(/\.$/, '');
  return n === d || n.endsWith(`.${d}`);
}

async function matchPtr(st: State, target: string): Promise<boolean> {
  const names = await validatedNames(st);
  return names.some((n) => isSubdomain(n, target));
}

/** §5.7: exists always asks for A records, whatever the client's family. */
async function matchExists(st: State, name: string): Promise<boolean> {
  if (!validDomain(name)) return false;
  const ans = await st.dns.a(name);
  if (isError(ans)) {
    if (ans.error === 'temp') throw new Abort('temperror', `A lookup for ${name} failed`);
    countVoid(st, ans);
    return false;
  }
  return ans.length > 0;
}

/** §6.2: the exp= TXT record, macro-expanded; any trouble gives the default text. */
async function explain(st: State, rec: SpfRecord, ctx: MacroContext): Promise<string> {
  if (rec.exp === null) return DEFAULT_EXPLANATION;
  try {
    const name = await expandDomain(rec.exp, ctx);
    if (typeof name !== 'string' || !validDomain(name)) return DEFAULT_EXPLANATION;
    const ans = await st.dns.txt(name);
    if (isError(ans) || ans.length !== 1) return DEFAULT_EXPLANATION;
    const first = ans[0] ?? '';
    const text = await expandMacro(typeof first === 'string' ? first : first.join(''), ctx, true);
    return typeof text === 'string' ? text : DEFAULT_EXPLANATION;
  } catch {
    return DEFAULT_EXPLANATION;
  }
}

function macroContext(st: State, domain: string): MacroContext {
  let cached: Promise<string> | null = null;
  const validatedName = async (): Promise<string> => {
    const names = await validatedNames(st);
    return names.find((n) => isSubdomain(n, domain)) ?? names[0] ?? 'unknown';
  };
  return {
    sender: st.sender, domain, ip: st.ip, helo: st.helo,
    ...(st.opts.receiver !== undefined ? { receiver: st.opts.receiver } : {}),
    ...(st.opts.now !== undefined ? { now: st.opts.now } : {}),
    validatedName: () => (cached ??= validatedName()),
  };
}

function isError<T>(a: DnsAnswer<T>): a is DnsError {
  return !Array.isArray(a);
}

function ipText(ip: IpAddress): string {
  if (ip.family === 4) return ipDotted(ip);
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((ip.bytes[i] ?? 0) << 8) | (ip.bytes[i + 1] ?? 0)).toString(16));
  return words.join(':');
}

function sameBits(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  if (a.length !== b.length) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const i = bit / 8;
    const take = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((a[i] ?? 0) & mask) !== ((b[i] ?? 0) & mask)) return false;
  }
  return true;
}
