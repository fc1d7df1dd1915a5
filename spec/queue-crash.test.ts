// THE queue property (DESIGN.md "An acknowledged message is never lost"): for any
// sequence of appends (BODY chunks and COMMITs of interleaved messages, some never
// committed) and a crash that cuts the log at ANY byte, recovery returns exactly
// the messages whose COMMIT lies wholly within the cut, bodies intact byte for byte.
// Checked on the pure layers (framing + records + index) and through the Queue class.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeSegmentHeader, frameRecord, readRecordAt, scanSegment } from '../src/queue/framing';
import { apply, dropAllPending, emptyIndex } from '../src/queue/index';
import { decodeRecord, encodeRecord } from '../src/queue/records';
import type { QueueRecord } from '../src/queue/records';
import { Queue } from '../src/queue/queue';

interface Msg {
  id: string;
  chunks: Buffer[];
  committed: boolean;
}

const arbChunk = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 30_000, max: 65_536 }).map((n) => Buffer.alloc(n, n % 251)) },
);

const arbMessages = fc
  .array(fc.record({ chunks: fc.array(arbChunk, { maxLength: 4 }), committed: fc.boolean() }), { minLength: 1, maxLength: 6 })
  .map((ms) => ms.map((m, i): Msg => ({ id: `M${i}`, ...m })));

/** Interleaves the messages' steps (each chunk, then the commit) in the order the picks choose. */
function schedule(msgs: Msg[], picks: number[]): { msg: Msg; step: number }[] {
  const next = msgs.map(() => 0);
  const steps = (m: Msg) => m.chunks.length + (m.committed ? 1 : 0);
  const out: { msg: Msg; step: number }[] = [];
  let p = 0;
  for (;;) {
    const open = msgs.map((m, i) => i).filter((i) => (next[i] ?? 0) < steps(msgs[i]!));
    if (open.length === 0) return out;
    const i = open[(picks[p++ % Math.max(picks.length, 1)] ?? 0) % open.length]!;
    out.push({ msg: msgs[i]!, step: next[i]! });
    next[i]! += 1;
  }
}

function toRecord(msg: Msg, step: number): QueueRecord {
  const chunk = msg.chunks[step];
  if (chunk) return { kind: 'body', id: msg.id, seq: step, bytes: chunk };
  const size = msg.chunks.reduce((n, c) => n + c.length, 0);
  return {
    kind: 'commit', id: msg.id, receivedAt: 1_700_000_000_000, sender: 'a@example.org', recipients: [`${msg.id}@example.net`],
    params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client', size, chunkCount: msg.chunks.length, bodyCrc: 0,
  };
}

/** Pure recovery of one segment image: the ids committed, with their bodies read back by location. */
function recover(bytes: Buffer): { bodies: Map<string, Buffer>; corruptions: number } {
  const scan = scanSegment(bytes);
  const ix = emptyIndex();
  for (const r of scan.records) {
    const d = decodeRecord(r.payload);
    if (d.ok) apply(ix, d.record, { segment: 1, offset: r.offset, end: r.end });
  }
  dropAllPending(ix);
  const bodies = new Map<string, Buffer>();
  for (const [id, e] of ix.messages) {
    const parts = e.chunks.map((loc) => {
      const d = decodeRecord(readRecordAt(bytes.subarray(loc.offset, loc.end), loc.offset)!);
      return d.ok && d.record.kind === 'body' ? d.record.bytes : Buffer.from('BAD');
    });
    bodies.set(id, Buffer.concat(parts));
  }
  return { bodies, corruptions: scan.corruptions.length };
}

const HEADER_END = frameRecord(0, encodeSegmentHeader(1)).offset;

describe('crash at any byte (pure layers)', () => {
  it('recovers exactly the messages whose COMMIT lies wholly within the cut', () => {
    fc.assert(
      fc.property(arbMessages, fc.array(fc.nat(), { maxLength: 40 }), fc.nat(), (msgs, picks, at) => {
        const parts: Buffer[] = [];
        let offset = 0;
        const commitEnds = new Map<string, number>();
        ({ offset } = push(parts, offset, encodeSegmentHeader(1)));
        for (const { msg, step } of schedule(msgs, picks)) {
          const r = toRecord(msg, step);
          ({ offset } = push(parts, offset, encodeRecord(r)));
          if (r.kind === 'commit') commitEnds.set(r.id, offset);
        }
        const log = Buffer.concat(parts);
        const cut = at % (log.length + 1);
        const { bodies, corruptions } = recover(log.subarray(0, cut));
        const expected = msgs.filter((m) => (commitEnds.get(m.id) ?? Infinity) <= cut);
        expect([...bodies.keys()].sort()).toEqual(expected.map((m) => m.id).sort());
        for (const m of expected) expect(bodies.get(m.id)!.equals(Buffer.concat(m.chunks))).toBe(true);
        // a cut inside the segment header itself is reported by the scan (recovery treats it as a torn creation)
        if (cut >= HEADER_END) expect(corruptions).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });
});

function push(parts: Buffer[], offset: number, payload: Buffer): { offset: number } {
  const f = frameRecord(offset, payload);
  parts.push(...f.buffers);
  return { offset: f.offset };
}

// ---------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'petrel-crash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes the scheduled appends through a real Queue; returns the segment file and each COMMIT's end offset. */
async function writeThroughQueue(msgs: Msg[], picks: number[]): Promise<{ file: Buffer; commitEnds: Map<string, number> }> {
  const dir = join(tmp, 'source');
  rmSync(dir, { recursive: true, force: true });
  const q = await Queue.open(dir, { fsync: false });
  const commits: Promise<void>[] = [];
  for (const { msg, step } of schedule(msgs, picks)) {
    const chunk = msg.chunks[step];
    if (chunk) q.appendBody(msg.id, chunk);
    else commits.push(q.commit(msg.id, { ...envelope(msg.id) }));
    if (step % 2 === 0) await Promise.resolve(); // let some appends go out in separate batches
  }
  await Promise.all(commits);
  await q.close();
  const file = readFileSync(join(dir, '00000001.log'));
  const commitEnds = new Map<string, number>();
  for (const r of scanSegment(file).records) {
    const d = decodeRecord(r.payload);
    if (d.ok && d.record.kind === 'commit') commitEnds.set(d.record.id, r.end);
  }
  return { file, commitEnds };
}

function envelope(id: string) {
  return { sender: 'a@example.org', recipients: [`${id}@example.net`], params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client', receivedAt: 1_700_000_000_000 };
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

describe('crash at any byte (real Queue on a temp dir)', () => {
  it('reopening a segment cut anywhere yields exactly the committed messages, and appending resumes cleanly', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(arbMessages, fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), async (msgs, picks, cuts) => {
        const { file, commitEnds } = await writeThroughQueue(msgs, picks);
        for (const at of cuts) {
          const cut = at % (file.length + 1);
          const dir = join(tmp, `cut-${run++}`);
          mkdirSync(dir);
          writeFileSync(join(dir, '00000001.log'), file.subarray(0, cut));
          const q = await Queue.open(dir, { fsync: false });
          const expected = msgs.filter((m) => (commitEnds.get(m.id) ?? Infinity) <= cut);
          expect(q.list().map((m) => m.id).sort()).toEqual(expected.map((m) => m.id).sort());
          for (const m of expected) expect((await readAll(q.readBody(m.id))).equals(Buffer.concat(m.chunks))).toBe(true);
          expect(q.recoveryReport.corruptions).toEqual([]);
          q.appendBody('AFTER', Buffer.from('after the crash'));
          await q.commit('AFTER', envelope('AFTER'));
          await q.close();
          const again = await Queue.open(dir, { fsync: false });
          expect(again.list().map((m) => m.id).sort()).toEqual([...expected.map((m) => m.id), 'AFTER'].sort());
          expect((await readAll(again.readBody('AFTER'))).toString()).toBe('after the crash');
          await again.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});

// ---------------------------------------------------------------------------
// A bounce and the DONE of the message it reports on are one COMMIT record
// (records.ts `finishes`): at any cut, either the bounce is there and the
// original is gone, or the original is there (to be finished again) and there
// is no bounce. Never both (two DSNs), never neither (a lost failure report).

describe('finish with a bounce, crash at any byte', () => {
  it('recovers exactly one of {original, bounce}', async () => {
    const dir = join(tmp, 'bounce-src');
    const q = await Queue.open(dir, { fsync: false });
    const original = await q.submit(envelope('ORIG'), Buffer.from('the original message\r\n'));
    await q.recordOutcomes(original, [{ index: 0, outcome: { kind: 'failed', reply: '550 5.1.1 unknown user' } }]);
    await q.close();
    const from = readFileSync(join(dir, '00000001.log')).length;
    const q2 = await Queue.open(dir, { fsync: false });
    const dsn = Buffer.alloc(140_000, 0x2e); // three BODY records before the COMMIT
    const bounce = await q2.finish(original, { envelope: { ...envelope('B'), sender: '', recipients: ['a@example.org'] }, body: dsn });
    await q2.close();
    const file = readFileSync(join(dir, '00000001.log'));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (at) => {
        const cut = from + (at % (file.length - from + 1));
        const d = join(tmp, `bounce-cut-${run++}`);
        mkdirSync(d);
        writeFileSync(join(d, '00000001.log'), file.subarray(0, cut));
        const r = await Queue.open(d, { fsync: false });
        const ids = r.list().map((m) => m.id);
        if (cut === file.length) {
          expect(ids).toEqual([bounce]);
          expect((await readAll(r.readBody(bounce!))).equals(dsn)).toBe(true);
        } else {
          expect(ids).toEqual([original]);
          expect(r.get(original)?.recipients[0]?.state).toBe('failed');
        }
        await r.close();
        rmSync(d, { recursive: true, force: true });
      }),
      { numRuns: 150, examples: [[file.length - from], [file.length - from - 1], [0]] },
    );
  });
});
