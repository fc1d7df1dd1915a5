// The Queue adapter on real files in os.tmpdir(): durability order, group
// commit, rotation, reopen, poisoning on write/fsync errors, body read-back,
// and the read-only scan beside a live writer.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKLOG_HIGH_WATER, Queue, QueueError, readQueue } from '../../src/queue/queue';
import type { Envelope } from '../../src/queue/queue';
import { PIECE_BYTES, nodeFs } from '../../src/queue/segment';
import type { QueueFile, QueueFs } from '../../src/queue/segment';
import { BLOCK_SIZE } from '../../src/queue/framing';

// ---- helpers: temp dirs, builders, and an fs wrapper that records, fails or holds back operations

function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `petrel-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function envelope(recipients = ['rcpt@example.net'], receivedAt = 1_764_316_800_000): Envelope {
  return { sender: 'sender@example.org', recipients, params: { smtputf8: false, body: '8BITMIME' }, clientIp: '127.0.0.1', helo: 'client.example', receivedAt };
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

type Op = 'writev' | 'datasync' | 'sync' | 'open';

/**
 * A QueueFs over the real one that logs every call ("writev", "datasync:done"…),
 * and lets a test fail an operation (`fail`) or hold it until released (`gate`).
 */
class FaultFs implements QueueFs {
  readonly events: string[] = [];
  readonly counts: Record<Op, number> = { writev: 0, datasync: 0, sync: 0, open: 0 };
  fail: Partial<Record<Op, () => Error | null>> = {};
  gate: Partial<Record<Op, Promise<void>>> = {};

  mkdir = nodeFs.mkdir;
  readdir = nodeFs.readdir;

  async open(file: string, flags: string): Promise<QueueFile> {
    await this.step('open');
    const fh = await nodeFs.open(file, flags);
    return {
      writev: async (buffers, position) => {
        await this.step('writev');
        const r = await fh.writev(buffers, position);
        this.events.push('writev:done');
        return r;
      },
      datasync: async () => {
        await this.step('datasync');
        await fh.datasync();
        this.events.push('datasync:done');
      },
      sync: async () => {
        await this.step('sync');
        await fh.sync();
        this.events.push('sync:done');
      },
      read: (b, o, l, p) => fh.read(b, o, l, p),
      truncate: (len) => fh.truncate(len),
      stat: () => fh.stat(),
      close: () => fh.close(),
    };
  }

  private async step(op: Op): Promise<void> {
    this.counts[op] += 1;
    this.events.push(op);
    const gate = this.gate[op];
    if (gate) await gate;
    const e = this.fail[op]?.();
    if (e) throw e;
  }
}

function errnoError(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** A promise with its resolver, for holding an fs operation back. */
function deferred(): { promise: Promise<void>; release(): void } {
  let release = (): void => {};
  const promise = new Promise<void>((r) => {
    release = r;
  });
  return { promise, release };
}

// ---- tests

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(prefix = 'q'): string {
  const t = tempDir(prefix);
  cleanups.push(t.cleanup);
  return t.dir;
}

const tick = () => new Promise((r) => setImmediate(r));

/** Waits (bounded) until the fs work the test is watching for has happened. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 5000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  expect(cond()).toBe(true);
}

describe('durability', () => {
  it('commit resolves only after the fdatasync that covers its COMMIT', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs });
    fs.events.length = 0;
    const hold = deferred();
    fs.gate.datasync = hold.promise;
    let resolved = false;
    q.appendBody('M1', Buffer.from('Subject: x\r\n\r\nhello\r\n'));
    const p = q.commit('M1', envelope()).then(() => {
      resolved = true;
      fs.events.push('resolve');
    });
    await until(() => fs.events.includes('datasync'));
    for (let i = 0; i < 5; i++) await tick();
    expect(fs.events).toEqual(['writev', 'writev:done', 'datasync']);
    expect(resolved).toBe(false);
    expect(q.get('M1')).toBeUndefined(); // not visible before it is durable
    hold.release();
    await p;
    expect(fs.events).toEqual(['writev', 'writev:done', 'datasync', 'datasync:done', 'resolve']);
    expect(q.get('M1')?.recipients[0]?.state).toBe('queued');
    await q.close();
  });

  it('many concurrent commits share one fdatasync', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs });
    const before = fs.counts.datasync;
    const commits = Array.from({ length: 50 }, (_, i) => {
      const id = q.newId();
      q.appendBody(id, Buffer.from(`message ${i}\r\n`));
      return q.commit(id, envelope());
    });
    await Promise.all(commits);
    expect(fs.counts.datasync - before).toBe(1);
    expect(q.list()).toHaveLength(50);
    await q.close();
  });

  it('commits arriving during an fdatasync form the next batch: one more fdatasync for all of them', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs });
    const before = fs.counts.datasync;
    const hold = deferred();
    fs.gate.datasync = hold.promise;
    const first = q.commit('FIRST', envelope());
    await until(() => fs.counts.datasync - before === 1);
    const later = Array.from({ length: 20 }, (_, i) => q.commit(`LATER${i}`, envelope()));
    for (let i = 0; i < 3; i++) await tick();
    delete fs.gate.datasync;
    hold.release();
    await Promise.all([first, ...later]);
    expect(fs.counts.datasync - before).toBe(2);
    await q.close();
  });

  it('BODY appends alone are written but never fsync’d', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs });
    const before = fs.counts.datasync;
    q.appendBody('X', Buffer.alloc(5000, 1)); // ≥ 4 KiB: written at once (smaller chunks are gathered first)
    await until(() => fs.events.at(-1) === 'writev:done');
    for (let i = 0; i < 5; i++) await tick();
    expect(q.backlogBytes).toBe(0);
    expect(fs.counts.datasync - before).toBe(0);
    await q.close();
  });
});

describe('segments', () => {
  it('rotates at segmentBytes into zero-padded files, fsyncing the directory, and reopens with everything', async () => {
    const d = dir();
    const fs = new FaultFs();
    const q = await Queue.open(d, { fs, segmentBytes: 64 * 1024 });
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 20; i++) {
      const id = q.newId();
      const body = Buffer.alloc(10_000 + i, i);
      bodies.set(id, body);
      q.appendBody(id, body);
      await q.commit(id, envelope());
    }
    await q.close();
    const files = readdirSync(d).sort();
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(files[0]).toBe('00000001.log');
    expect(files.every((f) => /^\d{8}\.log$/.test(f))).toBe(true);
    expect(fs.counts.sync).toBeGreaterThanOrEqual(files.length); // one directory fsync per segment created
    const again = await Queue.open(d, { segmentBytes: 64 * 1024 });
    expect(again.list().map((m) => m.id)).toEqual([...bodies.keys()]);
    for (const [id, body] of bodies) expect((await readAll(again.readBody(id))).equals(body)).toBe(true);
    expect(again.recoveryReport.corruptions).toEqual([]);
    await again.close();
  });

  it('reopen after close keeps messages, ids stay increasing, and appends continue in the same segment', async () => {
    const d = dir();
    const q = await Queue.open(d);
    const id1 = q.newId();
    q.appendBody(id1, Buffer.from('one'));
    await q.commit(id1, envelope());
    await q.close();
    const q2 = await Queue.open(d);
    const id2 = q2.newId();
    expect(id2 > id1).toBe(true);
    q2.appendBody(id2, Buffer.from('two'));
    await q2.commit(id2, envelope());
    await q2.close();
    expect(readdirSync(d)).toEqual(['00000001.log']);
    const { messages } = await readQueue(d);
    expect(messages.map((m) => m.id)).toEqual([id1, id2]);
  });

  it('a torn tail of the newest segment is truncated and reported', async () => {
    const d = dir();
    const q = await Queue.open(d);
    q.appendBody('A', Buffer.from('kept'));
    await q.commit('A', envelope());
    await q.close();
    const file = join(d, '00000001.log');
    const good = readFileSync(file).length;
    writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9])]));
    const q2 = await Queue.open(d);
    expect(q2.recoveryReport.truncated).toEqual({ segment: 1, from: good, to: good + 9 });
    expect(readFileSync(file).length).toBe(good);
    expect(q2.list().map((m) => m.id)).toEqual(['A']);
    await q2.close();
  });

  it('an empty newest segment (creation torn by a crash) is reused without a report', async () => {
    const d = dir();
    writeFileSync(join(d, '00000001.log'), Buffer.alloc(0));
    const q = await Queue.open(d);
    expect(q.recoveryReport.corruptions).toEqual([]);
    await q.commit('A', envelope());
    await q.close();
    expect((await readQueue(d)).messages.map((m) => m.id)).toEqual(['A']);
  });

  it('a CRC error in a sealed segment is reported and skipped; startup goes on', async () => {
    const d = dir();
    const q = await Queue.open(d, { segmentBytes: 3 * BLOCK_SIZE });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const id = `M${String(i).padStart(2, '0')}`;
      ids.push(id);
      q.appendBody(id, Buffer.alloc(12_000, i));
      await q.commit(id, envelope());
    }
    await q.close();
    const first = join(d, '00000001.log');
    const bytes = readFileSync(first);
    bytes[BLOCK_SIZE + 100] = (bytes[BLOCK_SIZE + 100] ?? 0) ^ 0xff; // inside block 1 of the sealed segment
    writeFileSync(first, bytes);
    const q2 = await Queue.open(d, { segmentBytes: 3 * BLOCK_SIZE });
    expect(q2.recoveryReport.corruptions.some((c) => c.segment === 1 && c.reason === 'checksum mismatch')).toBe(true);
    const listed = q2.list().map((m) => m.id);
    expect(listed.length).toBeGreaterThan(6);
    expect(listed.length).toBeLessThan(12);
    expect(listed).toContain('M11');
    await q2.close();
  });

  it('a segment read back in several pieces (PIECE_BYTES) recovers records that span them; damage at a piece boundary costs only what it touches', async () => {
    const d = dir();
    const opts = { segmentBytes: 4 * PIECE_BYTES, fsync: false, hotBytes: 0 };
    const q = await Queue.open(d, opts);
    const bodies = new Map<string, Buffer>();
    for (let i = 0; bodies.size === 0 || q.liveBySegment.size === 1; i++) {
      const body = Buffer.alloc(70_000 + 997 * i, i % 251); // two BODY records, several blocks: some straddle a piece boundary
      bodies.set(await q.submit(envelope(), body), body);
    }
    await q.close();
    const readable = async (q2: Queue) => {
      let ok = 0;
      for (const [id, body] of bodies) {
        const got = await (async () => readAll(q2.readBody(id)))().catch(() => null);
        if (got?.equals(body)) ok++;
      }
      return ok;
    };
    let q2 = await Queue.open(d, opts);
    expect(q2.recoveryReport.corruptions).toEqual([]);
    expect(q2.list().length).toBe(bodies.size);
    expect(await readable(q2)).toBe(bodies.size);
    await q2.close();
    const first = join(d, '00000001.log');
    const bytes = readFileSync(first);
    expect(bytes.length).toBeGreaterThan(3 * PIECE_BYTES);
    bytes[PIECE_BYTES + 20] = (bytes[PIECE_BYTES + 20] ?? 0) ^ 0xff; // first block of the second piece
    writeFileSync(first, bytes);
    q2 = await Queue.open(d, opts);
    expect(q2.recoveryReport.corruptions.map((c) => [c.segment, c.offset, c.reason])).toContainEqual([1, PIECE_BYTES, 'checksum mismatch']);
    expect(await readable(q2)).toBeGreaterThanOrEqual(bodies.size - 2);
    expect(await readable(q2)).toBeLessThan(bodies.size);
    await q2.close();
  });
});

describe('poisoning (never retry an fsync)', () => {
  it('ENOSPC during write: commit rejects storage-full, the queue is poisoned, earlier mail survives', async () => {
    const d = dir();
    const fs = new FaultFs();
    const q = await Queue.open(d, { fs });
    q.appendBody('OK1', Buffer.from('first'));
    await q.commit('OK1', envelope());
    fs.fail.writev = () => errnoError('ENOSPC');
    q.appendBody('BAD', Buffer.from('second'));
    const err = await q.commit('BAD', envelope()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueError);
    expect(err).toMatchObject({ code: 'storage-full', temporary: true });
    expect(q.poisoned).toBe(true);
    delete fs.fail.writev;
    const later = await q.commit('LATER', envelope()).catch((e: unknown) => e);
    expect(later).toBeInstanceOf(QueueError);
    const writesBefore = fs.counts.writev;
    await q.close();
    expect(fs.counts.writev).toBe(writesBefore);
    const q2 = await Queue.open(d);
    expect(q2.list().map((m) => m.id)).toEqual(['OK1']);
    expect((await readAll(q2.readBody('OK1'))).toString()).toBe('first');
    await q2.close();
  });

  it('an fdatasync error poisons with io, rejects the whole batch, and is never retried', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs });
    fs.fail.datasync = () => errnoError('EIO');
    const results = await Promise.allSettled([q.commit('A', envelope()), q.commit('B', envelope())]);
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as QueueError).code : 'ok'))).toEqual(['io', 'io']);
    const syncs = fs.counts.datasync;
    await expect(q.commit('C', envelope())).rejects.toMatchObject({ code: 'poisoned' });
    await q.close();
    expect(fs.counts.datasync).toBe(syncs);
    expect(q.list()).toEqual([]);
  });

  it('commit after close rejects with closed', async () => {
    const q = await Queue.open(dir());
    await q.close();
    await expect(q.commit('A', envelope())).rejects.toMatchObject({ code: 'closed', temporary: true });
  });
});

describe('bodies, backlog, transactions', () => {
  it('readBody returns the exact bytes, across chunking, 64 KiB splits and blocks', async () => {
    const q = await Queue.open(dir());
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 9)) & 0xff;
    let at = 0;
    for (const n of [1, 70_000, 3, 65_536, 100_000]) {
      q.appendBody('BIG', body.subarray(at, at + n));
      at += n;
    }
    q.appendBody('BIG', body.subarray(at));
    await q.commit('BIG', envelope());
    expect(q.get('BIG')?.size).toBe(body.length);
    expect((await readAll(q.readBody('BIG'))).equals(body)).toBe(true);
    await q.close();
  });

  it('a discarded transaction never appears, and its bytes do not leak into another message', async () => {
    const d = dir();
    const q = await Queue.open(d);
    q.appendBody('GONE', Buffer.alloc(5000, 0x61)); // ≥ 4 KiB: its BODY record is written before the discard
    q.appendBody('KEEP', Buffer.from('kept'));
    q.discard('GONE');
    await q.commit('KEEP', envelope());
    expect(q.list().map((m) => m.id)).toEqual(['KEEP']);
    await q.close();
    const q2 = await Queue.open(d);
    expect(q2.list().map((m) => m.id)).toEqual(['KEEP']);
    expect(q2.recoveryReport.droppedTransactions).toBe(1);
    await q2.close();
  });

  it('a body sent a byte at a time is gathered into few BODY records, and reads back whole', async () => {
    const d = dir();
    const q = await Queue.open(d, { hotBytes: 0 });
    const text = Buffer.from(`Subject: dribble\r\n\r\n${'y'.repeat(20_000)}\r\n`);
    q.appendBody('DRIP', text.subarray(0, 30));
    for (let i = 30; i < text.length; i++) q.appendBody('DRIP', text.subarray(i, i + 1));
    await q.commit('DRIP', envelope());
    const chunks: Buffer[] = [];
    for await (const c of q.readBody('DRIP')) chunks.push(c);
    expect(Buffer.concat(chunks)).toEqual(text);
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(text.length / 4096) + 1); // not one record per byte
    await q.close();
  });

  it('backlogBytes rises above the high-water mark while a write is held, and onDrain fires once it is written', async () => {
    const fs = new FaultFs();
    const q = await Queue.open(dir(), { fs, fsync: false });
    const hold = deferred();
    fs.gate.writev = hold.promise;
    for (let i = 0; i < 160; i++) q.appendBody('BULK', Buffer.alloc(65_536, i));
    expect(q.backlogBytes).toBeGreaterThan(BACKLOG_HIGH_WATER);
    let drained = false;
    q.onDrain(() => {
      drained = true;
    });
    for (let i = 0; i < 3; i++) await tick();
    expect(drained).toBe(false);
    delete fs.gate.writev;
    hold.release();
    await q.commit('BULK', envelope());
    expect(drained).toBe(true);
    expect(q.backlogBytes).toBe(0);
    await q.close();
  });

  it('newId is unique, 15 Crockford base32 chars, and increasing', () => {
    return Queue.open(dir()).then(async (q) => {
      const ids = Array.from({ length: 5000 }, () => q.newId());
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.every((id) => /^[0-9A-HJKMNP-TV-Z]{15}$/.test(id))).toBe(true);
      expect([...ids].sort()).toEqual(ids);
      await q.close();
    });
  });

  it('a second commit of the same id is refused', async () => {
    const q = await Queue.open(dir());
    await q.commit('DUP', envelope());
    await expect(q.commit('DUP', envelope())).rejects.toThrow(/already committed/);
    await q.close();
  });
});

describe('readQueue (read-only scan)', () => {
  it('never throws while another Queue instance is appending, and never writes', async () => {
    const d = dir();
    const q = await Queue.open(d, { segmentBytes: 128 * 1024 });
    let stop = false;
    const writer = (async () => {
      let i = 0;
      while (!stop) {
        const id = q.newId();
        q.appendBody(id, Buffer.alloc(3000 + (i % 5000), i & 0xff));
        q.appendBody(id, Buffer.alloc(i % 40_000, 1));
        await q.commit(id, envelope());
        i += 1;
      }
    })();
    let seen = 0;
    for (let n = 0; n < 40; n++) {
      const snap = await readQueue(d);
      expect(snap.report.corruptions).toEqual([]);
      for (const m of snap.messages.slice(-3)) expect((await readAll(snap.readBody(m.id))).length).toBe(m.size);
      expect(snap.messages.length).toBeGreaterThanOrEqual(seen);
      seen = snap.messages.length;
      await tick();
    }
    stop = true;
    await writer;
    await q.close();
    expect(seen).toBeGreaterThan(0);
  });

  it('on a missing directory returns an empty queue and creates nothing', async () => {
    const d = join(dir(), 'absent');
    expect((await readQueue(d)).messages).toEqual([]);
    expect(existsSync(d)).toBe(false);
  });
});
