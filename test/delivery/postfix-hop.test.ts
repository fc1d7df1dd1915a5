/**
 * Petrel relays to a real, private Postfix instance as its next hop (issue 3,
 * "a private Postfix instance as the next hop in one test"): RFC 5321 §3.6
 * relaying through a smart host (`relay_host = [127.0.0.3]:PORT`, brackets:
 * no MX lookup, §5.1), the retry after a refused connection (§4.5.4.1), and
 * §4.4 trace fields: each hop PREPENDS its Received field and never alters
 * the ones already there, so the message in Postfix's Maildir must carry
 * Postfix's Received on top of Petrel's, byte for byte as Petrel stored it.
 *
 * The message first meets a closed port (Postfix not yet started) and is
 * deferred, which lets the test read what Petrel stored (`queue show`) before
 * it leaves; then Postfix starts on that port and `queue flush` sends it.
 */
import { afterAll, expect, it } from 'vitest';
import { startPostfix, type PostfixInstance } from '../helpers/postfix';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';
import { cleanup, queueList, queueShowText, runCli, startPetrel, type PetrelProcess } from '../helpers/spawn';
import { freePort, waitFor } from './harness';

let petrel: PetrelProcess | null = null;
let postfix: PostfixInstance | null = null;

afterAll(async () => {
  await petrel?.stop();
  await postfix?.stop();
  await cleanup();
});

/** Polls an async check (CLI calls) until it yields a value; fails with `what` after `ms`. */
async function poll<T>(what: string, check: () => Promise<T | undefined>, ms: number): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function submit(port: number, from: string, to: string, text: string): Promise<string> {
  const c = await RawSmtp.connect(port);
  try {
    expect((await c.reply())?.code).toBe(220);
    expect((await c.command('EHLO client.example.org')).code).toBe(250);
    expect((await c.command(`MAIL FROM:<${from}>`)).code).toBe(250);
    expect((await c.command(`RCPT TO:<${to}>`)).code).toBe(250);
    expect((await c.command('DATA')).code).toBe(354);
    c.send(dataBlock(text));
    const id = queuedId(await c.reply());
    if (id === null) throw new Error('the message was not acknowledged');
    await c.command('QUIT');
    return id;
  } finally {
    c.destroy();
  }
}

/** The header section of a message (LF line ends), as [name, raw field with its folded lines]. */
function headerFields(text: string): { name: string; raw: string }[] {
  const head = text.replace(/\r\n/g, '\n').split('\n\n')[0] ?? '';
  const fields: { name: string; raw: string }[] = [];
  for (const line of head.split('\n')) {
    const last = fields.at(-1);
    if (/^[ \t]/.test(line) && last) last.raw += `\n${line}`;
    else fields.push({ name: line.slice(0, line.indexOf(':')).toLowerCase(), raw: line });
  }
  return fields;
}

const bodyOf = (text: string): string => text.replace(/\r\n/g, '\n').split('\n\n').slice(1).join('\n\n');

it('relays through a private Postfix: delivered to its Maildir with Petrel’s Received intact, logged by both', async () => {
  const port = await freePort('127.0.0.3');
  // A long retry delay: only the operator's flush below sends the message again (no race with a timed retry).
  petrel = await startPetrel({ settings: { relay_host: `[127.0.0.3]:${port}`, retry_schedule: '1h', connect_timeout: '2s', queue_only: 'no' } });
  const text = [
    'From: Sender <sender@example.org>',
    'To: Alice <alice@postfix.test>',
    'Subject: through Postfix',
    'Message-ID: <postfix-hop-1@example.org>',
    'Date: Thu, 27 Nov 2025 10:00:00 +0000',
    '',
    'First line.',
    '.a line that starts with a dot',
    'Last line.',
    '',
  ].join('\r\n');
  const id = await submit(petrel.port, 'sender@example.org', 'alice@postfix.test', text);

  // Postfix is not running yet: the connection is refused and the recipient deferred, not bounced.
  const deferred = await petrel.waitForLog((l) => l.event === 'delivery' && l.id === id);
  expect(deferred).toMatchObject({ status: 'deferred', ip: '127.0.0.3', port });
  const stored = await queueShowText(petrel.configFile, id);
  expect(stored).not.toBeNull();
  const petrelReceived = headerFields(stored ?? '').filter((f) => f.name === 'received');
  expect(petrelReceived).toHaveLength(1);
  expect(petrelReceived[0]?.raw.replace(/\s+/g, ' ')).toMatch(new RegExp(`^Received: from client\\.example\\.org \\(\\[127\\.0\\.0\\.1\\]\\) by mx\\.petrel\\.test \\(Petrel\\) with ESMTP id ${id} for <alice@postfix\\.test>; `));

  postfix = await startPostfix({ port, users: ['alice'] });
  expect((await runCli(['queue', 'flush', id, '--config', petrel.configFile])).status).toBe(0);
  const box = postfix;
  const [delivered] = await waitFor('the message in Postfix’s Maildir', () => (box.mailbox('alice').length > 0 ? box.mailbox('alice') : undefined), 20_000);
  const sent = await petrel.waitForLog((l) => l.event === 'delivery' && l.id === id && l.status === 'sent');
  await poll('the queue to empty', async () => ((await queueList(petrel?.configFile ?? '')).length === 0 ? true : undefined), 10_000);

  // Trace fields (RFC 5321 §4.4): Postfix's Received on top, then Petrel's exactly as stored, then the original header.
  const fields = headerFields(delivered ?? '');
  const received = fields.filter((f) => f.name === 'received');
  expect(received).toHaveLength(2);
  expect(received[0]?.raw).toMatch(/^Received: from mx\.petrel\.test \(localhost \[127\.0\.0\.1\]\)\n\s+by postfix\.test \(Postfix\) with ESMTP id (\w+)\n\s+for <alice@postfix\.test>;/);
  expect(received[1]?.raw).toBe(petrelReceived[0]?.raw);
  expect(fields.map((f) => f.name)).toEqual([
    'return-path', 'x-original-to', 'delivered-to', 'received', 'received', 'from', 'to', 'subject', 'message-id', 'date',
  ]);
  expect(fields.find((f) => f.name === 'return-path')?.raw).toBe('Return-Path: <sender@example.org>');
  expect(bodyOf(delivered ?? '')).toBe(bodyOf(stored ?? ''));
  expect(bodyOf(delivered ?? '')).toBe('First line.\n.a line that starts with a dot\nLast line.\n');

  // Both logs tell the same story: Petrel's 250 names Postfix's queue id, which Postfix logs as delivered.
  const postfixId = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(String(sent.reply))?.[1];
  expect(postfixId, String(sent.reply)).toBeDefined();
  expect(received[0]?.raw).toContain(`with ESMTP id ${postfixId}`);
  const maillog = await waitFor('status=sent in the maillog', () => (/status=sent/.test(box.log()) ? box.log() : undefined), 5000);
  expect(maillog).toMatch(new RegExp(`postfix/smtpd\\[\\d+\\]: ${postfixId}: client=localhost\\[127\\.0\\.0\\.1\\]`));
  expect(maillog).toMatch(new RegExp(`postfix/qmgr\\[\\d+\\]: ${postfixId}: from=<sender@example\\.org>, size=\\d+, nrcpt=1`));
  expect(maillog).toMatch(new RegExp(`postfix/virtual\\[\\d+\\]: ${postfixId}: to=<alice@postfix\\.test>, relay=virtual, .*dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)`));
  // Every attempt before Postfix was up was deferred (never bounced); the last one counts them all.
  const attempts = petrel.events('delivery').filter((l) => l.id === id);
  expect(attempts.slice(0, -1).every((l) => l.status === 'deferred')).toBe(true);
  expect(attempts.at(-1)).toMatchObject({ to: 'alice@postfix.test', ip: '127.0.0.3', port, status: 'sent', attempts: attempts.length });
}, 60_000);
