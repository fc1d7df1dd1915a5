/**
 * src/dns/resolver.ts against REAL DNS: a private dnsmasq serving the .test
 * zone of test/helpers/dnsmasq.ts on a loopback port. Covers RFC 5321 §5.1
 * (MX order, ties shuffled, implicit MX, CNAME followed, hosts without
 * addresses skipped), RFC 7505 null MX, NXDOMAIN (permanent), SERVFAIL,
 * REFUSED, ECONNREFUSED and timeouts (temporary), address literals, and the
 * TTL cache. If dnsmasq is missing or will not start, beforeAll fails with
 * the reason: these tests never skip silently.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEGATIVE_TTL_S, TtlCache } from '../../src/dns/cache';
import { MAX_MX_HOSTS, type Route, type RouteHost } from '../../src/dns/mx';
import { createResolver, formatServer, type MxResolver } from '../../src/dns/resolver';
import { RESOLVER_TEST_ZONE, loopback6Available, startDnsZone, startSilentServer, type DnsZoneServer } from '../helpers/dnsmasq';

let zone: DnsZoneServer;
let resolver: MxResolver;
const has6 = await loopback6Available();

beforeAll(async () => {
  zone = await startDnsZone(RESOLVER_TEST_ZONE);
  resolver = createResolver({ servers: [zone.server], timeoutMs: 300, tries: 1, cache: null });
});

afterAll(async () => {
  await zone?.stop();
});

function hostsOf(route: Route): readonly RouteHost[] {
  if (route.kind !== 'hosts') throw new Error(`expected hosts, got ${JSON.stringify(route)}\n--- dnsmasq log ---\n${zone.log()}`);
  return route.hosts;
}

const names = (route: Route) => hostsOf(route).map((h) => h.name);

describe('RFC 5321 §5.1 MX routes from real DNS', () => {
  it('hosts in preference order, with their addresses, IPv6 first; a host without address is skipped', async () => {
    const hosts = hostsOf(await resolver.resolveRoute('multi.test'));
    expect(hosts.map((h) => h.preference)).toEqual([10, 20, 20]);
    expect(hosts[0]).toEqual({ name: 'mx1.multi.test', preference: 10, addresses: ['::1', '127.0.0.2'] });
    expect(hosts.slice(1).map((h) => h.name).sort()).toEqual(['mx2.multi.test', 'mx3.multi.test']);
    expect(hosts.find((h) => h.name === 'mx3.multi.test')?.addresses).toEqual(['127.0.0.4']);
  });

  it('the tie at preference 20 comes back in both orders across lookups', async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 40 && orders.size < 2; i++) orders.add(names(await resolver.resolveRoute('multi.test')).join(' '));
    expect([...orders].sort()).toEqual(['mx1.multi.test mx2.multi.test mx3.multi.test', 'mx1.multi.test mx3.multi.test mx2.multi.test']);
  });

  it('case and a trailing root dot do not matter', async () => {
    expect(names(await resolver.resolveRoute('MULTI.Test.'))[0]).toBe('mx1.multi.test');
  });

  it('a CNAME to a domain with MX records is followed', async () => {
    expect(names(await resolver.resolveRoute('alias.test'))[0]).toBe('mx1.multi.test');
  });

  it('no MX records: implicit MX, the domain itself at preference 0', async () => {
    expect(await resolver.resolveRoute('implicit.test')).toEqual({
      kind: 'hosts',
      implicit: true,
      hosts: [{ name: 'implicit.test', preference: 0, addresses: ['127.0.0.5'] }],
    });
  });

  it('the host cap: 15 MX records give the 10 most preferred', async () => {
    const hosts = hostsOf(await resolver.resolveRoute('many.test'));
    expect(hosts.map((h) => h.preference)).toEqual(Array.from({ length: MAX_MX_HOSTS }, (_, i) => i + 1));
  });

  it('an internationalized domain is looked up as its A-label (RFC 5890)', async () => {
    expect(names(await resolver.resolveRoute('bücher.test'))).toEqual(['mx1.multi.test']);
  });
});

describe('RFC 7505 null MX and permanent failures', () => {
  it('"0 ." is null MX', async () => {
    expect(await resolver.resolveRoute('nullmx.test')).toEqual({ kind: 'null-mx' });
  });

  it('"0 ." mixed with a real MX is still null MX', async () => {
    expect(await resolver.resolveRoute('mixednull.test')).toEqual({ kind: 'null-mx' });
  });

  it('NXDOMAIN is no-such-domain', async () => {
    expect(await resolver.resolveRoute('nope.test')).toEqual({ kind: 'no-such-domain' });
  });

  it('MX hosts that do not exist: unroutable, 5.4.4', async () => {
    expect(await resolver.resolveRoute('noaddr.test')).toMatchObject({ kind: 'unroutable', enhanced: '5.4.4' });
  });

  it('a name with neither MX nor address: unroutable, 5.4.4', async () => {
    expect(await resolver.resolveRoute('bare.test')).toMatchObject({ kind: 'unroutable', enhanced: '5.4.4' });
  });

  it('a malformed domain never reaches DNS: unroutable, 5.1.2', async () => {
    expect(await resolver.resolveRoute('a..test')).toMatchObject({ kind: 'unroutable', enhanced: '5.1.2' });
  });
});

describe('temporary failures: retried later, never thrown, never hanging', () => {
  it('SERVFAIL on the MX query', async () => {
    const route = await resolver.resolveRoute('servfail.test');
    expect(route).toMatchObject({ kind: 'temporary' });
    expect(route.kind === 'temporary' && route.reason).toContain('ESERVFAIL');
  });

  it('SERVFAIL for one MX host: the other host is used', async () => {
    expect(names(await resolver.resolveRoute('partial.test'))).toEqual(['mx2.multi.test']);
  });

  it('SERVFAIL for every MX host: temporary, not unroutable', async () => {
    const route = await resolver.resolveRoute('allfail.test');
    expect(route.kind).toBe('temporary');
    expect(route.kind === 'temporary' && route.reason).toContain('mx.servfail.test');
  });

  it('an upstream that never answers: dnsmasq stays silent, the query times out', async () => {
    const route = await resolver.resolveRoute('x.silent.test');
    expect(route).toMatchObject({ kind: 'temporary' });
    expect(route.kind === 'temporary' && route.reason).toContain('ETIMEOUT');
  });

  it('REFUSED (a name outside every zone dnsmasq serves)', async () => {
    const route = await resolver.resolveRoute('example.org');
    expect(route.kind === 'temporary' && route.reason).toContain('EREFUSED');
  });

  it('a resolver that never replies: ETIMEOUT, bounded', async () => {
    const silent = await startSilentServer();
    try {
      const r = createResolver({ servers: [silent], timeoutMs: 200, tries: 1, cache: null });
      const route = await r.resolveRoute('multi.test');
      expect(route).toMatchObject({ kind: 'temporary' });
      expect(route.kind === 'temporary' && route.reason).toContain('ETIMEOUT');
      expect(silent.queries()).toBeGreaterThan(0);
    } finally {
      await silent.close();
    }
  });

  it('nothing listening on the resolver port: ECONNREFUSED, temporary', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((res) => sock.bind(0, '127.0.0.1', res));
    const port = sock.address().port;
    await new Promise<void>((res) => sock.close(() => res()));
    const r = createResolver({ servers: [{ host: '127.0.0.1', port }], timeoutMs: 300, tries: 1, cache: null });
    const route = await r.resolveRoute('multi.test');
    expect(route.kind === 'temporary' && route.reason).toContain('ECONNREFUSED');
  });
});

describe('no DNS needed', () => {
  it('address literals go straight to the address (RFC 5321 §4.1.3), without a query', async () => {
    const silent = await startSilentServer();
    try {
      const r = createResolver({ servers: [silent], timeoutMs: 200, tries: 1 });
      expect(hostsOf(await r.resolveRoute('[127.0.0.9]'))[0]?.addresses).toEqual(['127.0.0.9']);
      expect(hostsOf(await r.resolveRoute('[IPv6:::1]'))[0]?.addresses).toEqual(['::1']);
      expect(hostsOf(await r.resolveAddresses('127.0.0.7'))[0]?.addresses).toEqual(['127.0.0.7']);
      expect(await r.resolveRoute('[IPv6:127.0.0.1]')).toMatchObject({ kind: 'unroutable', enhanced: '5.1.2' });
      expect(silent.queries()).toBe(0);
    } finally {
      await silent.close();
    }
  });
});

describe('resolveAddresses (smart host): A and AAAA, no MX', () => {
  it('a host name gives its addresses', async () => {
    expect(await resolver.resolveAddresses('mx1.multi.test')).toEqual({
      kind: 'hosts',
      implicit: false,
      hosts: [{ name: 'mx1.multi.test', preference: 0, addresses: ['::1', '127.0.0.2'] }],
    });
  });

  it('a domain with MX records but no address of its own is not routed by MX', async () => {
    expect(await resolver.resolveAddresses('multi.test')).toMatchObject({ kind: 'unroutable' });
  });

  it('NXDOMAIN, and SERVFAIL', async () => {
    expect(await resolver.resolveAddresses('nope.test')).toEqual({ kind: 'no-such-domain' });
    expect((await resolver.resolveAddresses('mx.servfail.test')).kind).toBe('temporary');
  });
});

describe('resolver over IPv6 loopback ("[::1]:port")', () => {
  it('formats servers the way Resolver.setServers wants them', () => {
    expect(formatServer({ host: '::1', port: 5353 })).toBe('[::1]:5353');
    expect(formatServer({ host: '127.0.0.1', port: 5353 })).toBe('127.0.0.1:5353');
  });

  it.skipIf(!has6)('resolves through dnsmasq on ::1', async () => {
    if (!zone.server6) throw new Error('dnsmasq did not listen on ::1');
    const r = createResolver({ servers: [zone.server6], timeoutMs: 300, tries: 1, cache: null });
    expect(names(await r.resolveRoute('multi.test'))[0]).toBe('mx1.multi.test');
  });
});

describe('cache: TTLs from the A/AAAA records, negative caching, reshuffled hits', () => {
  function cachedResolver() {
    let now = 1_000_000;
    const cache = new TtlCache<Route>({ now: () => now });
    const r = createResolver({ servers: [zone.server], timeoutMs: 300, tries: 1, cache, now: () => now });
    return { r, cache, advance: (s: number) => void (now += s * 1000) };
  }

  it('a route lives as long as the shortest address TTL in it (mx2.multi.test: 60 s)', async () => {
    const { r, cache, advance } = cachedResolver();
    await r.resolveRoute('multi.test');
    advance(59);
    expect(cache.get('mx:multi.test')).toBeDefined();
    advance(2);
    expect(cache.get('mx:multi.test')).toBeUndefined();
  });

  it('implicit MX takes the domain\'s own address TTL (30 s)', async () => {
    const { r, cache, advance } = cachedResolver();
    await r.resolveRoute('implicit.test');
    advance(29);
    expect(cache.get('mx:implicit.test')).toBeDefined();
    advance(2);
    expect(cache.get('mx:implicit.test')).toBeUndefined();
  });

  it('NXDOMAIN is cached for the negative TTL; temporary failures are not cached', async () => {
    const { r, cache, advance } = cachedResolver();
    await r.resolveRoute('nope.test');
    await r.resolveRoute('servfail.test');
    expect(cache.get('mx:servfail.test')).toBeUndefined();
    advance(NEGATIVE_TTL_S - 1);
    expect(cache.get('mx:nope.test')).toEqual({ kind: 'no-such-domain' });
    advance(2);
    expect(cache.get('mx:nope.test')).toBeUndefined();
  });

  it('cache hits still shuffle equal preferences', async () => {
    const { r, cache } = cachedResolver();
    const orders = new Set<string>();
    for (let i = 0; i < 40 && orders.size < 2; i++) orders.add(names(await r.resolveRoute('multi.test')).join(' '));
    expect(cache.size).toBe(1);
    expect(orders.size).toBe(2);
  });

  it('concurrent lookups of one domain share one resolution', async () => {
    const { r } = cachedResolver();
    const a = r.resolveRoute('alias.test');
    const b = r.resolveRoute('alias.test');
    expect(a).toBe(b);
    await a;
  });
});
