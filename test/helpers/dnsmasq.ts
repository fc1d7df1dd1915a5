/**
 * A private dnsmasq (Debian package dnsmasq-base), started by a test and
 * stopped by its own pid, serving a made-up zone on 127.0.0.1 (and ::1) on a
 * free port: real DNS on the wire for the resolver and delivery tests.
 *
 * Each instance runs in the foreground with --conf-file=/dev/null, no
 * /etc/hosts, no resolv.conf and no system service. What dnsmasq really
 * answers (checked by hand against node:dns, dnsmasq 2.90):
 * - `local=/test/`: any name under .test not configured → NXDOMAIN; a
 *   configured name asked for a type it lacks → NOERROR/NODATA (ENODATA);
 * - `mx-host=d,.,0` → the RFC 7505 null MX "0 ." (node:dns: exchange "");
 * - `cname=alias,target`: answers carry the CNAME and the target's records;
 * - `server=/d/127.0.0.1#1` (a dead upstream) does NOT give SERVFAIL:
 *   dnsmasq stays silent and the client times out (ETIMEOUT);
 * - a real SERVFAIL comes from DNSSEC: this instance validates
 *   (--dnssec, root trust anchor) and `server=/d/#` sends names under d to a
 *   second, plain dnsmasq whose unsigned answers fail validation (BOGUS),
 *   so the client gets SERVFAIL.
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { promises as dns } from 'node:dns';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { stopChild } from './child';

export interface DnsZone {
  /** Zones dnsmasq answers alone: unknown names under them are NXDOMAIN. */
  readonly local: readonly string[];
  /** host "." publishes a null MX. */
  readonly mx?: readonly { readonly domain: string; readonly host: string; readonly preference: number }[];
  readonly hosts?: readonly { readonly name: string; readonly ipv4?: string; readonly ipv6?: string; readonly ttl?: number }[];
  readonly cnames?: readonly { readonly alias: string; readonly target: string }[];
  /** Every name under these answers SERVFAIL (DNSSEC failure, see above). */
  readonly servfail?: readonly string[];
  /** Names under these are forwarded to a dead upstream: no answer, the client times out. */
  readonly silent?: readonly string[];
  /** Raw dnsmasq options, for cases not covered above. */
  readonly extra?: readonly string[];
}

export interface Dnsmasq {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** dnsmasq's own log (queries included), for a failed test's message. */
  log(): string;
  stop(): Promise<void>;
}

export interface DnsZoneServer {
  /** The resolver to give Petrel: 127.0.0.1 and the zone's port. */
  readonly server: { readonly host: string; readonly port: number };
  /** The same zone on ::1, when IPv6 loopback is available; else null. */
  readonly server6: { readonly host: string; readonly port: number } | null;
  readonly pids: readonly number[];
  log(): string;
  stop(): Promise<void>;
}

/** The root zone's KSK-2017 DS record, public data: any anchor works, since no DNSKEY is ever served. */
const ROOT_TRUST_ANCHOR = '.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D';

/** Finds dnsmasq or fails with how to install it: a missing DNS server must fail the tests, not skip them. */
export function dnsmasqBinary(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    const p = join(dir, 'dnsmasq');
    if (dir !== '' && existsSync(p)) return p;
  }
  throw new Error('dnsmasq not found: install the Debian package dnsmasq-base (apt-get install -y dnsmasq-base); the DNS tests need a real DNS server');
}

/** Starts the zone: one dnsmasq, plus a plain upstream one when `servfail` domains are asked for. */
export async function startDnsZone(zone: DnsZone): Promise<DnsZoneServer> {
  const started: Dnsmasq[] = [];
  try {
    const upstream = zone.servfail?.length ? await startDnsmasq(zone.servfail.map((d) => `--local=/${d}/`)) : null;
    if (upstream) started.push(upstream);
    const ipv6 = await loopback6Available();
    const main = await startDnsmasq([...zoneOptions(zone, upstream)], { ipv6 });
    started.push(main);
    return {
      server: { host: main.host, port: main.port },
      server6: ipv6 ? { host: '::1', port: main.port } : null,
      pids: started.map((d) => d.pid),
      log: () => started.map((d) => d.log()).join('\n'),
      stop: async () => void (await Promise.all(started.map((d) => d.stop()))),
    };
  } catch (e) {
    await Promise.all(started.map((d) => d.stop()));
    throw e;
  }
}

/** The zone as dnsmasq options. */
export function zoneOptions(zone: DnsZone, upstream: { host: string; port: number } | null): string[] {
  const opts = zone.local.map((d) => `--local=/${d}/`);
  for (const m of zone.mx ?? []) opts.push(`--mx-host=${m.domain},${m.host},${m.preference}`);
  for (const h of zone.hosts ?? []) {
    const fields = [h.name, h.ipv4, h.ipv6, h.ttl === undefined ? undefined : String(h.ttl)].filter((f) => f !== undefined);
    opts.push(`--host-record=${fields.join(',')}`);
  }
  for (const c of zone.cnames ?? []) opts.push(`--cname=${c.alias},${c.target}`);
  for (const d of zone.silent ?? []) opts.push(`--server=/${d}/127.0.0.1#1`);
  if (zone.servfail?.length) {
    if (!upstream) throw new Error('servfail domains need an upstream dnsmasq');
    opts.push('--dnssec', `--trust-anchor=${ROOT_TRUST_ANCHOR}`, `--server=${upstream.host}#${upstream.port}`);
    for (const d of zone.servfail) opts.push(`--server=/${d}/#`);
  }
  return [...opts, ...(zone.extra ?? [])];
}

/** One dnsmasq in the foreground on a free loopback port; retried if the port was taken meanwhile. */
export async function startDnsmasq(options: readonly string[], opts: { ipv6?: boolean } = {}): Promise<Dnsmasq> {
  const binary = dnsmasqBinary();
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(opts.ipv6 ?? false);
    try {
      return await launch(binary, port, options, opts.ipv6 ?? false);
    } catch (e) {
      lastError = e;
      if (!String(e).includes('in use')) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function launch(binary: string, port: number, options: readonly string[], ipv6: boolean): Promise<Dnsmasq> {
  const args = [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    ...(ipv6 ? ['--listen-address=::1'] : []),
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--no-poll',
    '--log-queries',
    '--log-facility=-',
    '--pid-file', // alone: write no pid file
    // As root dnsmasq would switch to "nobody"; staying root avoids needing that account.
    ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    ...options,
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (b: Buffer) => void (log += b.toString()));
  child.stderr.on('data', (b: Buffer) => void (log += b.toString()));
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => resolve(`dnsmasq exited (${code ?? signal}) before serving:\n${log}`));
    child.on('error', (e) => resolve(`dnsmasq could not start: ${e.message}`));
  });
  const ready = await Promise.race([waitServing(port), exited]);
  if (ready !== true) {
    await stopChild(child);
    throw new Error(typeof ready === 'string' ? ready : `dnsmasq did not answer on 127.0.0.1:${port} within 5 s:\n${log}`);
  }
  return { host: '127.0.0.1', port, pid: child.pid ?? -1, log: () => log, stop: () => stopChild(child) };
}

/** Ready once any DNS answer comes back (REFUSED and NXDOMAIN count); false after 5 s. */
async function waitServing(port: number): Promise<true | false> {
  const r = new dns.Resolver({ timeout: 200, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  for (const end = Date.now() + 5000; Date.now() < end; ) {
    const code = await r.resolve4('probe.invalid').then(
      () => 'answer',
      (e: { code?: string }) => e.code ?? 'error',
    );
    if (code !== 'ECONNREFUSED' && code !== 'ETIMEOUT') return true;
    await new Promise((res) => setTimeout(res, 25));
  }
  return false;
}


/** A port free for TCP and UDP on 127.0.0.1 (dnsmasq binds both), and on ::1 when asked. */
async function freePort(ipv6: boolean): Promise<number> {
  const tcp = createServer();
  await new Promise<void>((res, rej) => tcp.once('error', rej).listen(0, '127.0.0.1', res));
  const addr = tcp.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const free = (await canBindUdp('udp4', '127.0.0.1', port)) && (!ipv6 || (await canBindUdp('udp6', '::1', port)));
  await new Promise<void>((res) => tcp.close(() => res()));
  return free ? port : freePort(ipv6);
}

async function canBindUdp(type: 'udp4' | 'udp6', host: string, port: number): Promise<boolean> {
  const sock = createSocket(type);
  const ok = await new Promise<boolean>((res) => {
    sock.once('error', () => res(false));
    sock.bind(port, host, () => res(true));
  });
  try {
    sock.close();
  } catch {
    // a socket whose bind failed may already be closed
  }
  return ok;
}

/** True when ::1 can be bound here (some CI containers have no IPv6 loopback). */
export function loopback6Available(): Promise<boolean> {
  return canBindUdp('udp6', '::1', 0);
}

/** A UDP "DNS server" that reads queries and never replies: the timeout case. */
export async function startSilentServer(): Promise<{ host: string; port: number; queries(): number; close(): Promise<void> }> {
  const sock: Socket = createSocket('udp4');
  let count = 0;
  sock.on('message', () => void count++);
  await new Promise<void>((res) => sock.bind(0, '127.0.0.1', res));
  return {
    host: '127.0.0.1',
    port: sock.address().port,
    queries: () => count,
    close: () => new Promise<void>((res) => sock.close(() => res())),
  };
}

/**
 * The .test zone test/dns/*.test.ts run against: one name per case of
 * RFC 5321 §5.1 / RFC 7505 routing (preference order, a tie, a host without
 * address, null MX, mixed null MX, CNAME, implicit MX, NXDOMAIN, SERVFAIL, a
 * silent upstream, the host cap).
 */
const many = Array.from({ length: 15 }, (_, i) => i + 1);

export const RESOLVER_TEST_ZONE: DnsZone = {
  local: ['test'],
  mx: [
    // Three preferences, a tie at 20, and a host with no address at 30.
    { domain: 'multi.test', host: 'mx1.multi.test', preference: 10 },
    { domain: 'multi.test', host: 'mx2.multi.test', preference: 20 },
    { domain: 'multi.test', host: 'mx3.multi.test', preference: 20 },
    { domain: 'multi.test', host: 'ghost.multi.test', preference: 30 },
    { domain: 'nullmx.test', host: '.', preference: 0 },
    // RFC 7505 §3 forbids this mix; Petrel still reads it as null MX.
    { domain: 'mixednull.test', host: '.', preference: 0 },
    { domain: 'mixednull.test', host: 'mx1.multi.test', preference: 10 },
    { domain: 'noaddr.test', host: 'ghost.noaddr.test', preference: 10 },
    { domain: 'partial.test', host: 'mx.servfail.test', preference: 10 },
    { domain: 'partial.test', host: 'mx2.multi.test', preference: 20 },
    { domain: 'allfail.test', host: 'mx.servfail.test', preference: 10 },
    { domain: 'xn--bcher-kva.test', host: 'mx1.multi.test', preference: 10 },
    ...many.map((i) => ({ domain: 'many.test', host: `h${i}.many.test`, preference: i })),
  ],
  hosts: [
    { name: 'mx1.multi.test', ipv4: '127.0.0.2', ipv6: '::1', ttl: 300 },
    { name: 'mx2.multi.test', ipv4: '127.0.0.3', ttl: 60 },
    { name: 'mx3.multi.test', ipv4: '127.0.0.4', ttl: 120 },
    { name: 'implicit.test', ipv4: '127.0.0.5', ttl: 30 },
    ...many.map((i) => ({ name: `h${i}.many.test`, ipv4: `127.0.1.${i}`, ttl: 600 })),
  ],
  cnames: [{ alias: 'alias.test', target: 'multi.test' }],
  servfail: ['servfail.test'],
  silent: ['silent.test'],
  // A name that exists (a TXT record) with neither MX nor address.
  extra: ['--txt-record=bare.test,exists'],
};
