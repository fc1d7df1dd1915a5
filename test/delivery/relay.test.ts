/**
 * Smart-host delivery (relay_host) to the Node peer of test/helpers/sink.ts:
 * "[host]" means no MX lookup; STARTTLS (RFC 3207) with SNI = the host name;
 * outbound_tls = verify checks the certificate against that NAME (so the same
 * server reached by its IP address fails verification); AUTH PLAIN (RFC 4954,
 * RFC 4616) only ever over TLS: a smart host without STARTTLS gets no
 * credentials and the mail is deferred, not sent. A failed handshake is
 * retried in plaintext under `may` (RFC 7435), never under `encrypt`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolver, type MxResolver } from '../../src/dns/resolver';
import { startDnsZone, type DnsZoneServer } from '../helpers/dnsmasq';
import { startPeer, type Peer } from '../helpers/sink';
import { envelope, freePort, message, startEngine, waitFor, type Engine } from './harness';

const AUTH = { user: 'relay-user', password: 'relay pass' };
let zone: DnsZoneServer;
let resolver: MxResolver;
let port: number;
let certDir: string;
let cert: { cert: string; key: string };
let tlsPeer: Peer; // 127.0.0.8 relay.test: STARTTLS + AUTH PLAIN required
let plainPeer: Peer; // 127.0.0.11 plain.test: no STARTTLS
let brokenPeer: Peer; // 127.0.0.14 broken.test: offers STARTTLS, then fails the handshake
const engines: Engine[] = [];

beforeAll(async () => {
  zone = await startDnsZone({ local: ['test'], hosts: [{ name: 'relay.test', ipv4: '127.0.0.8' }, { name: 'plain.test', ipv4: '127.0.0.11' }, { name: 'broken.test', ipv4: '127.0.0.14' }] });
  resolver = createResolver({ servers: [zone.server], timeoutMs: 500, tries: 1, cache: null });
  certDir = mkdtempSync(join(tmpdir(), 'petrel-relay-cert-'));
  cert = { cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem') };
  // A certificate for the NAME relay.test only: reaching the same server as 127.0.0.8 must not verify.
  execFileSync('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', cert.key, '-out', cert.cert,
    '-days', '2', '-subj', '/CN=relay.test', '-addext', 'subjectAltName=DNS:relay.test'], { stdio: 'ignore' });
  port = await freePort('127.0.0.8');
  tlsPeer = await startPeer('127.0.0.8', port, { tls: cert, auth: AUTH });
  plainPeer = await startPeer('127.0.0.11', port);
  brokenPeer = await startPeer('127.0.0.14', port, { brokenTls: true });
});

afterAll(async () => {
  for (const e of engines) await e.stop();
  await Promise.all([tlsPeer?.stop(), plainPeer?.stop(), brokenPeer?.stop()]);
  await zone?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

async function engineFor(relayHost: string, outboundTls: 'may' | 'verify' | 'encrypt', auth = true): Promise<Engine> {
  const e = await startEngine({
    resolver,
    tlsCa: readFileSync(cert.cert),
    config: {
      relayHost: { host: relayHost, port, mx: false },
      outboundTls,
      relayAuthUser: auth ? AUTH.user : null,
      relayAuthPassword: auth ? AUTH.password : null,
      outboundPort: 1, // never used: everything goes to the smart host's own port
    },
  });
  engines.push(e);
  return e;
}

describe('relay_host smart host', () => {
  it('delivers every foreign recipient over STARTTLS with AUTH PLAIN, verified against the host name (SNI)', async () => {
    const e = await engineFor('relay.test', 'verify');
    const id = await e.queue.submit(envelope('sender@petrel.local', ['a@one.example', 'b@two.example']), message('via-smart-host'));
    await waitFor('finished', () => e.queue.get(id) === undefined);
    expect(tlsPeer.messages).toHaveLength(1); // one group, one transaction for both domains
    expect(tlsPeer.messages[0]).toMatchObject({ to: ['a@one.example', 'b@two.example'], tls: true, authUser: 'relay-user', sni: 'relay.test' });
    expect(e.events('delivery', id).map((l) => [l.relay, l.ip, l.port, l.status])).toEqual([
      ['relay.test', '127.0.0.8', port, 'sent'],
      ['relay.test', '127.0.0.8', port, 'sent'],
    ]);
  });

  it('verify: the same server reached by IP does not match the certificate name, so nothing is sent', async () => {
    const e = await engineFor('127.0.0.8', 'verify');
    const before = tlsPeer.messages.length;
    const id = await e.queue.submit(envelope('sender@petrel.local', ['c@one.example']), message('ip-not-verified'));
    const line = await waitFor('deferred', () => e.events('delivery', id)[0]);
    expect(line.status).toBe('deferred');
    expect(String(line.reply)).toMatch(/^451 4\.7\.4 127\.0\.0\.8\[127\.0\.0\.8\]:\d+: TLS handshake failed: .*(IP|altnames|does not match)/i);
    expect(tlsPeer.messages.length).toBe(before);
  });

  it('a smart host without STARTTLS never sees the credentials; the mail is deferred', async () => {
    const e = await engineFor('plain.test', 'may');
    const id = await e.queue.submit(envelope('sender@petrel.local', ['d@one.example']), message('no-tls-no-auth'));
    const line = await waitFor('deferred', () => e.events('delivery', id)[0]);
    expect(line).toMatchObject({ status: 'deferred' });
    expect(String(line.reply)).toMatch(/^4\d\d 4\.7\.\d .*TLS/);
    expect(plainPeer.commands.some((c) => c.startsWith('AUTH'))).toBe(false);
    expect(plainPeer.commands.some((c) => c.startsWith('MAIL'))).toBe(false);
  });

  it('may: a failed TLS handshake is retried on the same host in plaintext (RFC 7435)', async () => {
    const e = await engineFor('broken.test', 'may', false);
    const id = await e.queue.submit(envelope('sender@petrel.local', ['e@one.example']), message('tls-fallback'));
    await waitFor('finished', () => e.queue.get(id) === undefined);
    expect(brokenPeer.connections()).toBe(2);
    expect(brokenPeer.messages).toHaveLength(1);
    expect(brokenPeer.messages[0]).toMatchObject({ tls: false, connection: 2 });
    expect(e.events('tls-fallback-plaintext')).toHaveLength(1);
  });

  it('encrypt: a failed TLS handshake is never followed by plaintext delivery', async () => {
    const e = await engineFor('broken.test', 'encrypt', false);
    const before = brokenPeer.messages.length;
    const id = await e.queue.submit(envelope('sender@petrel.local', ['f@one.example']), message('tls-required'));
    const line = await waitFor('deferred', () => e.events('delivery', id)[0]);
    expect(line.status).toBe('deferred');
    expect(brokenPeer.messages.length).toBe(before);
  });
});
