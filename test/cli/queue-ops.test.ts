/**
 * `petrel queue hold|release|delete|flush` (DESIGN.md command line) with a
 * real Queue: through the control socket of a server-side ControlServer, and
 * through the offline fallback that opens the queue under its LOCK when no
 * server runs. Results are checked with `queue list --json`, the read-only
 * scan tools rely on. One test runs the bundle against a `petrel serve`.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { queueCommand } from '../../src/cli/queue-cmd';
import { createLogger } from '../../src/observe/log';
import { frameRecord } from '../../src/queue/framing';
import { Queue, type Envelope } from '../../src/queue/queue';
import { encodeRecord } from '../../src/queue/records';
import { ControlServer } from '../../src/server/control';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';
import { cleanup, queueList, runCli, startPetrel } from '../helpers/spawn';

const NOTE = ' (server not running: applied to the queue directly)';
const log = createLogger({ write: () => {} });
const dirs: string[] = [];
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(cleanup);

function envelope(recipients: string[]): Envelope {
  return { sender: 'sender@example.org', recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client.example', receivedAt: Date.UTC(2026, 0, 2, 3, 4, 5) };
}

/** A data dir with three committed messages; the second has a deferred recipient (its RCPT record appended by hand). */
async function populated(): Promise<{ dataDir: string; ids: string[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-qops-'));
  dirs.push(dataDir);
  const q = await Queue.open(join(dataDir, 'queue'));
  const ids = [q.newId(), q.newId(), q.newId()];
  for (const id of ids) {
    q.appendBody(id, Buffer.from(`Subject: ${id}\r\n\r\nhello\r\n`));
    await q.commit(id, envelope(['a@example.net', 'b@example.net']));
  }
  await q.close();
  const deferred = encodeRecord({ kind: 'rcpt', id: ids[1]!, index: 1, outcome: { state: 'deferred', nextAt: Date.UTC(2030, 0, 1), attempts: 1, reply: '451 4.4.1 try later' } });
  await appendRecord(join(dataDir, 'queue', '00000001.log'), deferred);
  return { dataDir, ids };
}

async function appendRecord(file: string, payload: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  const offset = (await fh.stat()).size;
  await fh.writev(frameRecord(offset, payload).buffers, offset);
  await fh.close();
}

/** What `petrel serve` holds: the queue (with its LOCK) and the control socket. */
async function serve(dataDir: string): Promise<{ queue: Queue; flushes: () => number }> {
  const queue = await Queue.open(join(dataDir, 'queue'));
  let flushes = 0;
  const control = await ControlServer.start({ dataDir, queue, log, onFlush: () => flushes++ });
  stops.push(() => queue.close(), () => control.stop()); // run in reverse: socket first, then the queue
  return { queue, flushes: () => flushes };
}

async function run(args: string[], dataDir: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await queueCommand(args, dataDir, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

interface Listed {
  id: string;
  held: boolean;
  recipients: { address: string; state: string; next_attempt: string | null }[];
}

async function listed(dataDir: string): Promise<Listed[]> {
  const r = await run(['list', '--json'], dataDir);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as Listed[];
}

describe('queue operations against a running server (control socket)', () => {
  it('hold → list shows held:true → release → held:false; the running queue agrees', async () => {
    const { dataDir, ids } = await populated();
    const { queue } = await serve(dataDir);
    const id = ids[0]!;
    expect(await run(['hold', id], dataDir)).toEqual({ code: 0, out: `held ${id}\n`, err: '' });
    expect((await listed(dataDir)).find((m) => m.id === id)?.held).toBe(true);
    expect(queue.get(id)?.held).toBe(true);
    expect(await run(['release', id], dataDir)).toEqual({ code: 0, out: `released ${id}\n`, err: '' });
    expect((await listed(dataDir)).map((m) => m.held)).toEqual([false, false, false]);
  });

  it('delete → gone from the list; the others stay', async () => {
    const { dataDir, ids } = await populated();
    await serve(dataDir);
    expect(await run(['delete', ids[1]!], dataDir)).toEqual({ code: 0, out: `deleted ${ids[1]}\n`, err: '' });
    expect((await listed(dataDir)).map((m) => m.id)).toEqual([ids[0], ids[2]]);
  });

  it('flush: the deferred recipient is queued again and the scheduler is woken; flush ID likewise', async () => {
    const { dataDir, ids } = await populated();
    const { flushes } = await serve(dataDir);
    expect((await listed(dataDir))[1]?.recipients.map((r) => r.state)).toEqual(['queued', 'deferred']);
    expect(await run(['flush'], dataDir)).toEqual({ code: 0, out: 'flushed 1 message\n', err: '' });
    expect((await listed(dataDir))[1]?.recipients).toMatchObject([{ state: 'queued' }, { state: 'queued', next_attempt: null }]);
    expect(flushes()).toBe(1);
    expect(await run(['flush', ids[2]!], dataDir)).toEqual({ code: 0, out: `flushed ${ids[2]}\n`, err: '' });
    expect(flushes()).toBe(2);
  });

  it('an unknown id: "no such message: ID", exit 1, nothing changed', async () => {
    const { dataDir } = await populated();
    await serve(dataDir);
    for (const op of ['hold', 'release', 'delete', 'flush']) {
      expect(await run([op, '0000000000ZZZZZ'], dataDir)).toEqual({ code: 1, out: '', err: 'no such message: 0000000000ZZZZZ\n' });
    }
    expect(await run(['hold', 'not an id'], dataDir)).toMatchObject({ code: 1, err: 'no such message: not an id\n' });
    expect((await listed(dataDir)).map((m) => m.held)).toEqual([false, false, false]);
  });

  it('usage errors exit 64', async () => {
    const { dataDir, ids } = await populated();
    for (const args of [['hold'], ['delete'], ['release', ids[0]!, ids[1]!], ['flush', ids[0]!, ids[1]!], ['hold', '--force']]) {
      const r = await run(args, dataDir);
      expect(r.code, args.join(' ')).toBe(64);
      expect(r.err).toMatch(/^usage: petrel queue/);
    }
  });
});

describe('queue operations with no server running', () => {
  it('applies the operation to the queue directly, says so, and leaves the queue unlocked', async () => {
    const { dataDir, ids } = await populated();
    expect(await run(['hold', ids[2]!], dataDir)).toEqual({ code: 0, out: `held ${ids[2]}${NOTE}\n`, err: '' });
    expect((await listed(dataDir)).map((m) => m.held)).toEqual([false, false, true]);
    expect(await run(['delete', ids[0]!], dataDir)).toEqual({ code: 0, out: `deleted ${ids[0]}${NOTE}\n`, err: '' });
    expect(await run(['flush'], dataDir)).toEqual({ code: 0, out: `flushed 1 message${NOTE}\n`, err: '' });
    expect(await run(['release', '0000000000ZZZZZ'], dataDir)).toEqual({ code: 1, out: '', err: `no such message: 0000000000ZZZZZ${NOTE}\n` });
    const after = await listed(dataDir);
    expect(after.map((m) => [m.id, m.held])).toEqual([
      [ids[1], false],
      [ids[2], true],
    ]);
    expect(after[0]?.recipients.map((r) => r.state)).toEqual(['queued', 'queued']);
    expect(existsSync(join(dataDir, 'queue', 'LOCK'))).toBe(false);
    // and what was applied offline is what a server opening the queue sees
    const q = await Queue.open(join(dataDir, 'queue'));
    expect(q.list().map((m) => [m.id, m.held])).toEqual([
      [ids[1], false],
      [ids[2], true],
    ]);
    await q.close();
  });

  it('a stale socket from a crashed server counts as "not running"', async () => {
    const { dataDir, ids } = await populated();
    await staleSocket(join(dataDir, 'control.sock'));
    expect(await run(['hold', ids[0]!], dataDir)).toEqual({ code: 0, out: `held ${ids[0]}${NOTE}\n`, err: '' });
  });

  it('no queue directory at all: nothing to act on, and none is created', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'petrel-qops-'));
    dirs.push(dataDir);
    expect(await run(['hold', '0000000000ZZZZZ'], dataDir)).toMatchObject({ code: 1, err: `no such message: 0000000000ZZZZZ${NOTE}\n` });
    expect(await run(['flush'], dataDir)).toEqual({ code: 0, out: `flushed 0 messages${NOTE}\n`, err: '' });
    expect(existsSync(join(dataDir, 'queue'))).toBe(false);
  });

  it('the queue is locked but no socket answers: the server IS running; exit 69, queue untouched', async () => {
    const { dataDir, ids } = await populated();
    const q = await Queue.open(join(dataDir, 'queue')); // a server without a control socket (starting, or its socket removed)
    stops.push(() => q.close());
    const r = await run(['hold', ids[0]!], dataDir);
    expect(r.code).toBe(69);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/server is running but its control socket is unreachable/);
    expect(q.get(ids[0]!)?.held).toBe(false);
  });

  it('a socket that accepts but never answers properly: unreachable, exit 69, no fallback', async () => {
    const { dataDir, ids } = await populated();
    const mute = createServer((s) => s.resume().end());
    await new Promise<void>((r) => mute.listen(join(dataDir, 'control.sock'), r));
    stops.push(() => new Promise((r) => mute.close(() => r())));
    const r = await run(['delete', ids[0]!], dataDir);
    expect(r.code).toBe(69);
    expect(r.err).toMatch(/unreachable/);
    expect((await listed(dataDir)).map((m) => m.id)).toEqual(ids);
  });
});

/** A socket file nobody listens on, as a SIGKILLed server leaves it: bind, rename away, close, rename back. */
async function staleSocket(path: string): Promise<void> {
  const { rename } = await import('node:fs/promises');
  const s = createServer();
  await new Promise<void>((r) => s.listen(path, r));
  await rename(path, `${path}.tmp`); // so close() cannot unlink it
  await new Promise((r) => s.close(r));
  await rename(`${path}.tmp`, path);
}

describe('end to end: the bundle against `petrel serve`', () => {
  it('hold and release reach the running server (no fallback note) and show in queue list', async () => {
    // relayed to a smart host that refuses connections: the message stays queued (deferred) for the test
    const server = await startPetrel({ settings: { relay_host: '[127.0.0.1]:1' } });
    stops.push(async () => void (await server.stop()));
    const c = await RawSmtp.connect(server.port);
    await c.reply();
    await c.command('EHLO ops.example.org');
    c.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@remote.example>\r\nDATA\r\n');
    for (let i = 0; i < 3; i++) await c.reply();
    c.send(dataBlock('Subject: ops\r\n\r\nhi\r\n'));
    const id = queuedId(await c.reply());
    await c.quit();
    expect(id).not.toBeNull();
    const hold = await runCli(['queue', 'hold', id!, '--config', server.configFile]);
    expect(hold).toEqual({ status: 0, stdout: `held ${id}\n`, stderr: '' });
    expect((await queueList(server.configFile)).find((m) => m.id === id)?.held).toBe(true);
    const release = await runCli(['queue', 'release', id!, '--config', server.configFile]);
    expect(release).toEqual({ status: 0, stdout: `released ${id}\n`, stderr: '' });
    expect((await queueList(server.configFile)).find((m) => m.id === id)?.held).toBe(false);
  });
});
