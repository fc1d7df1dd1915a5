/**
 * Delivery routes over node:dns: the MX lookup, then A and AAAA for each MX
 * host, turned into a Route by the pure rules in ./mx (RFC 5321 §5.1,
 * RFC 7505), cached by ./cache.
 *
 * How DNS outcomes map (node:dns error codes):
 * - MX ENOTFOUND (NXDOMAIN) → `no-such-domain`, permanent;
 * - MX ENODATA (name exists, no MX) → implicit MX: the domain's own A/AAAA;
 * - ESERVFAIL, ETIMEOUT, ECONNREFUSED, EREFUSED and anything unexpected →
 *   `temporary`: the answer may be different on the next attempt;
 * - a CNAME'd domain: the resolver returns the records at the end of the
 *   chain (checked against dnsmasq in test/dns/resolver.test.ts).
 * An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]", RFC 5321 §4.1.3)
 * needs no DNS at all.
 *
 * resolveRoute never throws and never hangs: c-ares has its own timeout and
 * retries, but its back-off varies between versions, so each query is also
 * abandoned after timeoutMs × 2^tries, and a route costs at most two such
 * rounds (the MX query, then every address query in parallel).
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { TtlCache, routeTtl, type Clock } from './cache';
import {
  buildRoute,
  isHostName,
  normalizeName,
  planMx,
  shuffleEqualPreferences,
  type HostAddresses,
  type MxPlan,
  type MxRecord,
  type Route,
} from './mx';

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export interface ResolverOptions {
  /** Empty: the system's resolvers (/etc/resolv.conf). */
  readonly servers: readonly DnsServer[];
  /** First-try timeout of one query, in ms. */
  readonly timeoutMs?: number;
  /** Attempts per server before a query fails with ETIMEOUT. */
  readonly tries?: number;
  /** Uniform in [0, 1); Math.random by default. */
  readonly random?: () => number;
  /** This host's names, for RFC 5321 §5.1 MX self-pruning (backup MX). */
  readonly self?: readonly string[];
  /** Shared or test cache; null turns caching off. */
  readonly cache?: TtlCache<Route> | null;
  readonly now?: Clock;
}

export interface MxResolver {
  /** The route for mail to `domain` (a DNS name or an address literal). */
  resolveRoute(domain: string): Promise<Route>;
  /** One host (a smart host): its addresses, no MX lookup. */
  resolveAddresses(host: string): Promise<Route>;
}

export const DEFAULT_TIMEOUT_MS = 3000;
export const DEFAULT_TRIES = 2;

/** "127.0.0.1:5353" or "[::1]:53", the forms Resolver.setServers accepts. */
export function formatServer(s: DnsServer): string {
  return s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

type Answer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: string };

/** A built route plus the TTLs of the address records in it, for the cache. */
interface Resolved {
  readonly route: Route;
  readonly ttls: readonly number[];
}

/** Throws only on a malformed server list (the config validates it first). */
export function createResolver(opts: ResolverOptions): MxResolver {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const tries = opts.tries ?? DEFAULT_TRIES;
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries });
  if (opts.servers.length > 0) resolver.setServers(opts.servers.map(formatServer));
  const lookups = new Lookups(resolver, timeoutMs * 2 ** tries);
  const random = opts.random ?? Math.random;
  const self = (opts.self ?? []).map(normalizeName);
  const cache = opts.cache === undefined ? new TtlCache<Route>({ now: opts.now }) : opts.cache;
  const memo = new Memo(cache, random);

  return {
    resolveRoute(domain) {
      const literal = addressLiteral(domain);
      if (literal) return Promise.resolve(literal);
      const name = asciiName(domain);
      if (name === null) return Promise.resolve(badName(domain));
      return memo.route(`mx:${name}`, () => lookups.route(name, (records) => planMx(name, records, { random, self })));
    },
    resolveAddresses(host) {
      const literal = addressLiteral(host) ?? (isIP(host) ? literalRoute(host, host) : null);
      if (literal) return Promise.resolve(literal);
      const name = asciiName(host);
      if (name === null) return Promise.resolve(badName(host));
      return memo.route(`host:${name}`, () => lookups.host(name));
    },
  };
}

/** Cache in front of the lookups, and one lookup for concurrent asks of the same key. */
class Memo {
  private readonly inFlight = new Map<string, Promise<Route>>();

  constructor(
    private readonly cache: TtlCache<Route> | null,
    private readonly random: () => number,
  ) {}

  /** Never rejects: an unexpected error becomes a temporary route. */
  route(key: string, run: () => Promise<Resolved>): Promise<Route> {
    const hit = this.cache?.get(key);
    if (hit) return Promise.resolve(reshuffle(hit, this.random));
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const p = run()
      .then(({ route, ttls }) => {
        this.cache?.set(key, route, routeTtl(route, ttls));
        return route;
      })
      .catch((e: unknown): Route => ({ kind: 'temporary', reason: `resolver error: ${e instanceof Error ? e.message : String(e)}` }))
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }
}

/** The queries themselves, each bounded by `deadlineMs`. */
class Lookups {
  constructor(
    private readonly resolver: dns.Resolver,
    private readonly deadlineMs: number,
  ) {}

  async route(domain: string, plan: (records: readonly MxRecord[]) => MxPlan): Promise<Resolved> {
    const mx = await this.ask(() => this.resolver.resolveMx(domain));
    if (!mx.ok) {
      switch (mx.code) {
        case 'ENOTFOUND':
          return { route: { kind: 'no-such-domain' }, ttls: [] };
        case 'ENODATA':
          return this.addressesFor(domain, plan([]));
        case 'EBADNAME':
          return { route: badName(domain), ttls: [] };
        default:
          return { route: { kind: 'temporary', reason: `MX lookup for ${domain}: ${mx.code}` }, ttls: [] };
      }
    }
    return this.addressesFor(domain, plan(mx.value));
  }

  async host(name: string): Promise<Resolved> {
    const { found, ttls, nxdomain } = await this.addresses(name);
    if (nxdomain) return { route: { kind: 'no-such-domain' }, ttls };
    const route = buildRoute(name, { kind: 'targets', targets: [{ name, preference: 0 }], implicit: false }, new Map([[name, found]]));
    if (route.kind === 'unroutable') return { route: { ...route, reason: `${name} has no address` }, ttls };
    return { route, ttls };
  }

  /** A and AAAA of every planned target, all in parallel. */
  private async addressesFor(domain: string, plan: MxPlan): Promise<Resolved> {
    if (plan.kind !== 'targets') return { route: plan, ttls: [] };
    const answers = await Promise.all(plan.targets.map(async (t) => [t.name, await this.addresses(t.name)] as const));
    const found = new Map(answers.map(([name, a]) => [name, a.found]));
    const route = buildRoute(domain, plan, found);
    const used = route.kind === 'hosts' ? new Set(route.hosts.map((h) => h.name)) : new Set<string>();
    const ttls = answers.flatMap(([name, a]) => (used.has(name) ? a.ttls : []));
    return { route, ttls };
  }

  private async addresses(name: string): Promise<{ found: HostAddresses; ttls: number[]; nxdomain: boolean }> {
    const [v6, v4] = await Promise.all([
      this.ask(() => this.resolver.resolve6(name, { ttl: true })),
      this.ask(() => this.resolver.resolve4(name, { ttl: true })),
    ]);
    const failures = [v6, v4].flatMap((a, i) => (a.ok || definite(a.code) ? [] : [`${i === 0 ? 'AAAA' : 'A'} ${a.code}`]));
    const found: HostAddresses = {
      ipv6: v6.ok ? v6.value.map((r) => r.address) : [],
      ipv4: v4.ok ? v4.value.map((r) => r.address) : [],
      temporary: failures.length > 0 ? failures.join(', ') : null,
    };
    const ttls = [v6, v4].flatMap((a) => (a.ok ? a.value.map((r) => r.ttl) : []));
    const nxdomain = !v6.ok && !v4.ok && v6.code === 'ENOTFOUND' && v4.code === 'ENOTFOUND';
    return { found, ttls, nxdomain };
  }

  /** Runs one query; its error becomes a code, and ETIMEOUT if it outlives the deadline. */
  private async ask<T>(query: () => Promise<T>): Promise<Answer<T>> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Answer<T>>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, code: 'ETIMEOUT' }), this.deadlineMs);
    });
    const answer = Promise.resolve()
      .then(query)
      .then(
        (value): Answer<T> => ({ ok: true, value }),
        (e: unknown): Answer<T> => ({ ok: false, code: errorCode(e) }),
      );
    try {
      return await Promise.race([answer, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** NXDOMAIN or "no records of this type": a real answer, not a failure to get one. */
function definite(code: string): boolean {
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.message : String(e);
}

/** IDNA to A-labels (RFC 5890), lowercase, no root dot; null when not a host name. */
function asciiName(domain: string): string | null {
  const name = normalizeName(domainToASCII(domain.trim()));
  return isHostName(name) ? name : null;
}

function badName(domain: string): Route {
  return { kind: 'unroutable', enhanced: '5.1.2', reason: `not a valid domain name: ${JSON.stringify(domain)}` };
}

/** RFC 5321 §4.1.3 address literal, or null when `domain` is not bracketed. */
function addressLiteral(domain: string): Route | null {
  const m = /^\[(?:(ipv6):)?([^\]]*)\]$/i.exec(domain.trim());
  if (!m) return null;
  const ip = m[2] ?? '';
  const family = isIP(ip);
  if (family === (m[1] ? 6 : 4)) return literalRoute(domain.trim(), ip);
  return { kind: 'unroutable', enhanced: '5.1.2', reason: `not a valid address literal: ${domain}` };
}

function literalRoute(name: string, ip: string): Route {
  return { kind: 'hosts', hosts: [{ name, preference: 0, addresses: [ip] }], implicit: false };
}

/** A cached route is reshuffled on each hit so equal-preference hosts keep sharing the load. */
function reshuffle(route: Route, random: () => number): Route {
  return route.kind === 'hosts' ? { ...route, hosts: shuffleEqualPreferences(route.hosts, random) } : route;
}
