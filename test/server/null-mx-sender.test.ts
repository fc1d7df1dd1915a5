/**
 * RFC 7505 §4.2: with reject_null_mx_sender = yes, MAIL FROM a domain that
 * publishes a null MX ("0 .") is refused with 550 5.7.27 (such a sender can
 * never receive a bounce). DNS trouble is no reason to refuse mail. Real DNS:
 * dnsmasq on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESOLVER_TEST_ZONE, startDnsZone, type DnsZoneServer } from '../helpers/dnsmasq';
import { SmtpTestClient, startServer, type TestServer } from '../helpers/server';

let dns: DnsZoneServer;
const servers: TestServer[] = [];

beforeAll(async () => {
  dns = await startDnsZone(RESOLVER_TEST_ZONE);
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  await dns?.stop();
});

async function mailFrom(ts: TestServer, sender: string): Promise<string> {
  const c = await SmtpTestClient.connect(ts.port);
  await c.nextReply();
  await c.command('EHLO client.test');
  const r = await c.command(`MAIL FROM:<${sender}>`);
  c.close();
  return `${r?.code} ${r?.lines.at(-1)}`;
}

async function server(reject: boolean): Promise<TestServer> {
  const ts = await startServer({ config: { dnsServers: [dns.server], rejectNullMxSender: reject } });
  servers.push(ts);
  return ts;
}

describe('reject_null_mx_sender', () => {
  it('on: a null-MX sender domain gets 550 5.7.27; ordinary, unknown, null and literal senders pass', async () => {
    const ts = await server(true);
    expect(await mailFrom(ts, 'someone@nullmx.test')).toMatch(/^550 5\.7\.27 /);
    expect(await mailFrom(ts, 'someone@mixednull.test')).toMatch(/^550 5\.7\.27 /);
    expect(await mailFrom(ts, 'someone@multi.test')).toMatch(/^250 /);
    expect(await mailFrom(ts, '')).toMatch(/^250 /);
    expect(await mailFrom(ts, 'someone@[127.0.0.1]')).toMatch(/^250 /);
    // SERVFAIL: a DNS failure is not a null MX.
    expect(await mailFrom(ts, 'someone@servfail.test')).toMatch(/^250 /);
  });

  it('off (the default): the same null-MX sender is accepted', async () => {
    const ts = await server(false);
    expect(await mailFrom(ts, 'someone@nullmx.test')).toMatch(/^250 /);
  });
});
