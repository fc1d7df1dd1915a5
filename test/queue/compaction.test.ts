// Compaction on real files (src/queue/compactor.ts): dead segments deleted,
// long-lived messages copied forward with their state, bodies readable at any
// time, tombstones outliving the COMMITs they hide, and no I/O when idle.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from '../../src/queue/queue';
import type { Envelope, QueuedMessage } from '../../src/queue/queue';
import { scanSegment } from '../../src/queue/framing';
import { nodeFs, segmentName } from '../../src/queue/segment';
import type { QueueFs } from '../../src/queue/segment';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-compact-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const T0 = 1_764_316_800_000;
const SEG = 64 * 1024;

function envelope(recipients: string[], receivedAt = T0): Envelope {
  return { sender: 's@example.org', recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'h', receivedAt };
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

function body(i: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let j = 0; j < n; j++) b[j] = (i * 31 + j * 7) & 0xff;
  return b;
}

const logFiles = (d: string) => readdirSync(d).filter((f) => f.endsWith('.log')).sort();
const diskBytes = (d: string) => logFiles(d).reduce((n, f) => n + statSync(join(d, f)).size, 0);
const strip = (m: QueuedMessage) => ({ id: m.id, held: m.held, recipients: m.recipients });

/** compact() until it finds nothing more to do. */
async function compactFully(q: Queue): Promise<{ deletedSegments: number; copiedMessages: number }> {
  const total = { deletedSegments: 0, copiedMessages: 0 };
  for (let i = 0; i < 20; i++) {
    const r = await q.compact();
    total.deletedSegments += r.deletedSegments;
    total.copiedMessages += r.copiedMessages;
    if (r.deletedSegments === 0 && r.copiedMessages === 0) return total;
  }
  throw new Error('compaction never settles');
}

/** Many messages over many 64 KiB segments; all but a few long-deferred (two held) are finished. */
async function churn(q: Queue): Promise<Map<string, Buffer>> {
  const keep = new Map<string, Buffer>();
  for (let i = 0; i < 300; i++) {
    const b = body(i, 2000 + ((i * 977) % 4000));
    const id = await q.submit(envelope(['a@x', 'b@x'], T0 + i), b);
    if (i % 60 === 7) {
      keep.set(id, b);
      await q.recordOutcomes(id, [
        { index: 0, outcome: { kind: 'delivered', reply: '250 ok' } },
        { index: 1, outcome: { kind: 'deferred', reply: `451 try later ${i}`, nextAt: T0 + 86_400_000 + i } },
      ]);
      if (keep.size <= 2) await q.operate(id, 'hold');
    } else {
      await q.recordOutcomes(id, [0, 1].map((index) => ({ index, outcome: { kind: 'delivered' as const, reply: '250 ok' } })));
      await q.finish(id);
    }
  }
  return keep;
}

describe('compaction', () => {
  it('deletes old segments, copies the long-lived messages forward intact, and the result survives reopen', async () => {
    const d = dir();
    let q = await Queue.open(d, { segmentBytes: SEG });
    const keep = await churn(q);
    const before = q.list().map(strip);
    expect(before).toHaveLength(5);
    expect(logFiles(d).length).toBeGreaterThan(15);
    const r = await compactFully(q);
    expect(r.deletedSegments).toBeGreaterThan(15);
    expect(r.copiedMessages).toBeGreaterThanOrEqual(5);
    // bounded: about the live bytes plus the active segment, not the 1.3 MB written
    expect(logFiles(d).length).toBeLessThanOrEqual(2);
    expect(diskBytes(d)).toBeLessThan(2 * SEG + 4 * 30_000);
    const check = async (qq: Queue) => {
      expect(qq.list().map(strip)).toEqual(before);
      for (const [id, b] of keep) expect((await readAll(qq.readBody(id))).equals(b)).toBe(true);
      expect(qq.list().filter((m) => m.held)).toHaveLength(2);
    };
    await check(q);
    await q.close();
    q = await Queue.open(d, { segmentBytes: SEG });
    expect(q.recoveryReport.corruptions).toEqual([]);
    expect(q.recoveryReport.problems).toEqual([]);
    await check(q);
    // the copies are ordinary messages: they can be finished, and then everything but the active segment goes
    for (const id of keep.keys()) {
      await q.recordOutcomes(id, [{ index: 1, outcome: { kind: 'failed', reply: '550 gave up' } }]);
      await q.finish(id);
    }
    await compactFully(q);
    await q.close();
    expect(logFiles(d).length).toBeLessThanOrEqual(2);
    expect((await Queue.open(d)).list()).toEqual([]);
  });

  it('a body being read keeps its segment until the reader is done, even after the message moved', async () => {
    const d = dir();
    const q = await Queue.open(d, { segmentBytes: SEG, hotBytes: 0 });
    const big = body(1, 12_000); // under a quarter of segment 1, whose other messages all finish
    const id = await q.submit(envelope(['a@x']), big);
    for (let i = 0; i < 40; i++) {
      const other = await q.submit(envelope(['b@x']), body(i, 5000));
      await q.recordOutcomes(other, [{ index: 0, outcome: { kind: 'delivered', reply: '250' } }]);
      await q.finish(other);
    }
    const it = q.readBody(id)[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    const r1 = await compactFully(q);
    expect(r1.copiedMessages).toBe(1);
    expect(existsSync(join(d, segmentName(1)))).toBe(true); // pinned by the reader
    const rest: Buffer[] = [first.value as Buffer];
    for (let n = await it.next(); !n.done; n = await it.next()) rest.push(n.value);
    expect(Buffer.concat(rest).equals(big)).toBe(true);
    await compactFully(q);
    expect(existsSync(join(d, segmentName(1)))).toBe(false);
    expect((await readAll(q.readBody(id))).equals(big)).toBe(true);
    await q.close();
  });

  it('a DONE in a newer segment is kept while the COMMIT it hides survives in an older one', async () => {
    const d = dir();
    const q = await Queue.open(d, { segmentBytes: SEG });
    const long = await q.submit(envelope(['a@x']), body(0, 40_000)); // keeps segment 1 well over a quarter live
    const x = await q.submit(envelope(['b@x']), body(1, 10_000)); // COMMIT x in segment 1
    await q.recordOutcomes(x, [{ index: 0, outcome: { kind: 'delivered', reply: '250' } }]);
    const filler = await q.submit(envelope(['c@x']), body(2, 20_000)); // its COMMIT starts segment 2
    await q.operate(filler, 'delete');
    await q.finish(x); // DONE x in segment 2
    for (let i = 0; i < 12; i++) await q.submit(envelope(['c@x']), body(i, 6000)).then((id) => q.operate(id, 'delete'));
    expect(logFiles(d).length).toBeGreaterThanOrEqual(3);
    await compactFully(q);
    expect(existsSync(join(d, segmentName(1)))).toBe(true);
    expect(existsSync(join(d, segmentName(2)))).toBe(true); // its DONE still hides x's COMMIT in segment 1
    await q.close();
    const again = await Queue.open(d, { segmentBytes: SEG });
    expect(again.list().map((m) => m.id)).toEqual([long]);
    await again.recordOutcomes(long, [{ index: 0, outcome: { kind: 'delivered', reply: '250' } }]);
    await again.finish(long);
    await compactFully(again);
    expect(existsSync(join(d, segmentName(1)))).toBe(false);
    expect(existsSync(join(d, segmentName(2)))).toBe(false);
    await again.close();
  });

  it('a crash after the copies are durable but before the old segment is unlinked: each message once, then cleaned up', async () => {
    const d = dir();
    let failUnlink = true;
    const fs: QueueFs = {
      ...nodeFs,
      unlink: async (file) => {
        if (failUnlink && file.endsWith(segmentName(1))) throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
        await fsp.unlink(file);
      },
    };
    let q = await Queue.open(d, { segmentBytes: SEG, fs });
    const keep = new Map<string, Buffer>();
    for (let i = 0; i < 30; i++) {
      const b = body(i, 4000);
      const id = await q.submit(envelope(['a@x']), b);
      if (i % 10 === 0) keep.set(id, b);
      else await q.operate(id, 'delete');
    }
    await expect(compactFully(q)).rejects.toThrow('simulated crash');
    await q.close();
    failUnlink = false;
    q = await Queue.open(d, { segmentBytes: SEG, fs });
    expect(q.list().map((m) => m.id).sort()).toEqual([...keep.keys()].sort());
    for (const [id, b] of keep) expect((await readAll(q.readBody(id))).equals(b)).toBe(true);
    await compactFully(q);
    expect(existsSync(join(d, segmentName(1)))).toBe(false);
    expect(q.list().map((m) => m.id).sort()).toEqual([...keep.keys()].sort());
    await q.close();
  });

  it('a copy cut off by a crash anywhere before its COMMIT is ignored, and copying again after recovery works', async () => {
    const src = dir();
    const BIG = 1024 * 1024;
    let q = await Queue.open(src, { segmentBytes: BIG, fsync: false });
    const live = body(9, 150_000); // three BODY records
    const id = await q.submit(envelope(['a@x']), live);
    for (let i = 0; i < 80; i++) await q.submit(envelope(['b@x']), body(i, 12_000)).then((o) => q.operate(o, 'delete'));
    await q.submit(envelope(['c@x']), Buffer.alloc(0)); // rotation: segment 1 is sealed
    const before = new Map(logFiles(src).map((f) => [f, readFileSync(join(src, f))]));
    expect((await q.compact()).copiedMessages).toBe(1);
    await q.close();
    const active = logFiles(src).at(-1)!;
    const full = readFileSync(join(src, active));
    const from = before.get(active)!.length;
    const ends = scanSegment(full).records.filter((r) => r.end > from).map((r) => r.end);
    expect(ends.length).toBe(4); // 3 BODY + COMMIT
    for (const cut of [from + 5, ...ends.slice(0, 3), ends[2]! + 10]) {
      const d = dir();
      for (const [f, b] of before) writeFileSync(join(d, f), f === active ? full.subarray(0, cut) : b);
      q = await Queue.open(d, { segmentBytes: BIG, fsync: false });
      expect((await readAll(q.readBody(id))).equals(live)).toBe(true);
      expect((await q.compact()).copiedMessages).toBe(1);
      await q.close();
      q = await Queue.open(d, { segmentBytes: BIG, fsync: false });
      expect(q.recoveryReport.problems).toEqual([]);
      expect(q.list().map((m) => m.id).filter((m) => m === id)).toEqual([id]);
      expect((await readAll(q.readBody(id))).equals(live)).toBe(true);
      await q.close();
    }
  });

  it('costs no I/O at all when there is nothing to do', async () => {
    const d = dir();
    let calls = 0;
    const counted = <A extends unknown[], R>(f: (...a: A) => R) => (...a: A): R => {
      calls += 1;
      return f(...a);
    };
    const fs: QueueFs = { mkdir: counted(nodeFs.mkdir), readdir: counted(nodeFs.readdir), open: counted(nodeFs.open), unlink: counted(nodeFs.unlink!) };
    const q = await Queue.open(d, { segmentBytes: SEG, fs });
    for (let i = 0; i < 30; i++) await q.submit(envelope(['a@x']), body(i, 4000));
    await compactFully(q);
    const before = calls;
    expect(await q.compact()).toEqual({ deletedSegments: 0, copiedMessages: 0 });
    expect(calls).toBe(before);
    await q.close();
  });
});
