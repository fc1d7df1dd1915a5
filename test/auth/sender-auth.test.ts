/**
 * Sender authentication end to end, with the built bundle, a real DNS server
 * (a private dnsmasq) and an independent DKIM verifier (dkimpy):
 * - Petrel A signs what a trusted client relays through it (a key made with
 *   `petrel dkim keygen`, published in dnsmasq); dkimpy verifies the copy the
 *   next hop received;
 * - Petrel B takes mail from untrusted clients and records SPF, DKIM and
 *   DMARC in an Authentication-Results field: pass, fail (quarantined by
 *   default, 550 5.7.1 when dmarc_enforcement = reject) and temperror (a DNS
 *   server that never answers), and strips a forged field carrying its name.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsZone, type DnsZoneServer } from '../helpers/dnsmasq';
import { startPeer, type Peer } from '../helpers/sink';
import { RawSmtp, dataBlock, queuedId, type SmtpReply } from '../helpers/smtp-raw';
import { BUNDLE, cleanup, queueShowText, runCli, runProgram, startPetrel, tempDir, writeConfig, type PetrelProcess } from '../helpers/spawn';

const PY = '/usr/bin/python3';
const hasDkimpy = spawnSync(PY, ['-c', 'import dkim'], { stdio: 'ignore' }).status === 0;

const SIGNER = 'good.test';
const SELECTOR = 'sel';
/** Loopback is "the internet" for Petrel B: it trusts only a documentation network. */
const NOBODY = '192.0.2.0/24';

let dns: DnsZoneServer;
let peer: Peer;
let signer: PetrelProcess;
let checker: PetrelProcess;
let rejecter: PetrelProcess;
let keyRecord = '';

/** The TXT text out of `petrel dkim keygen`'s zone-file line: its quoted character-strings joined. */
function recordText(stdout: string): string {
  const line = stdout.slice(stdout.indexOf('IN TXT'));
  return [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
}

/** One transaction; the signer relays to the peer (remote.test), the checkers keep mail for example.test. */
async function send(p: PetrelProcess, from: string, message: string | Buffer): Promise<SmtpReply> {
  const to = p === signer ? 'someone@remote.test' : 'someone@example.test';
  const c = await RawSmtp.connect(p.port);
  try {
    await c.reply();
    await c.command('EHLO client.good.test');
    await c.command(`MAIL FROM:<${from}>`);
    const rcpt = await c.command(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return rcpt;
    await c.command('DATA');
    c.send(typeof message === 'string' ? dataBlock(message) : Buffer.concat([message, Buffer.from('.\r\n')]));
    return (await c.reply(30_000)) ?? { code: 0, lines: [], text: 'no reply' };
  } finally {
    await c.quit().catch(() => undefined);
  }
}

async function stored(p: PetrelProcess, r: SmtpReply): Promise<string> {
  const id = queuedId(r);
  if (!id) throw new Error(`not queued: ${r.text}`);
  return (await queueShowText(p.configFile, id)) ?? '';
}

/** The Authentication-Results field of a stored message, unfolded. */
function authResults(text: string): string {
  const m = /^Authentication-Results:(.*(?:\r?\n[ \t].*)*)/im.exec(text);
  return (m?.[1] ?? '').replace(/\r?\n[ \t]+/g, ' ').trim();
}

const message = (from: string, subject: string, body = 'Hello.\n') =>
  `From: Sender <${from}>\nTo: someone@example.test\nSubject: ${subject}\nDate: Sat, 28 Nov 2026 09:00:00 +0000\nMessage-ID: <${subject.replace(/\W/g, '')}@test>\n\n${body}`;

beforeAll(async () => {
  const dir = tempDir('petrel-dkim-');
  const keygen = await runCli(['dkim', 'keygen', SIGNER, SELECTOR, '--out', join(dir, 'dkim.key')], { cwd: dir });
  if (keygen.status !== 0) throw new Error(`keygen failed: ${keygen.stderr}`);
  keyRecord = recordText(keygen.stdout);
  dns = await startDnsZone({
    local: ['good.test', 'bad.test', 'example.test'],
    silent: ['slow.test'],
    extra: [
      '--txt-record=good.test,v=spf1 ip4:127.0.0.0/8 -all',
      '--txt-record=_dmarc.good.test,v=DMARC1; p=reject',
      `--txt-record=${SELECTOR}._domainkey.${SIGNER},${keyRecord}`,
      '--txt-record=bad.test,v=spf1 ip4:192.0.2.1 -all',
      '--txt-record=_dmarc.bad.test,v=DMARC1; p=reject',
    ],
  });
  const resolver = `${dns.server.host}:${dns.server.port}`;
  peer = await startPeer('127.0.0.1', 0);
  signer = await startPetrel({
    dir,
    settings: { queue_only: 'no', relay_host: `[127.0.0.1]:${peer.port}`, dkim_sign: `${SIGNER}:${SELECTOR}:dkim.key`, dns_servers: resolver },
  });
  const checking = { trusted_networks: NOBODY, auth_checks: 'yes', dns_servers: resolver, dns_timeout: '1s', hostname: 'mx.example.test' };
  checker = await startPetrel({ settings: checking });
  rejecter = await startPetrel({ settings: { ...checking, dmarc_enforcement: 'reject' } });
}, 60_000);

afterAll(async () => {
  await Promise.all([signer, checker, rejecter].map((p) => p?.stop()));
  await peer?.stop();
  await dns?.stop();
  await cleanup();
});

describe('outbound DKIM signing', () => {
  let relayed: Buffer;
  beforeAll(async () => {
    const r = await send(signer, `alice@${SIGNER}`, message(`alice@${SIGNER}`, 'signed by petrel', 'Grüße\n\n\n'));
    expect(r.code).toBe(250);
    const t0 = Date.now();
    while (peer.messages.length === 0 && Date.now() - t0 < 15_000) await new Promise((res) => setTimeout(res, 50));
    relayed = peer.messages[0]?.data ?? Buffer.alloc(0);
  }, 30_000);

  it('puts one DKIM-Signature first, d= and s= from dkim_sign, and logs it', () => {
    const text = relayed.toString('latin1');
    expect(text.startsWith('DKIM-Signature:')).toBe(true);
    expect(text.match(/^DKIM-Signature:/gim)).toHaveLength(1);
    expect(text).toMatch(/d=good\.test;/);
    expect(text).toMatch(/s=sel;/);
    expect(signer.events('sender-auth').some((l) => l.dkim === 'signed' && l.d === SIGNER)).toBe(true);
  });

  it.skipIf(!hasDkimpy)('verifies as pass in dkimpy (python3-dkim), and a changed byte fails there', () => {
    const tampered = Buffer.from(relayed.toString('latin1').replace('signed by petrel', 'signed by someone'), 'latin1');
    const input = JSON.stringify({ records: { [`${SELECTOR}._domainkey.${SIGNER}`]: keyRecord }, messages: [relayed.toString('base64'), tampered.toString('base64')] });
    const verdicts = JSON.parse(execFileSync(PY, [join(__dirname, 'py', 'dkim_verify.py')], { input }).toString()) as string[][];
    expect(verdicts[0]).toEqual(['pass']);
    expect(verdicts[1]?.[0]).not.toBe('pass');
  });

  it('does not sign for a domain it has no key for', async () => {
    const before = peer.messages.length;
    expect((await send(signer, 'carol@other.test', message('carol@other.test', 'unsigned'))).code).toBe(250);
    const t0 = Date.now();
    while (peer.messages.length === before && Date.now() - t0 < 15_000) await new Promise((res) => setTimeout(res, 50));
    expect(peer.messages[before]?.data.toString('latin1')).not.toMatch(/^DKIM-Signature:/im);
  });

  it('the relayed copy passes SPF, DKIM and DMARC at the checking server', async () => {
    const ar = authResults(await stored(checker, await send(checker, `alice@${SIGNER}`, peer.messages[0]?.data ?? Buffer.alloc(0))));
    expect(ar).toMatch(/^mx\.example\.test;/);
    expect(ar).toMatch(/spf=pass smtp\.mailfrom=alice@good\.test/);
    expect(ar).toMatch(/dkim=pass header\.d=good\.test header\.s=sel header\.b=\S{8}/);
    expect(ar).toMatch(/dmarc=pass .*header\.from=good\.test/);
  });

  it('a body changed after signing fails DKIM, and DMARC still passes on aligned SPF', async () => {
    const changed = Buffer.from((peer.messages[0]?.data ?? Buffer.alloc(0)).toString('latin1').replace('Gr', 'gr'), 'latin1');
    const ar = authResults(await stored(checker, await send(checker, `alice@${SIGNER}`, changed)));
    expect(ar).toMatch(/dkim=fail /);
    expect(ar).toMatch(/spf=pass /);
    expect(ar).toMatch(/dmarc=pass /);
  });
});

describe('petrel sendmail is signed too', () => {
  const local = (subject: string) => `From: alice@${SIGNER}\nTo: someone@remote.test\nSubject: ${subject}\n\nfrom cron\n`;

  it('through the running server', async () => {
    const before = peer.messages.length;
    const r = await runProgram(process.execPath, [BUNDLE, 'sendmail', '-t', '--config', signer.configFile], { input: local('via control socket') });
    expect(r.status).toBe(0);
    const t0 = Date.now();
    while (peer.messages.length === before && Date.now() - t0 < 15_000) await new Promise((res) => setTimeout(res, 50));
    expect(peer.messages[before]?.data.toString('latin1')).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=good\.test;/);
  });

  it('with no server running, queued directly, signed the same way', async () => {
    const dir = tempDir('petrel-sendmail-dkim-');
    const conf = writeConfig(dir, { dkim_sign: `${SIGNER}:${SELECTOR}:${join(signer.dir, 'dkim.key')}` });
    const r = await runProgram(process.execPath, [BUNDLE, 'sendmail', '-t', '-v', '--config', conf], { input: local('queued directly'), cwd: dir });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/queued directly/);
    const id = r.stdout.trim().split(/\s/)[0] ?? '';
    expect(await queueShowText(conf, id)).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256;/);
  });
});

describe('inbound checks', () => {
  it('a forged sender: SPF fail, DMARC fail, quarantined (a tag) by default', async () => {
    const text = await stored(checker, await send(checker, 'bob@bad.test', message('bob@bad.test', 'forged')));
    const ar = authResults(text);
    expect(ar).toMatch(/spf=fail .*smtp\.mailfrom=bob@bad\.test/);
    expect(ar).toMatch(/dkim=none/);
    expect(ar).toMatch(/dmarc=fail .*header\.from=bad\.test/);
    expect(text).toMatch(/^X-Spam-Flag: YES\r?$/m);
    expect(checker.events('sender-auth').some((l) => l.action === 'quarantine')).toBe(true);
  });

  it('a domain that publishes nothing: spf=none, dkim=none, dmarc=none, accepted untagged', async () => {
    const text = await stored(checker, await send(checker, 'carol@example.test', message('carol@example.test', 'no records')));
    expect(authResults(text)).toMatch(/spf=none .*dkim=none; dmarc=none header\.from=example\.test$/);
    expect(text).not.toMatch(/X-Spam-Flag/);
  });

  it('the same message is refused with 550 5.7.1 under dmarc_enforcement = reject', async () => {
    const r = await send(rejecter, 'bob@bad.test', message('bob@bad.test', 'forged again'));
    expect(r.code).toBe(550);
    expect(r.text).toMatch(/5\.7\.1 .*DMARC/);
  });

  it('a DNS server that never answers gives temperror, and the message is accepted', async () => {
    const r = await send(rejecter, 'eve@slow.test', message('eve@slow.test', 'slow dns'));
    expect(r.code).toBe(250);
    const ar = authResults(await stored(rejecter, r));
    expect(ar).toMatch(/spf=temperror/);
    expect(ar).toMatch(/dmarc=temperror/);
  }, 30_000);

  it('removes a forged Authentication-Results field with its own name, keeps another server\'s', async () => {
    const forged =
      'Authentication-Results: mx.example.test; dkim=pass header.d=bad.test; dmarc=pass\n' +
      'Authentication-Results: elsewhere.example; spf=pass\n' +
      message('bob@bad.test', 'forged results');
    const text = await stored(checker, await send(checker, 'bob@bad.test', forged));
    const ours = text.match(/^Authentication-Results: mx\.example\.test;/gim) ?? [];
    expect(ours).toHaveLength(1);
    expect(authResults(text)).toMatch(/dmarc=fail/);
    expect(text).toMatch(/^Authentication-Results: elsewhere\.example; spf=pass\r?$/m);
  });

  it('a trusted client gets no Authentication-Results at all', async () => {
    const before = peer.messages.length;
    expect((await send(signer, `alice@${SIGNER}`, message(`alice@${SIGNER}`, 'trusted'))).code).toBe(250);
    const t0 = Date.now();
    while (peer.messages.length === before && Date.now() - t0 < 15_000) await new Promise((res) => setTimeout(res, 50));
    expect(peer.messages[before]?.data.toString('latin1')).not.toMatch(/^Authentication-Results:/im);
  });
});
