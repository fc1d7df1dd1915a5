/**
 * STARTTLS over real sockets against the bundle (RFC 3207). The attack
 * tests are CVE-2011-0411 (Postfix, and many others since): a client, or a
 * man in the middle, appends commands after "STARTTLS\r\n" in the same
 * packet; a vulnerable server keeps them in its input buffer and runs them
 * as if they had arrived over TLS. RFC 3207 §4.2 also requires the server to
 * forget everything learned before TLS, so the client must EHLO again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCert } from '../helpers/certs';
import { cleanup, queueList, startPetrel, tempDir, type PetrelProcess } from '../helpers/spawn';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';

let server: PetrelProcess;
const open: RawSmtp[] = [];

beforeAll(async () => {
  const dir = tempDir('petrel-starttls-');
  const cert = makeTestCert(dir);
  server = await startPetrel({ dir, settings: { tls_cert: cert.cert, tls_key: cert.key, listen_smtps: '127.0.0.1:0' } });
});

afterAll(async () => {
  for (const c of open) c.destroy();
  await server?.stop();
  await cleanup();
});

async function greeted(port = server.port): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  open.push(c);
  expect((await c.reply())?.code).toBe(220);
  return c;
}

/** EHLO, then STARTTLS with `injected` in the same write, then the handshake. */
async function injectAndUpgrade(injected: string): Promise<RawSmtp> {
  const c = await greeted();
  const ehlo = await c.command('EHLO client.example.org');
  expect(ehlo.lines).toContain('STARTTLS');
  c.send(`STARTTLS\r\n${injected}`);
  const ready = await c.reply();
  expect(ready?.text).toMatch(/^220 2\.0\.0 /);
  const { leftover } = await c.startTls();
  // Nothing may follow the 220 in plaintext: the next bytes are the server's TLS handshake.
  expect(leftover).toBe('');
  return c;
}

describe('STARTTLS command injection (CVE-2011-0411)', () => {
  it('does not answer an RSET pipelined after STARTTLS; the first TLS reply is to our own command', async () => {
    const c = await injectAndUpgrade('RSET\r\n');
    // RFC 3207 §4.2: the session is reset, so MAIL before a new EHLO is out of sequence.
    const first = await c.command('MAIL FROM:<a@example.org>');
    expect(first.code).toBe(503);
    const noop = await c.command('NOOP');
    expect(noop.code).toBe(250);
    expect(c.pending()).toEqual({ replies: [], partial: '' });
    await c.quit();
  });

  it('does not run a MAIL FROM pipelined after STARTTLS: no transaction exists after the handshake', async () => {
    const c = await injectAndUpgrade('MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.test>\r\n');
    const ehlo = await c.command('EHLO client.example.org');
    expect(ehlo.code).toBe(250);
    // Had the injected MAIL run, this RCPT would be accepted into the attacker's transaction.
    expect((await c.command('RCPT TO:<user@example.test>')).code).toBe(503);
    expect((await c.command('DATA')).code).toBe(503);
    expect(c.pending().replies).toEqual([]);
    await c.quit();
    const senders = (await queueList(server.configFile)).map((m) => m.sender);
    expect(senders).not.toContain('evil@attacker.example');
  });

  it('after TLS: EHLO no longer offers STARTTLS, a second STARTTLS gets 503, and mail still flows', async () => {
    const c = await injectAndUpgrade('');
    const ehlo = await c.command('EHLO client.example.org');
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines).not.toContain('STARTTLS');
    expect(ehlo.lines).toContain('PIPELINING');
    expect((await c.command('STARTTLS')).code).toBe(503);
    c.send('MAIL FROM:<tls@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n');
    expect([(await c.reply())?.code, (await c.reply())?.code, (await c.reply())?.code]).toEqual([250, 250, 354]);
    c.send(dataBlock('Subject: after STARTTLS\r\n\r\nhello\r\n'));
    const id = queuedId(await c.reply());
    expect(id).not.toBeNull();
    expect((await c.command('QUIT')).code).toBe(221);
    expect((await queueList(server.configFile)).map((m) => m.id)).toContain(id);
  });

  it('STARTTLS with an argument is a syntax error and the session stays in plaintext', async () => {
    const c = await greeted();
    await c.command('EHLO client.example.org');
    expect((await c.command('STARTTLS now')).code).toBe(501);
    expect((await c.command('NOOP')).code).toBe(250);
    await c.quit();
  });
});

describe('implicit TLS listener (listen_smtps, RFC 8314)', () => {
  it('greets inside TLS, does not offer STARTTLS, and refuses it', async () => {
    const c = await RawSmtp.connectTls(server.portOf('smtps'));
    open.push(c);
    expect((await c.reply())?.code).toBe(220);
    const ehlo = await c.command('EHLO client.example.org');
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines).not.toContain('STARTTLS');
    expect((await c.command('STARTTLS')).code).toBe(503);
    await c.quit();
  });
});
