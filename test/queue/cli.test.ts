// `petrel queue list [--json]` and `petrel queue show ID` over a real queue directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { queueCommand } from '../../src/cli/queue-cmd';
import { Queue } from '../../src/queue/queue';
import { encodeRecord } from '../../src/queue/records';
import type { Envelope } from '../../src/queue/queue';

function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `petrel-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function envelope(recipients: string[], receivedAt: number): Envelope {
  return { sender: 'sender@example.org', recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client.example', receivedAt };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function run(args: string[], dataDir: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await queueCommand(args, dataDir, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

const TEXT = 'From: a@example.org\r\nSubject: caf\u00e9\r\n\r\nHello\r\n';

/** A data dir holding two messages; the second has one delivered and one deferred recipient, and is held. */
async function populated(): Promise<{ dataDir: string; ids: string[] }> {
  const t = tempDir('cli');
  cleanups.push(t.cleanup);
  const q = await Queue.open(join(t.dir, 'queue'));
  const ids = [q.newId(), q.newId()];
  q.appendBody(ids[0]!, Buffer.from(TEXT));
  await q.commit(ids[0]!, envelope(['one@example.net'], Date.UTC(2025, 10, 28, 7, 12, 0)));
  q.appendBody(ids[1]!, Buffer.from('Subject: two\r\n\r\nx\r\n'));
  await q.commit(ids[1]!, { ...envelope(['b@example.net', 'c@example.net'], Date.UTC(2025, 10, 28, 8, 0, 0)), sender: '' });
  await q.close();
  // RCPT and OP records are the next issue's writers; append them by hand through the log format.
  await appendRecords(join(t.dir, 'queue'), [
    encodeRecord({ kind: 'rcpt', id: ids[1]!, index: 0, outcome: { state: 'delivered' } }),
    encodeRecord({ kind: 'rcpt', id: ids[1]!, index: 1, outcome: { state: 'deferred', nextAt: Date.UTC(2025, 10, 28, 9, 0, 0), attempts: 1, reply: '451 4.4.1 try later' } }),
    encodeRecord({ kind: 'op', id: ids[1]!, op: 'hold' }),
  ]);
  return { dataDir: t.dir, ids };
}

async function appendRecords(dir: string, payloads: Buffer[]): Promise<void> {
  const { open } = await import('node:fs/promises');
  const { frameRecord } = await import('../../src/queue/framing');
  const fh = await open(join(dir, '00000001.log'), 'r+');
  let offset = (await fh.stat()).size;
  for (const p of payloads) {
    const f = frameRecord(offset, p);
    await fh.writev(f.buffers, offset);
    offset = f.offset;
  }
  await fh.close();
}

describe('petrel queue list', () => {
  it('--json prints one object per message in the DESIGN.md shape', async () => {
    const { dataDir, ids } = await populated();
    const r = await run(['list', '--json'], dataDir);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual([
      {
        id: ids[0], sender: 'sender@example.org', size: Buffer.byteLength(TEXT), arrived: '2025-11-28T07:12:00Z', held: false,
        recipients: [{ address: 'one@example.net', state: 'queued', attempts: 0, next_attempt: null, last_reply: null }],
      },
      {
        id: ids[1], sender: '', size: 19, arrived: '2025-11-28T08:00:00Z', held: true,
        recipients: [
          { address: 'b@example.net', state: 'delivered', attempts: 1, next_attempt: null, last_reply: null },
          { address: 'c@example.net', state: 'deferred', attempts: 1, next_attempt: '2025-11-28T09:00:00Z', last_reply: '451 4.4.1 try later' },
        ],
      },
    ]);
  });

  it('prints a postqueue-like table ending in a count', async () => {
    const { dataDir, ids } = await populated();
    const r = await run(['list'], dataDir);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^-Queue ID- +--Size-- +---Arrival Time--- +-Sender\/Recipient-------$/);
    expect(lines[1]).toMatch(new RegExp(`^${ids[0]} +${Buffer.byteLength(TEXT)}  2025-11-28T07:12:00Z +sender@example\\.org$`));
    expect(lines[2]).toMatch(/^ +one@example\.net$/);
    expect(r.out).toContain(`${ids[1]}!`); // held, as postqueue marks it
    expect(r.out).toMatch(/\(deferred, 1 attempts, next 2025-11-28T09:00:00Z: 451 4\.4\.1 try later\)\n +c@example\.net\n/);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe('-- 2 messages');
  });

  it('says "Queue is empty" for an empty or absent queue', async () => {
    const t = tempDir('cli-empty');
    cleanups.push(t.cleanup);
    expect(await run(['list'], t.dir)).toEqual({ code: 0, out: 'Queue is empty\n', err: '' });
    expect(await run(['list', '--json'], t.dir)).toEqual({ code: 0, out: '[]\n', err: '' });
  });
});

describe('petrel queue show', () => {
  it('prints the envelope, recipient states and the stored text', async () => {
    const { dataDir, ids } = await populated();
    const r = await run(['show', ids[0]!], dataDir);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`Queue-ID: ${ids[0]}\n`);
    expect(r.out).toContain('Sender: <sender@example.org>\n');
    expect(r.out).toContain('  <one@example.net> queued attempts=0\n');
    expect(r.out.endsWith(`\n\n${TEXT}`)).toBe(true);
  });

  it('an unknown id is an error on stderr, exit 1', async () => {
    const { dataDir } = await populated();
    const r = await run(['show', 'NOPE'], dataDir);
    expect(r).toEqual({ code: 1, out: '', err: 'petrel queue show: no such message: NOPE\n' });
  });
});

describe('petrel queue: other subcommands', () => {
  // the operations themselves are covered by test/cli/queue-ops.test.ts; here only: no queue, nothing to act on
  for (const sub of ['flush', 'delete', 'hold', 'release']) {
    it(`${sub} X with no server and no queue: no such message, exit 1`, async () => {
      const r = await run([sub, 'X'], '/nonexistent');
      expect(r).toEqual({ code: 1, out: '', err: 'no such message: X (server not running: applied to the queue directly)\n' });
    });
  }

  it('no or an unknown subcommand prints usage, exit 64', async () => {
    expect((await run([], '/nonexistent')).code).toBe(64);
    const r = await run(['frobnicate'], '/nonexistent');
    expect(r.code).toBe(64);
    expect(r.err).toContain('usage: petrel queue');
  });
});
