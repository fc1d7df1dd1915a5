// The queue lifecycle and compaction against a model (DESIGN.md "An acknowledged
// message is never lost"; STYLE.md §2 compaction): for any sequence of commits,
// outcomes, finishes (with and without bounces), operator actions and
// compactions, a crash during any one step leaves a directory from which
// recovery yields exactly the model's state before that step or, once the
// step's writes are all on disk, after it. Nothing lost, nothing twice, no
// finished message back. Crash images are the realistic ones:
//   - the step's appends torn at any byte (earlier segments complete), with any
//     prefix of the unlinks it made BEFORE appending (compaction deletes dead
//     segments first) → the state before the step;
//   - all its appends on disk, with any prefix of its unlinks → the state after.
// Each image is then compacted and reopened again, which must change nothing.
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue } from '../src/queue/queue';
import type { Envelope, QueuedRecipient, RcptOutcome } from '../src/queue/queue';
import { nodeFs } from '../src/queue/segment';
import type { QueueFs } from '../src/queue/segment';

const T0 = 1_764_316_800_000;
const SEG = 4 * 1024;

type Cmd =
  | { t: 'submit'; rcpts: number; size: number }
  | { t: 'outcome'; pick: number; rcpt: number; kind: RcptOutcome['kind']; delay: number }
  | { t: 'finish'; pick: number; bounce: boolean }
  | { t: 'op'; pick: number; op: 'hold' | 'release' | 'delete' | 'flush' }
  | { t: 'compact' };

const arbCmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('submit' as const), rcpts: fc.integer({ min: 1, max: 3 }), size: fc.oneof(fc.nat(300), fc.integer({ min: 600, max: 3000 })) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('outcome' as const), pick: fc.nat(), rcpt: fc.nat(), kind: fc.constantFrom('delivered' as const, 'deferred' as const, 'failed' as const), delay: fc.nat(1_000_000) }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('finish' as const), pick: fc.nat(), bounce: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('op' as const), pick: fc.nat(), op: fc.constantFrom('hold' as const, 'release' as const, 'delete' as const, 'flush' as const) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'compact' as const }) },
);

interface MMsg {
  id: string;
  sender: string;
  held: boolean;
  recipients: QueuedRecipient[];
  body: Buffer;
}
type Model = Map<string, MMsg>;

const clone = (m: Model): Model => new Map([...m].map(([k, v]) => [k, { ...v, recipients: v.recipients.map((r) => ({ ...r })) }]));

function envelope(sender: string, recipients: string[]): Envelope {
  return { sender, recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'h', receivedAt: T0 };
}

function bodyOf(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 131 + i * 17) & 0xff;
  return b;
}

/** One durable Queue call and its effect on the model. */
type Step = (q: Queue, m: Model) => Promise<void>;

function outcomeStep(id: string, index: number, outcome: RcptOutcome): Step {
  return async (q, m) => {
    await q.recordOutcomes(id, [{ index, outcome }]);
    const r = m.get(id)?.recipients[index];
    if (!r) return;
    r.attempts += 1;
    r.state = outcome.kind;
    r.lastReply = outcome.reply;
    r.nextAttempt = outcome.kind === 'deferred' ? outcome.nextAt : null;
  };
}

/** Expands a command into steps, given the model as it will be when they run (picks resolve against live ids). */
function stepsFor(cmd: Cmd, m: Model, seed: number): Step[] {
  const ids = [...m.keys()].sort();
  const id = ids.length > 0 && 'pick' in cmd ? ids[cmd.pick % ids.length]! : null;
  const msg = id === null ? undefined : m.get(id);
  switch (cmd.t) {
    case 'submit':
      return [async (q, mm) => {
        const rcpts = Array.from({ length: cmd.rcpts }, (_, i) => `r${i}@example.net`);
        const body = bodyOf(cmd.size, seed);
        const nid = await q.submit(envelope(`s${seed}@example.org`, rcpts), body);
        mm.set(nid, { id: nid, sender: `s${seed}@example.org`, held: false, body, recipients: rcpts.map((address) => ({ address, state: 'queued', attempts: 0, nextAttempt: null, lastReply: null })) });
      }];
    case 'outcome': {
      if (!msg || id === null) return [];
      const index = cmd.rcpt % msg.recipients.length;
      const reply = `${cmd.kind} ${seed}`;
      const o: RcptOutcome = cmd.kind === 'deferred' ? { kind: 'deferred', reply, nextAt: T0 + cmd.delay } : { kind: cmd.kind, reply };
      return [outcomeStep(id, index, o)];
    }
    case 'finish': {
      if (!msg || id === null) return [];
      const open = msg.recipients.flatMap((r, i) => (r.state === 'queued' || r.state === 'deferred' ? [i] : []));
      const closing = open.map((i) => outcomeStep(id, i, { kind: 'failed', reply: '550 model' }));
      return [...closing, async (q, mm) => {
        const orig = mm.get(id)!;
        const body = bodyOf(300 + ((seed * 389) % 1500), seed + 1);
        const b = await q.finish(id, cmd.bounce ? { envelope: envelope('', [orig.sender]), body } : undefined);
        mm.delete(id);
        if (b !== null) mm.set(b, { id: b, sender: '', held: false, body, recipients: [{ address: orig.sender, state: 'queued', attempts: 0, nextAttempt: null, lastReply: null }] });
      }];
    }
    case 'op':
      if (id === null) return [];
      return [async (q, mm) => {
        expect(await q.operate(id, cmd.op)).toBe(true);
        const e = mm.get(id)!;
        if (cmd.op === 'delete') mm.delete(id);
        else if (cmd.op === 'hold' || cmd.op === 'release') e.held = cmd.op === 'hold';
        else for (const r of e.recipients) if (r.state === 'deferred') Object.assign(r, { state: 'queued', nextAttempt: null });
      }];
    case 'compact':
      return [async (q) => void (await q.compact())];
  }
}

// ---------------------------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'petrel-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Files = Map<string, Buffer>;
const snapshot = (d: string): Files => new Map(readdirSync(d).filter((f) => f.endsWith('.log')).map((f) => [f, readFileSync(join(d, f))]));

/** Records, in order, every segment write and unlink the queue makes. */
function tracingFs(events: string[]): QueueFs {
  return {
    ...nodeFs,
    async open(file, flags) {
      const fh = await nodeFs.open(file, flags);
      return Object.assign(Object.create(fh) as typeof fh, {
        writev: (b: Buffer[], p: number) => {
          events.push(`write ${basename(file)}`);
          return fh.writev(b, p);
        },
        read: fh.read.bind(fh), datasync: fh.datasync.bind(fh), sync: fh.sync.bind(fh), truncate: fh.truncate.bind(fh), stat: fh.stat.bind(fh), close: fh.close.bind(fh),
      });
    },
    async unlink(file) {
      events.push(`unlink ${basename(file)}`);
      await fsp.unlink(file);
    },
  };
}

async function observed(q: Queue): Promise<object[]> {
  const out: object[] = [];
  for (const m of q.list().sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const parts: Buffer[] = [];
    for await (const b of q.readBody(m.id)) parts.push(b);
    out.push({ id: m.id, sender: m.sender, held: m.held, recipients: m.recipients, body: Buffer.concat(parts).toString('base64') });
  }
  return out;
}

const expected = (m: Model) =>
  [...m.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((e) => ({ id: e.id, sender: e.sender, held: e.held, recipients: e.recipients, body: e.body.toString('base64') }));

let dirs = 0;

/** Recovers `files`; the state must be `want`, and stay so across compaction and another reopen. */
async function checkImage(files: Files, want: Model): Promise<void> {
  const d = join(tmp, `img-${dirs++}`);
  mkdirSync(d);
  for (const [f, b] of files) writeFileSync(join(d, f), b);
  let q = await Queue.open(d, { fsync: false, segmentBytes: SEG });
  expect(q.recoveryReport.corruptions).toEqual([]);
  expect(await observed(q)).toEqual(expected(want));
  for (let i = 0; i < 4; i++) await q.compact();
  expect(await observed(q)).toEqual(expected(want));
  await q.close();
  q = await Queue.open(d, { fsync: false, segmentBytes: SEG });
  expect(await observed(q)).toEqual(expected(want));
  await q.close();
  rmSync(d, { recursive: true, force: true });
}

/** Directory images of a crash during a step that turned `before` into `after`. */
function crashImages(before: Files, after: Files, events: string[], cut: number, keep: number): { files: Files; complete: boolean } {
  const unlinks = events.filter((e) => e.startsWith('unlink ')).map((e) => e.slice(7));
  const firstWrite = events.findIndex((e) => e.startsWith('write '));
  const preUnlinks = events.slice(0, firstWrite < 0 ? events.length : firstWrite).filter((e) => e.startsWith('unlink ')).length;
  const appended: [string, Buffer][] = [];
  for (const [f, b] of [...after].sort()) {
    const old = before.get(f) ?? Buffer.alloc(0);
    expect(b.subarray(0, old.length).equals(old)).toBe(true); // segments are append-only
    if (b.length > old.length) appended.push([f, b]);
  }
  const total = appended.reduce((n, [f, b]) => n + b.length - (before.get(f)?.length ?? 0), 0);
  const p = cut < 0 ? total : cut % (total + 1); // -1: every write of the step made it
  const complete = p === total;
  const files: Files = new Map(before);
  for (const f of unlinks.slice(0, keep % ((complete ? unlinks.length : preUnlinks) + 1))) files.delete(f);
  let left = p;
  for (const [f, b] of appended) {
    const old = before.get(f)?.length ?? 0;
    const take = Math.min(left, b.length - old);
    left -= take;
    if (old + take > 0) files.set(f, b.subarray(0, old + take));
  }
  return { files, complete };
}

describe('queue lifecycle + compaction vs a model, crash during any step', () => {
  it('recovery yields the model state before the crashed step, or after it once its writes are complete', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(arbCmd, { minLength: 20, maxLength: 50 }), fc.nat(), fc.array(fc.tuple(fc.oneof(fc.constant(-1), fc.nat()), fc.nat()), { minLength: 1, maxLength: 3 }), fc.boolean(), async (generated, crashAt, cuts, lastCompacts) => {
        const cmds: Cmd[] = lastCompacts ? [...generated, { t: 'compact' }] : generated;
        const d = join(tmp, `run-${run++}`);
        const events: string[] = [];
        const q = await Queue.open(d, { fsync: false, segmentBytes: SEG, fs: tracingFs(events) });
        const model: Model = new Map();
        const target = lastCompacts ? cmds.length - 1 : cmds.length - 1 - (crashAt % Math.ceil(cmds.length / 2)); // late: after some churn
        let crashed = false;
        for (let ci = 0; ci < cmds.length && !crashed; ci++) {
          const steps = stepsFor(cmds[ci]!, model, ci);
          for (const [si, step] of steps.entries()) {
            if (ci < target || si < steps.length - 1) {
              await step(q, model);
              continue;
            }
            const before = snapshot(d);
            const mBefore = clone(model);
            events.length = 0;
            await step(q, model);
            const after = snapshot(d);
            for (const [cut, keep] of cuts) {
              const img = crashImages(before, after, events, cut, keep);
              await checkImage(img.files, img.complete ? model : mBefore);
            }
            crashed = true;
          }
        }
        if (!crashed) await checkImage(snapshot(d), model);
        await q.close();
        rmSync(d, { recursive: true, force: true });
      }),
      { numRuns: 150 },
    );
  });
});
