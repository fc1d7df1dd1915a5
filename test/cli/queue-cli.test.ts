/**
 * `petrel queue …` as a process, from the bundle (DESIGN.md command line):
 * exit statuses (sysexits), stdout vs stderr, the `--json` shape, `show`
 * printing the stored text, and reading the queue beside a running server
 * (the CLI opens the log read-only). test/queue/cli.test.ts covers the
 * formatting in-process; this file covers what a shell user sees.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, cleanup, queueList, runCli, startPetrel, type PetrelProcess } from '../helpers/spawn';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';

let server: PetrelProcess;
const ids: string[] = [];

async function send(from: string, to: string[], text: string): Promise<string> {
  const c = await RawSmtp.connect(server.port);
  await c.reply();
  await c.command('EHLO cli.example.org');
  c.send(`MAIL FROM:<${from}>\r\n${to.map((t) => `RCPT TO:<${t}>\r\n`).join('')}DATA\r\n`);
  for (let i = 0; i < to.length + 2; i++) await c.reply();
  c.send(dataBlock(text));
  const id = queuedId(await c.reply());
  await c.quit();
  if (!id) throw new Error('message not queued');
  return id;
}

const q = (args: string[]) => runCli(['queue', ...args, '--config', server.configFile]);

beforeAll(async () => {
  server = await startPetrel();
});

afterAll(async () => {
  await server?.stop();
  await cleanup();
});

describe('petrel queue (bundle, as a process)', () => {
  it('an empty queue: "Queue is empty" and []', async () => {
    expect(await q(['list'])).toEqual({ status: 0, stdout: 'Queue is empty\n', stderr: '' });
    const json = await q(['list', '--json']);
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([]);
  });

  it('list --json beside the running server: every message in arrival order, in the documented shape', async () => {
    ids.push(await send('first@example.org', ['a@example.test'], 'Subject: one\r\n\r\nfirst\r\n'));
    ids.push(await send('second@example.org', ['b@example.test', 'c@example.test'], 'Subject: two\r\n\r\nsecond\r\n'));
    const list = await queueList(server.configFile);
    expect(list.map((m) => m.id)).toEqual(ids);
    expect(list[1]).toMatchObject({ sender: 'second@example.org', held: false });
    for (const m of list) {
      expect(typeof m.size).toBe('number');
      expect(Date.parse(m.arrived)).not.toBeNaN();
      for (const r of m.recipients) expect(Object.keys(r).sort()).toEqual(['address', 'attempts', 'last_reply', 'next_attempt', 'state']);
    }
    expect(list[1]?.recipients.map((r) => [r.address, r.state])).toEqual([
      ['b@example.test', 'queued'],
      ['c@example.test', 'queued'],
    ]);
  });

  it('list (table): ids, senders and recipients, and a message count', async () => {
    const r = await q(['list']);
    expect(r.status).toBe(0);
    for (const s of [...ids, 'first@example.org', 'second@example.org', 'b@example.test', 'c@example.test']) expect(r.stdout).toContain(s);
    expect(r.stdout).toMatch(/-- 2 messages\n$/);
  });

  it('show ID: envelope, recipient states and the stored text with our Received field on top', async () => {
    const r = await q(['show', ids[1] as string]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`Queue-ID: ${ids[1]}\n`);
    expect(r.stdout).toContain('Sender: <second@example.org>\n');
    expect(r.stdout).toMatch(/<c@example\.test> queued attempts=0/);
    expect(r.stdout).toMatch(/\n\nReceived: from cli\.example\.org/);
    expect(r.stdout).toContain('Subject: two\r\n\r\nsecond\r\n');
  });

  it('errors go to stderr with sysexits statuses', async () => {
    const unknown = await q(['show', 'NOSUCHID']);
    expect(unknown).toMatchObject({ status: 1, stdout: '' });
    expect(unknown.stderr).toContain('NOSUCHID');
    expect(await q(['frobnicate'])).toMatchObject({ status: 64, stdout: '' });
    expect(await q([])).toMatchObject({ status: 64, stdout: '' });
    expect(await q(['list', '--yaml'])).toMatchObject({ status: 64, stdout: '' });
    // flush reaches the running server through its control socket.
    expect(await q(['flush'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^flushed \d+ messages?/) });
  });

  it('the list is the same after the server has stopped', async () => {
    const before = await q(['list', '--json']);
    await server.stop();
    const after = await q(['list', '--json']);
    expect(after).toEqual(before);
  });

  it('`queue list | head`: a reader that goes away early gets no stack trace (EPIPE)', async () => {
    const child = spawn(process.execPath, [BUNDLE, 'queue', 'list', '--json', '--config', server.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await new Promise((r) => child.once('close', r));
    expect(stderr).not.toMatch(/Unhandled 'error' event|\n\s+at /);
  });
});
