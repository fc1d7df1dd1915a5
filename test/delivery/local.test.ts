/**
 * Local delivery end to end: a real queue, the delivery engine with the
 * local transport (Maildir), the real users file (policy/users.ts) and an
 * aliases file; Python's mailbox module reads what arrived. Covers users,
 * plus-addressing, aliases to local and remote targets (the remote ones
 * re-queued as one new message), postmaster, the bounce for an unknown
 * user and for an alias loop (delivered into the sender's own Maildir), a
 * forwarding loop seen in Delivered-To, a broken Maildir that defers and
 * then delivers once fixed (nothing lost), and the RCPT-time 550 5.1.1.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type Config } from '../../src/config';
import type { MxResolver } from '../../src/dns/resolver';
import { LocalDelivery } from '../../src/delivery/local';
import { maildirPath } from '../../src/delivery/maildir';
import { Delivery } from '../../src/delivery/scheduler';
import { createLogger } from '../../src/observe/log';
import { hashPassword, UserStore } from '../../src/policy/users';
import { Queue } from '../../src/queue/queue';
import { decide, type ClientFacts, type DecisionContext } from '../../src/server/decisions';
import { parseRcptArgs } from '../../src/smtp/params';
import { envelope, readAll, waitFor, type LogRecord } from './harness';

const DOMAIN = 'petrel.local';
const ALIASES = `# test aliases
team: alice, bob,
  friend@remote.example
loop-a: loop-b
loop-b: loop-a
`;

/** Remote mail is not this file's subject: every remote route fails temporarily, so forwarded copies wait in the queue. */
const noDns: MxResolver = {
  resolveRoute: async () => ({ kind: 'temporary', reason: 'test: no DNS' }),
  resolveAddresses: async () => ({ kind: 'temporary', reason: 'test: no DNS' }),
};

let dir: string;
let queue: Queue;
let delivery: Delivery;
let local: LocalDelivery;
let cfg: Config;
const logs: string[] = [];
const events = (event: string, id?: string) =>
  logs.map((l) => JSON.parse(l) as LogRecord).filter((r) => r.event === event && (id === undefined || r.id === id));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'petrel-local-'));
  const hash = await hashPassword('secret', { ln: 4, r: 1, p: 1 });
  const users = ['alice', 'bob', 'carol', 'dave'].map((u) => `${u}@${DOMAIN}:${hash}`).join('\n');
  writeFileSync(join(dir, 'users'), `${users}\n`);
  writeFileSync(join(dir, 'aliases'), ALIASES);
  cfg = {
    ...defaultConfig(dir),
    hostname: 'petrel.test',
    localDomains: [DOMAIN],
    usersFile: join(dir, 'users'),
    aliasesFile: join(dir, 'aliases'),
    maildirRoot: join(dir, 'mail'),
    retrySchedule: [1],
    maxQueueLifetime: 3600,
    queueFsync: false,
  };
  queue = await Queue.open(join(dir, 'queue'), { fsync: false });
  const log = createLogger({ level: 'debug', write: (l) => logs.push(l) });
  local = LocalDelivery.fromConfig(cfg, { users: new UserStore(cfg.usersFile), log });
  delivery = Delivery.start({ cfg, queue, log, resolver: noDns, local, graceMs: 2000 });
});

afterAll(async () => {
  await delivery.stop();
  await queue.close();
  rmSync(dir, { recursive: true, force: true });
});

interface PyMessage {
  bytes: Buffer;
  headers: Record<string, string>;
}

/** The messages in `user`'s Maildir as Python's mailbox module reads them. */
function maildir(user: string): PyMessage[] {
  const script = `
import mailbox, sys, json, base64
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
print(json.dumps([{'bytes': base64.b64encode(md.get_bytes(k)).decode(), 'headers': dict(md[k].items())} for k in md.keys()]))
`;
  const path = maildirPath(cfg.maildirRoot, { user, domain: DOMAIN });
  const r = spawnSync('python3', ['-c', script, path], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout) as { bytes: string; headers: Record<string, string> }[]).map((m) => ({ bytes: Buffer.from(m.bytes, 'base64'), headers: m.headers }));
}

const withSubject = (user: string, subject: string) => maildir(user).filter((m) => m.headers['Subject'] === subject);

function body(subject: string, extra = ''): Buffer {
  return Buffer.from(`${extra}From: <sender@remote.example>\r\nTo: <list@${DOMAIN}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@remote.example>\r\n\r\nHello.\r\n.dot line\r\n`);
}

const states = (id: string) => queue.get(id)?.recipients.map((r) => r.state);
const gone = (id: string) => () => queue.get(id) === undefined;

describe('local delivery to Maildirs', () => {
  it('a user, plus-addressing, postmaster and an alias with a remote target', async () => {
    const msg = body('mixed');
    const id = await queue.submit(envelope('sender@remote.example', [`alice+news@${DOMAIN}`, `Postmaster@${DOMAIN}`, `team@${DOMAIN}`]), msg);
    await waitFor('finished', gone(id));
    const lf = msg.toString().replace(/\r\n/g, '\n');
    const alice = withSubject('alice', 'mixed');
    // two copies for alice: as alice+news and through team (two recipients, two deliveries)
    expect(alice.map((m) => m.headers['Delivered-To']).sort()).toEqual([`alice+news@${DOMAIN}`, `team@${DOMAIN}`]);
    for (const m of alice) {
      expect(m.headers['Return-Path']).toBe('<sender@remote.example>');
      // unchanged: the two delivery fields, then the message byte for byte (LF line ends)
      expect(m.bytes.toString().split('\n').slice(2).join('\n')).toBe(lf);
    }
    expect(withSubject('bob', 'mixed')).toHaveLength(1);
    expect(withSubject('postmaster', 'mixed')).toHaveLength(1);
    const delivered = events('delivery', id);
    expect(delivered.map((e) => e.status)).toEqual(['sent', 'sent', 'sent']);
    expect(delivered[0]).toMatchObject({ relay: 'local' });
    // the remote target: one new message, same envelope sender (RFC 5321 §3.9.1), marked with the alias it came through
    const fwd = events('forwarded', id)[0];
    expect(fwd).toMatchObject({ to: `team@${DOMAIN}`, recipients: ['friend@remote.example'] });
    const copy = queue.get(String(fwd?.new_id));
    expect(copy?.sender).toBe('sender@remote.example');
    expect(copy?.recipients.map((r) => r.address)).toEqual(['friend@remote.example']);
    const copyBody = (await readAll(queue.readBody(String(fwd?.new_id)))).toString();
    expect(copyBody).toBe(`Delivered-To: team@${DOMAIN}\r\n${msg.toString()}`);
    await queue.operate(String(fwd?.new_id), 'delete');
  });

  it('an unknown user and an alias loop are bounced: one DSN, delivered to the (local) sender', async () => {
    const id = await queue.submit(envelope(`carol@${DOMAIN}`, [`nobody@${DOMAIN}`, `loop-a@${DOMAIN}`, `dave@${DOMAIN}`]), body('bounce-me'));
    await waitFor('finished', gone(id));
    expect(events('delivery', id).map((e) => [e.to, e.status])).toEqual([
      [`nobody@${DOMAIN}`, 'bounced'], [`loop-a@${DOMAIN}`, 'bounced'], [`dave@${DOMAIN}`, 'sent'],
    ]);
    const bounceId = String(events('bounce-queued', id)[0]?.bounce_id);
    await waitFor('bounce delivered', gone(bounceId));
    const dsn = await waitFor('DSN in carol\'s Maildir', () => maildir('carol').find((m) => m.bytes.includes(id)));
    expect(dsn.headers['Return-Path']).toBe('<>');
    const text = dsn.bytes.toString();
    expect(text).toMatch(/Final-Recipient: rfc822;\s*nobody@petrel\.local[\s\S]*Status: 5\.1\.1/);
    expect(text).toMatch(/Final-Recipient: rfc822;\s*loop-a@petrel\.local[\s\S]*Status: 5\.4\.6/);
    expect(text).not.toMatch(/Final-Recipient: rfc822;\s*dave/);
    expect(withSubject('dave', 'bounce-me')).toHaveLength(1);
  });

  it('a message that already carries Delivered-To for this recipient has looped: bounced with 5.4.6', async () => {
    const id = await queue.submit(envelope('', [`bob@${DOMAIN}`]), body('looped', `Delivered-To: BOB@${DOMAIN}\r\n`));
    await waitFor('finished', gone(id));
    expect(events('delivery', id)[0]).toMatchObject({ status: 'bounced' });
    expect(String(events('delivery', id)[0]?.reply)).toMatch(/^550 5\.4\.6/);
    expect(withSubject('bob', 'looped')).toHaveLength(0);
  });

  it('a Maildir that cannot be written defers (451 4.2.0); once fixed, the retry delivers: nothing is lost', async () => {
    const userDir = join(cfg.maildirRoot, DOMAIN, 'dave');
    rmSync(userDir, { recursive: true, force: true });
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(userDir, 'Maildir'), 'a file where the directory should be');
    const id = await queue.submit(envelope('sender@remote.example', [`dave@${DOMAIN}`]), body('blocked'));
    await waitFor('deferred', () => states(id)?.[0] === 'deferred');
    expect(queue.get(id)?.recipients[0]?.lastReply).toMatch(/^451 4\.2\.0/);
    expect(events('bounce-queued', id)).toHaveLength(0);
    rmSync(join(userDir, 'Maildir'));
    await waitFor('delivered on retry', gone(id), 15_000);
    expect(withSubject('dave', 'blocked')).toHaveLength(1);
    expect(events('delivery', id).map((e) => e.status)).toEqual(['deferred', 'sent']);
  });
});

describe('recipient verification at RCPT time', () => {
  const client: ClientFacts = {
    clientIp: '192.0.2.9', log: createLogger({ write: () => undefined }), trusted: false, authenticated: false,
    tlsInfo: () => undefined, traceBytes: 0, observer: null,
  };
  const rcpt = async (address: string) => {
    const parsed = parseRcptArgs(`TO:<${address}>`, { smtputf8: false });
    if (!parsed.ok) throw new Error(`bad test address ${address}`);
    const ctx: DecisionContext = {
      hostname: 'petrel.test', queue, log: client.log, localDomains: [DOMAIN], relayDomains: [], nullMxCheck: null,
      verifyRecipient: (a) => local.opts.directory.verify(a),
    };
    return decide({ kind: 'rcpt', args: parsed.value, sender: { path: { mailbox: null, route: [] } } as never }, ctx, client);
  };

  it('unknown local user → 550 5.1.1 in the dialogue; users, +tags, aliases, postmaster → accepted', async () => {
    expect(await rcpt(`nobody@${DOMAIN}`)).toMatchObject({ accept: false, reply: { code: 550, enhanced: '5.1.1' } });
    expect(await rcpt(`loop-b@${DOMAIN}`)).toMatchObject({ accept: false, reply: { code: 550, enhanced: '5.4.6' } });
    for (const ok of [`alice@${DOMAIN}`, `Bob+x@${DOMAIN}`, `team@${DOMAIN}`, `postmaster@${DOMAIN}`, 'postmaster']) {
      expect(await rcpt(ok)).toMatchObject({ accept: true });
    }
    // relay control still comes first: a remote recipient from an untrusted client is refused as before
    expect(await rcpt('x@remote.example')).toMatchObject({ accept: false, reply: { code: 554 } });
  });

  it('a user added to users_file and an alias added to aliases_file exist without a restart', async () => {
    expect(await rcpt(`erin@${DOMAIN}`)).toMatchObject({ accept: false });
    expect(await rcpt(`sales@${DOMAIN}`)).toMatchObject({ accept: false });
    const hash = await hashPassword('pw', { ln: 4, r: 1, p: 1 });
    writeFileSync(join(dir, 'users'), ['alice', 'bob', 'carol', 'dave', 'erin'].map((u) => `${u}@${DOMAIN}:${hash}`).join('\n') + '\n');
    writeFileSync(join(dir, 'aliases'), `${ALIASES}sales: erin\n`);
    for (const end = Date.now() + 5000; Date.now() < end && !(await rcpt(`sales@${DOMAIN}`)).accept; ) await new Promise((r) => setTimeout(r, 100));
    expect(await rcpt(`sales@${DOMAIN}`)).toMatchObject({ accept: true });
    expect(await rcpt(`erin@${DOMAIN}`)).toMatchObject({ accept: true });
  });
});
