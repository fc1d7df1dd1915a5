/**
 * The control socket (src/server/control.ts) against a fake queue: the
 * newline-delimited JSON protocol, its error answers (unknown id, malformed
 * JSON, over-long line, too many connections), the socket file's mode and
 * life cycle (stale file from a crashed server replaced, removed on stop),
 * and the CLI client's classification of "no server" vs "unreachable".
 */
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlUnavailable, controlRequest } from '../../src/cli/control-client';
import { createLogger } from '../../src/observe/log';
import type { QueuedMessage } from '../../src/queue/queue';
import { ControlServer, MAX_REQUEST_LINE, type ControlOp, type ControlQueue } from '../../src/server/control';

const ID1 = '01JABCDEFG00000';
const ID2 = '01JABCDEFG00001';
const ID3 = '01JABCDEFG00002';

function message(id: string, states: QueuedMessage['recipients'][number]['state'][]): QueuedMessage {
  return {
    id,
    sender: 'alice@example.org',
    size: 123,
    arrived: Date.UTC(2026, 10, 28, 7, 0, 0),
    held: false,
    clientIp: '127.0.0.1',
    helo: 'client.example.org',
    recipients: states.map((state, i) => ({
      address: `r${i}@example.net`,
      state,
      attempts: state === 'deferred' ? 2 : 0,
      nextAttempt: state === 'deferred' ? Date.UTC(2026, 10, 28, 8, 0, 0) : null,
      lastReply: state === 'deferred' ? '451 4.3.0 try later' : null,
    })),
  };
}

/** Implements the contract Queue.operate/list: records calls, acts on an in-memory map. */
class FakeQueue implements ControlQueue {
  readonly calls: [string, ControlOp][] = [];
  readonly messages = new Map<string, QueuedMessage>();
  gate: Promise<void> | null = null;
  failWith: Error | null = null;

  constructor(...ms: QueuedMessage[]) {
    for (const m of ms) this.messages.set(m.id, m);
  }

  async operate(id: string, op: ControlOp): Promise<boolean> {
    this.calls.push([id, op]);
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    const m = this.messages.get(id);
    if (!m) return false;
    if (op === 'delete') this.messages.delete(id);
    else if (op === 'hold' || op === 'release') m.held = op === 'hold';
    else for (const r of m.recipients) if (r.state === 'deferred') Object.assign(r, { state: 'queued', nextAttempt: null });
    return true;
  }

  list(): QueuedMessage[] {
    return [...this.messages.values()];
  }
}

const dirs: string[] = [];
const servers: ControlServer[] = [];
const logLines: string[] = [];
const log = createLogger({ write: (l) => logLines.push(l) });

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-ctl-'));
  dirs.push(d);
  return d;
}

async function start(queue: ControlQueue, more: { onFlush?: () => void; maxConnections?: number; idleMs?: number; dataDir?: string } = {}) {
  const dataDir = more.dataDir ?? tempDir();
  const server = await ControlServer.start({ dataDir, queue, log, ...more });
  servers.push(server);
  return { server, dataDir, path: join(dataDir, 'control.sock') };
}

afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A raw client: send bytes, collect answer lines. */
class Raw {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => {
      this.buf += s;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(path: string): Promise<Raw> {
    return new Promise((res, rej) => {
      const s = connect(path);
      s.once('connect', () => res(new Raw(s)));
      s.once('error', rej);
    });
  }

  send(text: string): this {
    this.socket.write(text);
    return this;
  }

  /** The next answer line parsed, or null once the server closed without one. */
  async line(): Promise<Record<string, unknown> | null> {
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const text = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return JSON.parse(text) as Record<string, unknown>;
      }
      if (this.closed) return null;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  waitClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((r) => this.socket.once('close', () => r()));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

async function ask(path: string, request: unknown): Promise<Record<string, unknown> | null> {
  const c = await Raw.open(path);
  const answer = await c.send(`${JSON.stringify(request)}\n`).line();
  c.socket.destroy();
  return answer;
}

describe('control protocol', () => {
  it('hold, release, delete an existing message: ok, and the queue saw exactly those operations', async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { path } = await start(q);
    expect(await ask(path, { op: 'hold', id: ID1 })).toEqual({ ok: true });
    expect(q.messages.get(ID1)?.held).toBe(true);
    expect(await ask(path, { op: 'release', id: ID1 })).toEqual({ ok: true });
    expect(q.messages.get(ID1)?.held).toBe(false);
    expect(await ask(path, { op: 'delete', id: ID1 })).toEqual({ ok: true });
    expect(q.messages.has(ID1)).toBe(false);
    expect(q.calls).toEqual([
      [ID1, 'hold'],
      [ID1, 'release'],
      [ID1, 'delete'],
    ]);
  });

  it('an unknown id: {"ok":false,"error":"no such message"} for every op', async () => {
    const { path } = await start(new FakeQueue());
    for (const op of ['hold', 'release', 'delete', 'flush']) {
      expect(await ask(path, { op, id: ID2 })).toEqual({ ok: false, error: 'no such message' });
    }
  });

  it('flush without an id: only messages with a deferred recipient, then onFlush once', async () => {
    const q = new FakeQueue(message(ID1, ['deferred', 'delivered']), message(ID2, ['queued']), message(ID3, ['failed', 'deferred']));
    let woken = 0;
    const { path } = await start(q, { onFlush: () => woken++ });
    expect(await ask(path, { op: 'flush' })).toEqual({ ok: true, flushed: 2 });
    expect(q.calls).toEqual([
      [ID1, 'flush'],
      [ID3, 'flush'],
    ]);
    expect(woken).toBe(1);
    expect(q.messages.get(ID3)?.recipients.map((r) => r.state)).toEqual(['failed', 'queued']);
  });

  it('flush ID wakes the scheduler; a failed flush does not', async () => {
    let woken = 0;
    const { path } = await start(new FakeQueue(message(ID1, ['deferred'])), { onFlush: () => woken++ });
    expect(await ask(path, { op: 'flush', id: ID2 })).toEqual({ ok: false, error: 'no such message' });
    expect(woken).toBe(0);
    expect(await ask(path, { op: 'flush', id: ID1 })).toEqual({ ok: true, flushed: 1 });
    expect(woken).toBe(1);
  });

  it('list: the `queue list --json` shape', async () => {
    const { path } = await start(new FakeQueue(message(ID1, ['deferred'])));
    expect(await ask(path, { op: 'list' })).toEqual({
      ok: true,
      messages: [
        {
          id: ID1,
          sender: 'alice@example.org',
          size: 123,
          arrived: '2026-11-28T07:00:00Z',
          held: false,
          recipients: [{ address: 'r0@example.net', state: 'deferred', attempts: 2, next_attempt: '2026-11-28T08:00:00Z', last_reply: '451 4.3.0 try later' }],
        },
      ],
    });
  });

  it('malformed requests get an error answer and the connection stays usable', async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { path } = await start(q);
    const c = await Raw.open(path);
    const bad = ['{"op":', '[1,2]', '"hold"', 'null', '{"op":"hold"}', '{"op":"hold","id":42}', '{"op":"hold","id":"a b"}', '{"op":"explode","id":"X"}', '{}', '\u0000\u00ff'];
    for (const text of bad) {
      const answer = await c.send(`${text}\n`).line();
      expect(answer?.ok, text).toBe(false);
      expect(typeof answer?.error, text).toBe('string');
    }
    expect(await c.send(`{"op":"hold","id":"${ID1}"}\n`).line()).toEqual({ ok: true });
    expect(q.calls).toEqual([[ID1, 'hold']]);
    c.socket.destroy();
  });

  it('pipelined requests are answered in order; a client that shuts its side after sending still gets its answers', async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { path } = await start(q);
    const c = await Raw.open(path);
    c.send(`{"op":"hold","id":"${ID1}"}\n{"op":"delete","id":"${ID2}"}\n{"op":"release","id":"${ID1}"}\n`);
    c.socket.end();
    expect(await c.line()).toEqual({ ok: true });
    expect(await c.line()).toEqual({ ok: false, error: 'no such message' });
    expect(await c.line()).toEqual({ ok: true });
    expect(await c.line()).toBeNull(); // and then the server closes
  });

  it(`a request line over ${MAX_REQUEST_LINE} bytes (with or without its newline): one error, connection closed, server fine`, async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { path } = await start(q);
    for (const tail of ['\n', '']) {
      const c = await Raw.open(path);
      c.send(`{"op":"hold","id":"${ID1}","pad":"${'x'.repeat(MAX_REQUEST_LINE)}"}${tail}`);
      const answer = await c.line();
      expect(answer?.ok).toBe(false);
      expect(String(answer?.error)).toMatch(/longer than 4096/);
      await c.waitClosed();
    }
    expect(q.calls).toEqual([]);
    const exact = `{"op":"hold","id":"${ID1}","pad":"`;
    const c = await Raw.open(path);
    c.send(`${exact}${'x'.repeat(MAX_REQUEST_LINE - exact.length - 2)}"}\n`); // exactly 4096 bytes before the newline
    expect(await c.line()).toEqual({ ok: true });
    c.socket.destroy();
  });

  it('a queue failure is an error answer, not a crash', async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { path } = await start(q);
    q.failWith = new Error('queue is poisoned');
    expect(await ask(path, { op: 'hold', id: ID1 })).toEqual({ ok: false, error: 'queue error: queue is poisoned' });
    q.failWith = null;
    expect(await ask(path, { op: 'hold', id: ID1 })).toEqual({ ok: true });
  });

  it('at most maxConnections at once: the next one is told so and closed; a freed slot is reusable', async () => {
    const { path } = await start(new FakeQueue(), { maxConnections: 2 });
    const a = await Raw.open(path);
    const b = await Raw.open(path);
    await a.send('{"op":"list"}\n').line(); // both admitted before the third arrives
    await b.send('{"op":"list"}\n').line();
    const c = await Raw.open(path);
    expect(await c.line()).toEqual({ ok: false, error: 'too many control connections' });
    await c.waitClosed();
    a.socket.destroy();
    await a.waitClosed();
    await expect.poll(async () => (await ask(path, { op: 'list' }))?.ok).toBe(true);
    b.socket.destroy();
  });

  it('an idle control connection is closed by the server', async () => {
    const { path } = await start(new FakeQueue(), { idleMs: 100 });
    const c = await Raw.open(path);
    await c.waitClosed();
    expect(await c.line()).toBeNull();
  });
});

describe('control socket file', () => {
  it('is a socket of mode 0600', async () => {
    const { path } = await start(new FakeQueue());
    const st = lstatSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('stop() removes it, lets an operation in progress finish and answer, and later clients find no server', async () => {
    const q = new FakeQueue(message(ID1, ['queued']));
    const { server, path, dataDir } = await start(q);
    let open!: () => void;
    q.gate = new Promise((r) => (open = r));
    const c = await Raw.open(path);
    c.send(`{"op":"hold","id":"${ID1}"}\n`);
    await expect.poll(() => q.calls.length).toBe(1);
    const stopped = server.stop();
    open();
    expect(await c.line()).toEqual({ ok: true });
    await stopped;
    expect(existsSync(path)).toBe(false);
    await expect(controlRequest(dataDir, { op: 'hold', id: ID1 })).rejects.toMatchObject({ failure: 'no-server' });
  });

  it('a stale socket left by a SIGKILLed server is detected (ECONNREFUSED) and replaced', async () => {
    const dataDir = tempDir();
    const path = join(dataDir, 'control.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(lstatSync(path).isSocket()).toBe(true);
    const failure = await controlRequest(dataDir, { op: 'list' }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ControlUnavailable);
    expect((failure as ControlUnavailable).failure).toBe('no-server');

    const q = new FakeQueue(message(ID1, ['queued']));
    await start(q, { dataDir });
    expect(await controlRequest(dataDir, { op: 'hold', id: ID1 })).toEqual({ ok: true });
  });

  it('refuses to start beside a live control server, and never deletes a file that is not a socket', async () => {
    const { dataDir, path } = await start(new FakeQueue());
    await expect(ControlServer.start({ dataDir, queue: new FakeQueue(), log })).rejects.toThrow(/another server answers/);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(await ask(path, { op: 'list' })).toEqual({ ok: true, messages: [] });

    const other = tempDir();
    writeFileSync(join(other, 'control.sock'), 'not a socket');
    await expect(ControlServer.start({ dataDir: other, queue: new FakeQueue(), log })).rejects.toThrow(/not a socket/);
    expect(lstatSync(join(other, 'control.sock')).isFile()).toBe(true);
  });

  it('the client: missing socket is "no-server"; a server that closes without answering is "unreachable"', async () => {
    const dataDir = tempDir();
    await expect(controlRequest(dataDir, { op: 'flush' })).rejects.toMatchObject({ failure: 'no-server' });
    const { server } = await start(new FakeQueue(), { dataDir, maxConnections: 0 });
    // with no free slot the server answers with an error, which is an answer
    expect(await controlRequest(dataDir, { op: 'flush' })).toEqual({ ok: false, error: 'too many control connections' });
    await server.stop();
    const mute = (await import('node:net')).createServer((s) => s.resume().end());
    await new Promise<void>((r) => mute.listen(join(dataDir, 'control.sock'), r));
    await expect(controlRequest(dataDir, { op: 'flush' })).rejects.toMatchObject({ failure: 'unreachable' });
    await new Promise((r) => mute.close(r));
  });
});
