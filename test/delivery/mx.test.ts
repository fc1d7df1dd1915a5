/**
 * The delivery engine end to end with REAL DNS (a private dnsmasq) and real
 * receiving peers on 127.0.0.2 … at one shared port (= outbound_port):
 * Postfix's smtp-sink where it can play the part, the Node peer of
 * test/helpers/sink.ts where it cannot. Covers RFC 5321 §5.1 preference order
 * and fallback (host down, 421 greeting, silent host), implicit MX, RFC 7505
 * null MX and NXDOMAIN (bounce at once), SERVFAIL (deferred), 4xx then
 * success on retry, a 5xx producing exactly one DSN (parsed by Python's email
 * package), and connection reuse.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolver } from '../../src/dns/resolver';
import { startDnsZone, type DnsZoneServer } from '../helpers/dnsmasq';
import { startPeer, startSmtpSink, type Peer, type SmtpSink } from '../helpers/sink';
import { envelope, freePort, message, readAll, startEngine, waitFor, type Engine } from './harness';

let zone: DnsZoneServer;
let port: number;
let engine: Engine;
let sinkPref: SmtpSink; // 127.0.0.2: mx1.pref.test, implicit.test
let sinkBackup: SmtpSink; // 127.0.0.3: the second MX of several domains
let sink421: SmtpSink; // 127.0.0.5: answers 421 to the connection
let reject: Peer; // 127.0.0.6: 550 5.1.1 for nobody@
let flaky: Peer; // 127.0.0.7: 451 to the first RCPT, then 250
let reuse: Peer; // 127.0.0.9
let silent: Peer; // 127.0.0.10: accepts and never greets
let flakyCalls = 0;

beforeAll(async () => {
  zone = await startDnsZone({
    local: ['test'],
    mx: [
      { domain: 'pref.test', host: 'mx1.pref.test', preference: 10 },
      { domain: 'pref.test', host: 'mx2.pref.test', preference: 20 },
      { domain: 'down.test', host: 'mx1.down.test', preference: 10 },
      { domain: 'down.test', host: 'mx2.pref.test', preference: 20 },
      { domain: 'busy.test', host: 'mx1.busy.test', preference: 10 },
      { domain: 'busy.test', host: 'mx2.pref.test', preference: 20 },
      { domain: 'slow.test', host: 'mx1.slow.test', preference: 10 },
      { domain: 'slow.test', host: 'mx2.pref.test', preference: 20 },
      { domain: 'nullmx.test', host: '.', preference: 0 },
      { domain: 'reject.test', host: 'mx.reject.test', preference: 10 },
      { domain: 'retry.test', host: 'mx.retry.test', preference: 10 },
      { domain: 'reuse.test', host: 'mx.reuse.test', preference: 10 },
    ],
    hosts: [
      { name: 'mx1.pref.test', ipv4: '127.0.0.2' },
      { name: 'mx2.pref.test', ipv4: '127.0.0.3' },
      { name: 'mx1.down.test', ipv4: '127.0.0.4' },
      { name: 'mx1.busy.test', ipv4: '127.0.0.5' },
      { name: 'mx.reject.test', ipv4: '127.0.0.6' },
      { name: 'mx.retry.test', ipv4: '127.0.0.7' },
      { name: 'mx.reuse.test', ipv4: '127.0.0.9' },
      { name: 'mx1.slow.test', ipv4: '127.0.0.10' },
      { name: 'implicit.test', ipv4: '127.0.0.2' },
    ],
    servfail: ['servfail.test'],
  });
  port = await freePort('127.0.0.2');
  sinkPref = await startSmtpSink('127.0.0.2', port);
  sinkBackup = await startSmtpSink('127.0.0.3', port);
  sink421 = await startSmtpSink('127.0.0.5', port, ['-Q', 'CONNECT']);
  reject = await startPeer('127.0.0.6', port, { rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 <nobody@reject.test>: Recipient address rejected: User unknown' : '250 2.1.5 Ok') });
  flaky = await startPeer('127.0.0.7', port, { rcpt: () => (++flakyCalls === 1 ? '451 4.7.1 Greylisted, come back later' : '250 2.1.5 Ok') });
  reuse = await startPeer('127.0.0.9', port);
  silent = await startPeer('127.0.0.10', port, { greeting: null });
  const resolver = createResolver({ servers: [zone.server], timeoutMs: 500, tries: 1, cache: null });
  engine = await startEngine({ resolver, config: { outboundPort: port, destinationConcurrency: 1 }, maxReplyTimeoutMs: 500 });
});

afterAll(async () => {
  await engine?.stop();
  await Promise.all([sinkPref, sinkBackup, sink421].map((s) => s?.stop()));
  await Promise.all([reject, flaky, reuse, silent].map((p) => p?.stop()));
  await zone?.stop();
});

const gone = (id: string) => () => engine.queue.get(id) === undefined;
const sent = (id: string) => engine.events('delivery', id).filter((e) => e.status === 'sent');

async function send(to: string[], subject: string, from = 'sender@petrel.local'): Promise<string> {
  return engine.queue.submit(envelope(from, to), message(subject));
}

describe('RFC 5321 §5.1: MX hosts in preference order', () => {
  it('delivers to the preferred MX host (smtp-sink as the real receiver) and logs one status=sent line', async () => {
    const id = await send(['alice@pref.test'], 'preferred');
    await waitFor('finished', gone(id));
    const got = sinkPref.messages().filter((m) => m.text.includes('Subject: preferred'));
    expect(got).toHaveLength(1);
    expect(got[0]?.rcptArgs).toEqual(['<alice@pref.test>']);
    expect(got[0]?.mailArgs).toBe('<sender@petrel.local>');
    expect(got[0]?.text).toContain('Subject: preferred\n');
    expect(got[0]?.text).toContain('\n\nHello.\n');
    expect(sinkBackup.messages().some((m) => m.text.includes('Subject: preferred'))).toBe(false);
    const [line] = sent(id);
    expect(line).toMatchObject({ to: 'alice@pref.test', relay: 'mx1.pref.test', ip: '127.0.0.2', port, status: 'sent', attempts: 1 });
    expect(String(line?.reply)).toMatch(/^250 /);
    expect(typeof line?.delay).toBe('number');
    expect(engine.events('removed', id)).toHaveLength(1);
  });

  it('falls back to the next MX when the first is down (connection refused)', async () => {
    const id = await send(['bob@down.test'], 'down-first');
    await waitFor('finished', gone(id));
    expect(sent(id)[0]).toMatchObject({ relay: 'mx2.pref.test', ip: '127.0.0.3' });
    expect(engine.events('connect-failed').some((e) => e.ip === '127.0.0.4')).toBe(true);
    expect(sinkBackup.messages().filter((m) => m.text.includes('Subject: down-first'))).toHaveLength(1);
  });

  it('falls back to the next MX when the first answers 421 (smtp-sink -Q CONNECT)', async () => {
    const id = await send(['carol@busy.test'], 'busy-first');
    await waitFor('finished', gone(id));
    expect(sent(id)[0]).toMatchObject({ relay: 'mx2.pref.test' });
    expect(engine.events('connect-failed').some((e) => e.ip === '127.0.0.5' && e.reply === 421)).toBe(true);
  });

  it('falls back to the next MX when the first never greets (timeout)', async () => {
    const id = await send(['dave@slow.test'], 'slow-first');
    await waitFor('finished', gone(id));
    expect(sent(id)[0]).toMatchObject({ relay: 'mx2.pref.test' });
    expect(silent.connections()).toBeGreaterThanOrEqual(1);
  });

  it('no MX record: the domain’s own address (implicit MX)', async () => {
    const id = await send(['erin@implicit.test'], 'implicit');
    await waitFor('finished', gone(id));
    expect(sent(id)[0]).toMatchObject({ relay: 'implicit.test', ip: '127.0.0.2' });
  });
});

describe('failures decided by DNS', () => {
  it('null MX (RFC 7505) bounces at once with 5.1.10; NXDOMAIN with 5.1.2: one DSN for both', async () => {
    const id = await send(['x@nullmx.test', 'y@nosuchdomain.test'], 'dns-fail');
    await waitFor('finished', gone(id));
    const lines = engine.events('delivery', id);
    expect(lines.map((l) => [l.to, l.status, String(l.reply).slice(0, 10)]).sort()).toEqual([
      ['x@nullmx.test', 'bounced', '556 5.1.10'],
      ['y@nosuchdomain.test', 'bounced', '550 5.1.2 '],
    ]);
    const [b] = engine.events('bounce-queued', id);
    expect(b?.bounce_id).toEqual(expect.any(String));
    const dsn = await readAll(engine.queue.readBody(String(b?.bounce_id)));
    expect(dsn.toString()).toMatch(/Status: 5\.1\.10/);
    expect(dsn.toString()).toMatch(/Status: 5\.1\.2/);
  });

  it('SERVFAIL is temporary: deferred with 4.4.3, not bounced', async () => {
    const id = await send(['z@servfail.test'], 'servfail');
    const line = await waitFor('deferred', () => engine.events('delivery', id)[0]);
    expect(line).toMatchObject({ status: 'deferred', relay: 'none' });
    expect(String(line.reply)).toMatch(/^451 4\.4\.3 /);
    expect(engine.queue.get(id)?.recipients[0]).toMatchObject({ state: 'deferred', attempts: 1 });
    await engine.queue.operate(id, 'delete');
  });
});

describe('retries and bounces', () => {
  it('a 4xx is retried on the schedule and delivered the second time', async () => {
    const id = await send(['fred@retry.test'], 'greylisted');
    await waitFor('finished', gone(id), 15_000);
    const lines = engine.events('delivery', id);
    expect(lines.map((l) => [l.status, l.attempts])).toEqual([['deferred', 1], ['sent', 2]]);
    expect(String(lines[0]?.reply)).toBe('451 4.7.1 Greylisted, come back later');
    expect(flaky.messages).toHaveLength(1);
  });

  it('a 5xx for one recipient: the other is delivered, exactly one well-formed DSN goes to the sender', async () => {
    const id = await send(['ok@reject.test', 'nobody@reject.test'], 'rejected');
    await waitFor('finished', gone(id));
    expect(reject.messages.map((m) => m.to)).toEqual([['ok@reject.test']]);
    const bounces = engine.events('bounce-queued', id);
    expect(bounces).toHaveLength(1);
    const bounceId = String(bounces[0]?.bounce_id);
    const b = engine.queue.get(bounceId);
    expect(b).toMatchObject({ sender: '', recipients: [{ address: 'sender@petrel.local', state: 'queued' }] });
    const parsed = parseWithPython(await readAll(engine.queue.readBody(bounceId)));
    expect(parsed.content_type).toBe('multipart/report');
    expect(parsed.report_type).toBe('delivery-status');
    expect(parsed.parts).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers']);
    expect(parsed.recipients).toEqual([
      {
        'Final-Recipient': 'rfc822; nobody@reject.test',
        Action: 'failed',
        Status: '5.1.1',
        'Remote-MTA': 'dns; mx.reject.test',
        'Diagnostic-Code': 'smtp; 550 5.1.1 <nobody@reject.test>: Recipient address rejected: User unknown',
        'Last-Attempt-Date': expect.stringMatching(/^\w{3}, \d+ \w{3} \d{4} /),
      },
    ]);
    expect(parsed.original).toContain('Subject: rejected');
  });

  it('a bounce (null sender) that fails is never bounced', async () => {
    const id = await send(['nobody@reject.test'], 'bounce-of-bounce', '');
    await waitFor('finished', gone(id));
    expect(engine.events('delivery', id)[0]).toMatchObject({ status: 'bounced' });
    expect(engine.events('bounce-queued', id)).toHaveLength(0);
    expect(engine.events('removed', id)).toHaveLength(1);
  });

  it('local recipients are left queued for local delivery and not spun on', async () => {
    const before = engine.events('delivery').length;
    const id = await send(['me@petrel.local', 'gina@pref.test'], 'mixed-local');
    await waitFor('remote recipient delivered', () => sent(id).length === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(engine.queue.get(id)?.recipients.map((r) => r.state)).toEqual(['queued', 'delivered']);
    expect(engine.events('delivery').length - before).toBe(1);
    await engine.queue.operate(id, 'delete');
  });
});

describe('connection reuse', () => {
  it('N messages to one destination go over one connection (destination_concurrency = 1)', async () => {
    const before = reuse.connections();
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => send([`r${i}@reuse.test`], `reuse-${i}`)));
    for (const id of ids) await waitFor('finished', gone(id));
    expect(reuse.messages).toHaveLength(6);
    expect(reuse.connections() - before).toBe(1);
    // RFC 5321 §4.1.1.5: no RSET between successful transactions, MAIL follows the last reply
    expect(reuse.commands.filter((c) => c.startsWith('MAIL'))).toHaveLength(6);
    expect(reuse.commands.filter((c) => c.startsWith('EHLO'))).toHaveLength(1);
  });
});

interface ParsedDsn {
  content_type: string;
  report_type: string;
  parts: string[];
  recipients: Record<string, string>[];
  original: string;
}

describe('relay_host without brackets: the smart host is found through its MX records', () => {
  it('relay_host = pref.test:PORT delivers everything to pref.test\u2019s preferred MX, whatever the recipient domain', async () => {
    const resolver = createResolver({ servers: [zone.server], timeoutMs: 500, tries: 1, cache: null });
    const viaMx = await startEngine({ resolver, config: { outboundPort: port, relayHost: { host: 'pref.test', port, mx: true } }, maxReplyTimeoutMs: 500 });
    try {
      const id = await viaMx.queue.submit(envelope('sender@petrel.local', ['zoe@elsewhere.example']), message('smart-host-by-mx'));
      await waitFor('finished', () => viaMx.queue.get(id) === undefined);
      expect(viaMx.events('delivery', id).find((e) => e.status === 'sent')).toMatchObject({ relay: 'mx1.pref.test', ip: '127.0.0.2' });
      expect(sinkPref.messages().filter((m) => m.text.includes('Subject: smart-host-by-mx'))).toHaveLength(1);
    } finally {
      await viaMx.stop();
    }
  });
});

/** Python's email package, a MIME parser nobody here wrote, reads the DSN. */
function parseWithPython(dsn: Buffer): ParsedDsn {
  const script = `
import sys, json, email
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
parts = m.get_payload()
status = parts[1].get_payload()
rcpts = [dict((k, ' '.join(v.split())) for k, v in block.items()) for block in status[1:]]
print(json.dumps({'content_type': m.get_content_type(), 'report_type': m.get_param('report-type'),
  'parts': [p.get_content_type() for p in parts], 'recipients': rcpts, 'original': parts[2].get_payload()}))
`;
  return JSON.parse(execFileSync('python3', ['-c', script], { input: dsn }).toString()) as ParsedDsn;
}
