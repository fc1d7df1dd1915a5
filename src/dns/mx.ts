/**
 * Choosing where mail for a domain goes, from DNS answers already fetched.
 * PURE: no node:dns, no timers, randomness injected; src/dns/resolver.ts does
 * the lookups and feeds the answers in here.
 *
 * RFC 5321 §5.1: MX records in ascending preference; records of equal
 * preference in random order, to spread load; no MX records → the domain
 * itself is the one host ("implicit MX", preference 0); a host that is one of
 * the domain's MX hosts drops every record of equal or higher preference than
 * its own, so a backup MX never sends mail to itself or to another backup.
 * RFC 7505: an MX whose exchange is "." (the root, empty name) means the
 * domain accepts no mail ("null MX").
 *
 * Choices made here (the RFCs leave them open):
 * - Null MX mixed with other MX records. RFC 7505 §3 says a domain with a
 *   null MX "MUST NOT advertise any other MX RR", but gives a sender no rule
 *   for a domain that does. Petrel treats ANY "." exchange as null MX, at any
 *   preference and whatever else is published: "." is not a host that could
 *   be tried, the owner has explicitly said "no mail here", and a bounce now
 *   is better than mail sitting on hosts the owner meant to switch off.
 *   (Postfix instead honours a null MX only when it is the sole record.)
 * - Cap on hosts (MAX_MX_HOSTS = 10, after sorting). Each MX host costs two
 *   lookups (A, AAAA) and connection attempts; a hostile or broken domain
 *   publishing hundreds of MX records (or hosts with dozens of addresses,
 *   MAX_ADDRESSES_PER_HOST) would otherwise make each message trigger
 *   hundreds of queries and connections, a cheap amplification aimed at us,
 *   at our resolver, or at third-party hosts named as "MX". RFC 5321 §5.1
 *   lets installations limit the alternatives tried; ten preference slots are
 *   far more than any real domain uses (Postfix tries at most 5 addresses).
 * - Address order within a host: families interleaved, IPv6 first
 *   (RFC 8305 §4 "Sorting of Resolved Destination Addresses", RFC 6724 §10.3
 *   default preference for IPv6); within a family, the order DNS returned
 *   (servers rotate it, which already spreads load). Both families are always
 *   kept, so a host whose IPv6 path is broken is still reached over IPv4 on
 *   the next attempt.
 * - No MX host has an address: RFC 5321 §5.1 says this "MUST be reported as
 *   an error" without saying which kind. If every lookup gave a definite
 *   answer (NXDOMAIN or no records) the route is `unroutable` (permanent,
 *   5.4.4, as Postfix does); if any lookup failed temporarily (SERVFAIL,
 *   timeout) the answer might change, so the route is `temporary`.
 */
import { assertNever } from '../smtp/assert-never';

/** One MX answer, as node:dns gives it ("." arrives as the empty string). */
export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

/** An MX host before its addresses are known. */
export interface MxTarget {
  readonly name: string;
  readonly preference: number;
}

export interface RouteHost {
  readonly name: string;
  readonly preference: number;
  /** Connection order: IPv6 and IPv4 interleaved, IPv6 first. Never empty. */
  readonly addresses: readonly string[];
}

/** Where mail for one domain goes; the delivery layer switches on `kind`. */
export type Route =
  /** Try these hosts in order, each address of a host in order. */
  | { readonly kind: 'hosts'; readonly hosts: readonly RouteHost[]; readonly implicit: boolean }
  /** RFC 7505: the domain accepts no mail; bounce at once (5.1.10). */
  | { readonly kind: 'null-mx' }
  /** NXDOMAIN for the domain: permanent (5.1.2). */
  | { readonly kind: 'no-such-domain' }
  /** Other permanent failures: no usable address, routing loop, bad name. */
  | { readonly kind: 'unroutable'; readonly enhanced: string; readonly reason: string }
  /** SERVFAIL, timeout, refused…: retry later (4.4.3). */
  | { readonly kind: 'temporary'; readonly reason: string };

/** What the MX records alone decide, before any address lookup. */
export type MxPlan =
  | { readonly kind: 'targets'; readonly targets: readonly MxTarget[]; readonly implicit: boolean }
  | { readonly kind: 'null-mx' }
  | { readonly kind: 'unroutable'; readonly enhanced: string; readonly reason: string };

/** The A and AAAA answers for one MX host. */
export interface HostAddresses {
  readonly ipv6: readonly string[];
  readonly ipv4: readonly string[];
  /** Why a lookup failed temporarily (SERVFAIL, timeout…), null when both gave an answer. */
  readonly temporary: string | null;
}

export const MAX_MX_HOSTS = 10;
export const MAX_ADDRESSES_PER_HOST = 8;

export interface PlanOptions {
  /** Uniform in [0, 1): injected so tests can pin or vary the shuffle. */
  readonly random: () => number;
  /** This host's own names: RFC 5321 §5.1 MX self-pruning. Lowercase, no trailing dot. */
  readonly self?: readonly string[];
  readonly maxHosts?: number;
}

/** DNS names compare case-insensitively and with or without the root dot (RFC 4343, RFC 1034 §3.1). */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** RFC 1123 §2.1 host name: LDH labels of 1–63 octets, no edge hyphens, 253 octets in all. */
export function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}

/**
 * From the MX answer to the hosts to look up. `records` empty means the
 * domain exists but has no MX (ENODATA): the implicit MX of RFC 5321 §5.1.
 */
export function planMx(domain: string, records: readonly MxRecord[], opts: PlanOptions): MxPlan {
  if (records.length === 0) return { kind: 'targets', targets: [{ name: normalizeName(domain), preference: 0 }], implicit: true };
  if (records.some((r) => normalizeName(r.exchange) === '')) return { kind: 'null-mx' };
  const pruned = pruneSelf(dedupe(records), opts.self ?? []);
  if (pruned.length === 0) {
    return { kind: 'unroutable', enhanced: '5.4.6', reason: `mail for ${domain} loops back to myself: this host is its best MX` };
  }
  const sorted = [...pruned].sort((a, b) => a.preference - b.preference);
  const targets = shuffleEqualPreferences(sorted, opts.random).slice(0, opts.maxHosts ?? MAX_MX_HOSTS);
  return { kind: 'targets', targets, implicit: false };
}

/** One target per host name, at its lowest preference: a host listed twice is tried once. */
function dedupe(records: readonly MxRecord[]): MxTarget[] {
  const best = new Map<string, number>();
  for (const r of records) {
    const name = normalizeName(r.exchange);
    const seen = best.get(name);
    if (seen === undefined || r.priority < seen) best.set(name, r.priority);
  }
  return [...best].map(([name, preference]) => ({ name, preference }));
}

/** RFC 5321 §5.1: if we are an MX of the domain, keep only hosts strictly preferred to us. */
function pruneSelf(targets: MxTarget[], self: readonly string[]): MxTarget[] {
  const mine = targets.filter((t) => self.includes(t.name));
  if (mine.length === 0) return targets;
  const ours = Math.min(...mine.map((t) => t.preference));
  return targets.filter((t) => t.preference < ours);
}

/**
 * Fisher–Yates within each run of equal preference; `sorted` must be in
 * ascending preference. Also used on every cache hit, so load keeps spreading
 * while a route is cached.
 */
export function shuffleEqualPreferences<T extends { readonly preference: number }>(sorted: readonly T[], random: () => number): T[] {
  const out = [...sorted];
  let start = 0;
  while (start < out.length) {
    let end = start + 1;
    while (end < out.length && out[end]?.preference === out[start]?.preference) end++;
    for (let i = end - 1; i > start; i--) {
      // min() guards against a random source that returns exactly 1.
      const j = start + Math.min(i - start, Math.floor(random() * (i - start + 1)));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    start = end;
  }
  return out;
}

/** RFC 8305 §4: interleave the families, IPv6 first; duplicates dropped; capped. */
export function orderAddresses(ipv6: readonly string[], ipv4: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < Math.max(ipv6.length, ipv4.length); i++) {
    for (const a of [ipv6[i], ipv4[i]]) if (a !== undefined && !out.includes(a)) out.push(a);
  }
  return out.slice(0, MAX_ADDRESSES_PER_HOST);
}

/** Joins the planned targets with their addresses; hosts without any address are skipped. */
export function buildRoute(domain: string, plan: MxPlan, lookups: ReadonlyMap<string, HostAddresses>): Route {
  if (plan.kind !== 'targets') return plan;
  const hosts: RouteHost[] = [];
  const temporary: string[] = [];
  for (const t of plan.targets) {
    const found = lookups.get(t.name);
    const addresses = found ? orderAddresses(found.ipv6, found.ipv4) : [];
    if (addresses.length > 0) hosts.push({ ...t, addresses });
    else if (found?.temporary) temporary.push(`${t.name}: ${found.temporary}`);
  }
  if (hosts.length > 0) return { kind: 'hosts', hosts, implicit: plan.implicit };
  if (temporary.length > 0) return { kind: 'temporary', reason: `no address for any MX host of ${domain} yet (${temporary.join('; ')})` };
  const reason = plan.implicit ? `${domain} has no MX record and no address` : `none of the MX hosts of ${domain} has an address`;
  return { kind: 'unroutable', enhanced: '5.4.4', reason };
}

/** How a failed route should end a recipient: the enhanced code and text a bounce or deferral carries. */
export function routeFailure(route: Route): { permanent: boolean; enhanced: string; text: string } | null {
  switch (route.kind) {
    case 'hosts':
      return null;
    case 'null-mx':
      return { permanent: true, enhanced: '5.1.10', text: 'recipient domain has a null MX: it accepts no mail (RFC 7505)' };
    case 'no-such-domain':
      return { permanent: true, enhanced: '5.1.2', text: 'recipient domain does not exist (NXDOMAIN)' };
    case 'unroutable':
      return { permanent: true, enhanced: route.enhanced, text: route.reason };
    case 'temporary':
      return { permanent: false, enhanced: '4.4.3', text: `DNS lookup failed: ${route.reason}` };
    default:
      return assertNever(route);
  }
}
