/**
 * SMTP AUTH over real sockets against a real PetrelServer (RFC 4954, RFC 6409
 * submission with STARTTLS, RFC 8314 implicit TLS), and the users file on
 * disk: `petrel user add|remove|list` (userCommand), picked up by a running
 * server without restart; the brute-force limit across connections; the
 * per-address connection rate and the per-user message rate; and no password
 * in any log line.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { userCommand } from '../../src/cli/user-cmd';
import { hashPassword, removeUser, setUser } from '../../src/policy/users';
import { startServer, type TestServer } from '../helpers/server';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';

const CHEAP = { ln: 4, r: 8, p: 1 };
const plain = (user: string, password: string, authzid = ''): string => Buffer.from(`${authzid}\0${user}\0${password}`).toString('base64');

const servers: TestServer[] = [];
const clients: RawSmtp[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.stop();
});

async function serve(config: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const ts = await startServer({ trusted: false, smtps: true, ...config });
  servers.push(ts);
  return ts;
}

function portOf(ts: TestServer, kind: string): number {
  const l = ts.server.listening.find((x) => x.kind === kind);
  if (!l) throw new Error(`no ${kind} listener`);
  return l.address.port;
}

/** An implicit-TLS session, greeted and EHLO'd. */
async function smtps(ts: TestServer): Promise<RawSmtp> {
  const c = await RawSmtp.connectTls(ts.smtpsPort ?? 0);
  clients.push(c);
  expect((await c.reply())?.code).toBe(220);
  expect((await c.command('EHLO client.example')).lines).toContain('AUTH PLAIN LOGIN');
  return c;
}

async function addUser(ts: TestServer, name: string, password: string, senders: string[] = []): Promise<void> {
  await setUser(ts.config.usersFile, { name, hash: await hashPassword(password, CHEAP), senders });
}

async function send(c: RawSmtp, from: string, to: string): Promise<string | null> {
  c.send(`MAIL FROM:<${from}>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
  for (const code of [250, 250, 354]) expect((await c.reply())?.code).toBe(code);
  c.send(dataBlock('Subject: auth test\r\n\r\nhello\r\n'));
  return queuedId(await c.reply());
}

async function body(ts: TestServer, id: string): Promise<string> {
  const parts: Buffer[] = [];
  for await (const b of ts.server.queue.readBody(id)) parts.push(b);
  return Buffer.concat(parts).toString('utf8');
}

describe('submission (listen_submission): STARTTLS, then AUTH, then relay anywhere', () => {
  it('refuses MAIL and AUTH before TLS, then relays for the user with Received "with ESMTPSA"', async () => {
    const ts = await serve({ smtps: false, tls: true, config: (b) => ({ ...b, listenSubmission: [{ host: '127.0.0.1', port: 0 }] }) });
    await addUser(ts, 'alice@localhost', 'secret');
    const c = await RawSmtp.connect(portOf(ts, 'submission'));
    clients.push(c);
    expect((await c.reply())?.code).toBe(220);
    const ehlo = await c.command('EHLO client.example');
    expect(ehlo.lines).toContain('STARTTLS');
    expect(ehlo.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
    expect((await c.command('MAIL FROM:<alice@localhost>')).text).toMatch(/^530 5\.7\.0 /);
    expect((await c.command(`AUTH PLAIN ${plain('alice@localhost', 'secret')}`)).text).toMatch(/^538 5\.7\.11 /);
    expect((await c.command('STARTTLS')).code).toBe(220);
    await c.startTls();
    expect((await c.command('EHLO client.example')).lines).toContain('AUTH PLAIN LOGIN');
    expect((await c.command(`AUTH PLAIN ${plain('alice@localhost', 'secret')}`)).text).toMatch(/^235 2\.7\.0 /);
    const id = await send(c, 'alice@localhost', 'friend@remote.example');
    expect(id).not.toBeNull();
    expect(ts.server.queue.get(id ?? '')?.recipients.map((r) => r.address)).toEqual(['friend@remote.example']);
    expect(await body(ts, id ?? '')).toMatch(/^Received: from client\.example[\s\S]*with ESMTPSA id /);
    expect(ts.events('auth').map((e) => e.user)).toEqual(['alice@localhost']);
  });

  it('an unauthenticated client on the plain port still cannot relay', async () => {
    const ts = await serve();
    const c = await RawSmtp.connect(ts.port);
    clients.push(c);
    await c.reply();
    await c.command('EHLO client.example');
    expect((await c.command('MAIL FROM:<x@example.org>')).code).toBe(250);
    expect((await c.command('RCPT TO:<victim@remote.example>')).text).toMatch(/^554 5\.7\.1 /);
  });
});

describe('users file: changes reach a running server', () => {
  it('user add, then AUTH works; user remove, then it fails, with no restart', async () => {
    const ts = await serve();
    const before = await smtps(ts);
    expect((await before.command(`AUTH PLAIN ${plain('carol@localhost', 'pw1')}`)).code).toBe(535);
    const out: string[] = [];
    const err: string[] = [];
    const add = await userCommand(['add', 'Carol@LocalHost'], ts.config, Readable.from(['pw1\n']), (s) => out.push(s), (s) => err.push(s));
    expect([add, out, err]).toEqual([0, ['added carol@localhost'], []]);
    expect((await before.command(`AUTH PLAIN ${plain('carol@localhost', 'pw1')}`)).code).toBe(235);
    expect(await userCommand(['remove', 'carol@localhost'], ts.config, Readable.from([]), () => {}, () => {})).toBe(0);
    const after = await smtps(ts);
    expect((await after.command(`AUTH PLAIN ${plain('carol@localhost', 'pw1')}`)).code).toBe(535);
  });

  it('a broken users file is logged and the last good list stays in use', async () => {
    const ts = await serve();
    await addUser(ts, 'alice@localhost', 'secret');
    expect((await (await smtps(ts)).command(`AUTH PLAIN ${plain('alice@localhost', 'secret')}`)).code).toBe(235);
    writeFileSync(ts.config.usersFile, 'this is not a users file\n');
    expect((await (await smtps(ts)).command(`AUTH PLAIN ${plain('alice@localhost', 'secret')}`)).code).toBe(235);
    expect(ts.events('users-file-error')[0]?.error).toMatch(/users:1: expected "address:hash"/);
  });

  it('writes 0600 through a temp file, keeps comments and other users, leaves no temp file', async () => {
    const ts = await serve();
    const file = ts.config.usersFile;
    writeFileSync(file, '# our users\nbob@localhost:' + (await hashPassword('b', CHEAP)) + '\n');
    await addUser(ts, 'alice@localhost', 'a', ['sales@localhost']);
    await addUser(ts, 'alice@localhost', 'a2');
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n').map((l) => l.split(':')[0])).toEqual(['# our users', 'bob@localhost', 'alice@localhost', '']);
    expect(text).toMatch(/alice@localhost:\$scrypt\$[^:]+:sales@localhost\n/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(ts.dataDir).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(await removeUser(file, 'bob@localhost')).toBe(true);
    expect(await removeUser(file, 'bob@localhost')).toBe(false);
  });
});

describe('petrel user: the command', () => {
  it('list, usage errors and exit codes', async () => {
    const ts = await serve();
    const run = async (args: string[], input: string[] = []) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await userCommand(args, ts.config, Readable.from(input), (s) => out.push(s), (s) => err.push(s));
      return { code, out, err: err.join('\n') };
    };
    expect((await run(['add', 'dave@localhost', '--sender', 'help@localhost'], ['pw\r\n'])).code).toBe(0);
    expect(await run(['list'])).toEqual({ code: 0, out: ['dave@localhost (also sends as help@localhost)'], err: '' });
    expect((await run(['add', 'dave'], ['pw\n'])).code).toBe(64);
    expect((await run(['add', 'erin@localhost'], [])).err).toMatch(/no password given/);
    expect((await run(['add', 'erin@localhost'], ['\n'])).code).toBe(65);
    expect((await run(['add', 'erin@localhost'], [`${'x'.repeat(256)}\n`])).code).toBe(65);
    expect((await run(['add', 'erin@remote.example'], ['pw\n'])).err).toMatch(/not in local_domains/);
    expect((await run(['remove', 'nobody@localhost'])).code).toBe(67);
    expect((await run(['frob'])).code).toBe(64);
    writeFileSync(ts.config.usersFile, 'garbage\n');
    expect(await run(['list'])).toMatchObject({ code: 78, err: expect.stringMatching(/users:1: /) });
    expect((await run(['add', 'x@localhost'], ['pw\n'])).code).toBe(78);
  });
});

describe('abuse limits', () => {
  it('brute force: after auth_max_failures failures from one address, across connections, AUTH gets 421 and the connection closes', async () => {
    const ts = await serve({ config: (b) => ({ ...b, authMaxFailures: 3 }) });
    await addUser(ts, 'alice@localhost', 'right-Xyzzy');
    const first = await smtps(ts);
    for (const guess of ['guess-123456', 'guess-Tr0ub4dor']) expect((await first.command(`AUTH PLAIN ${plain('alice@localhost', guess)}`)).text).toMatch(/^535 5\.7\.8 /);
    const second = await smtps(ts);
    expect((await second.command('AUTH LOGIN')).code).toBe(334);
    expect((await second.command(Buffer.from('alice@localhost').toString('base64'))).code).toBe(334);
    expect((await second.command(Buffer.from('guess-letmein').toString('base64'))).code).toBe(535);
    // Even the right password is refused now: the address is blocked, not the guess.
    const third = await smtps(ts);
    expect((await third.command(`AUTH PLAIN ${plain('alice@localhost', 'right-Xyzzy')}`)).text).toMatch(/^421 4\.7\.0 /);
    await third.closed;
    const failed = ts.events('auth-failed');
    expect(failed.map((e) => [e.client, e.user, e.reason, e.failures])).toEqual([
      ['127.0.0.1', 'alice@localhost', 'wrong password', 1],
      ['127.0.0.1', 'alice@localhost', 'wrong password', 2],
      ['127.0.0.1', 'alice@localhost', 'wrong password', 3],
    ]);
    expect(ts.events('auth-blocked')).toHaveLength(1);
    // Passwords never reach the log, in clear or in base64.
    for (const secret of ['guess-123456', 'guess-Tr0ub4dor', 'guess-letmein', 'right-Xyzzy']) {
      for (const form of [secret, plain('alice@localhost', secret), Buffer.from(secret).toString('base64')]) {
        expect(ts.logs.filter((l) => l.includes(form))).toEqual([]);
      }
    }
  });

  it('max_connection_rate: an untrusted address over its rate gets 421 4.7.0 at connect; trusted ones are exempt', async () => {
    const ts = await serve({ smtps: false, config: (b) => ({ ...b, maxConnectionRate: { count: 2, per: 3600 } }) });
    for (let i = 0; i < 2; i++) {
      const c = await RawSmtp.connect(ts.port);
      clients.push(c);
      expect((await c.reply())?.code).toBe(220);
    }
    const over = await RawSmtp.connect(ts.port);
    clients.push(over);
    expect((await over.reply())?.text).toMatch(/^421 4\.7\.0 .*too many connections from your address/);
    expect(ts.events('refused').map((e) => e.reason)).toEqual(['connection rate']);
    const trusted = await serve({ smtps: false, trusted: true, config: (b) => ({ ...b, maxConnectionRate: { count: 1, per: 3600 } }) });
    for (let i = 0; i < 3; i++) {
      const c = await RawSmtp.connect(trusted.port);
      clients.push(c);
      expect((await c.reply())?.code).toBe(220);
    }
  });

  it('max_messages_per_user: over the rate, MAIL gets 450 4.7.1; another user is not affected', async () => {
    const ts = await serve({ config: (b) => ({ ...b, maxMessagesPerUser: { count: 1, per: 3600 } }) });
    await addUser(ts, 'alice@localhost', 'a');
    await addUser(ts, 'bob@localhost', 'b');
    const alice = await smtps(ts);
    expect((await alice.command(`AUTH PLAIN ${plain('alice@localhost', 'a')}`)).code).toBe(235);
    expect(await send(alice, 'alice@localhost', 'x@remote.example')).not.toBeNull();
    expect((await alice.command('MAIL FROM:<alice@localhost>')).text).toMatch(/^450 4\.7\.1 /);
    const bob = await smtps(ts);
    expect((await bob.command(`AUTH PLAIN ${plain('bob@localhost', 'b')}`)).code).toBe(235);
    expect((await bob.command('MAIL FROM:<bob@localhost>')).code).toBe(250);
  });
});
