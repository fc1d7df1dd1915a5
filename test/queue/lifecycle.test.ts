// The delivery lifecycle of a queued message on real files: due → outcomes →
// retry time → finish (with or without a bounce), operator actions, and that
// every state survives a reopen because it is replayed from RCPT/OP/DONE records.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Queue } from '../../src/queue/queue';
import type { Envelope } from '../../src/queue/queue';
import { scanSegment } from '../../src/queue/framing';
import { decodeRecord } from '../../src/queue/records';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-life-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const T0 = 1_764_316_800_000;

function envelope(recipients: string[], sender = 'sender@example.org', receivedAt = T0): Envelope {
  return { sender, recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client.example', receivedAt };
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

const ids = (ms: { id: string }[]) => ms.map((m) => m.id);

describe('lifecycle', () => {
  it('commit → due → deferred (not due until nextAt) → due → delivered → finish → gone; reopen recovers each state', async () => {
    const d = dir();
    let q = await Queue.open(d);
    const id = await q.submit(envelope(['a@example.net', 'b@example.net']), Buffer.from('Subject: hi\r\n\r\nbody\r\n'));
    expect(ids(q.due(T0))).toEqual([id]);
    expect(q.nextWake()).toBeNull();

    await q.recordOutcomes(id, [
      { index: 0, outcome: { kind: 'delivered', reply: '250 2.0.0 ok' } },
      { index: 1, outcome: { kind: 'deferred', reply: '451 4.7.1 greylisted', nextAt: T0 + 60_000 } },
    ]);
    const check = (qq: Queue) => {
      expect(qq.get(id)?.recipients).toEqual([
        { address: 'a@example.net', state: 'delivered', attempts: 1, nextAttempt: null, lastReply: '250 2.0.0 ok' },
        { address: 'b@example.net', state: 'deferred', attempts: 1, nextAttempt: T0 + 60_000, lastReply: '451 4.7.1 greylisted' },
      ]);
      expect(qq.due(T0 + 59_999)).toEqual([]);
      expect(ids(qq.due(T0 + 60_000))).toEqual([id]);
      expect(qq.nextWake()).toBe(T0 + 60_000);
    };
    check(q);
    await q.close();
    q = await Queue.open(d);
    check(q);

    await q.recordOutcomes(id, [{ index: 1, outcome: { kind: 'deferred', reply: '451 again', nextAt: T0 + 360_000 } }]);
    expect(q.get(id)?.recipients[1]).toMatchObject({ attempts: 2, nextAttempt: T0 + 360_000, lastReply: '451 again' });
    await q.recordOutcomes(id, [{ index: 1, outcome: { kind: 'delivered', reply: '250 at last' } }]);
    expect(q.get(id)?.recipients[1]).toMatchObject({ state: 'delivered', attempts: 3, lastReply: '250 at last' });
    expect(q.due(Number.MAX_SAFE_INTEGER)).toEqual([]);
    expect(await q.finish(id)).toBeNull();
    expect(q.list()).toEqual([]);
    await q.close();
    q = await Queue.open(d);
    expect(q.list()).toEqual([]);
    await q.close();
  });

  it('MAIL parameters come back with the message, for the next hop (and survive a reopen)', async () => {
    const d = dir();
    let q = await Queue.open(d);
    const params = { size: 1234, body: '8BITMIME' as const, smtputf8: true };
    const id = await q.submit({ ...envelope(['ü@example.net']), params }, Buffer.from('x'));
    expect(q.due(T0)[0]?.params).toEqual(params);
    await q.close();
    q = await Queue.open(d);
    expect(q.get(id)?.params).toEqual(params);
    await q.close();
  });

  it('attempts count on across outcomes appended before the first is applied', async () => {
    const q = await Queue.open(dir());
    const id = await q.submit(envelope(['a@x']), Buffer.from('x'));
    const p1 = q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'deferred', reply: '1', nextAt: T0 + 1 } }]);
    const p2 = q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'deferred', reply: '2', nextAt: T0 + 2 } }]);
    await Promise.all([p1, p2]);
    expect(q.get(id)?.recipients[0]).toMatchObject({ attempts: 2, lastReply: '2', nextAttempt: T0 + 2 });
    await q.close();
  });

  it('due() is oldest first, skips held messages and final recipients; nextWake ignores held messages', async () => {
    const q = await Queue.open(dir());
    const late = await q.submit(envelope(['a@x'], 's@x', T0 + 10), Buffer.from('late'));
    const early = await q.submit(envelope(['a@x'], 's@x', T0), Buffer.from('early'));
    expect(ids(q.due(T0))).toEqual([early, late]);
    await q.recordOutcomes(early, [{ index: 0, outcome: { kind: 'deferred', reply: 'r', nextAt: T0 + 500 } }]);
    expect(await q.operate(late, 'hold')).toBe(true);
    expect(q.due(T0 + 1000).map((m) => m.id)).toEqual([early]);
    expect(q.nextWake()).toBe(T0 + 500);
    expect(await q.operate(early, 'hold')).toBe(true);
    expect(q.nextWake()).toBeNull();
    expect(q.due(T0 + 1000)).toEqual([]);
    await q.close();
  });

  it('hold, release, flush and delete are durable across reopen; unknown ids answer false', async () => {
    const d = dir();
    let q = await Queue.open(d);
    const a = await q.submit(envelope(['a@x', 'b@x']), Buffer.from('A'));
    const b = await q.submit(envelope(['c@x']), Buffer.from('B'));
    const c = await q.submit(envelope(['d@x']), Buffer.from('C'));
    await q.recordOutcomes(a, [
      { index: 0, outcome: { kind: 'deferred', reply: '451 later', nextAt: T0 + 3_600_000 } },
      { index: 1, outcome: { kind: 'failed', reply: '550 no' } },
    ]);
    expect(await q.operate(a, 'hold')).toBe(true);
    expect(await q.operate(b, 'hold')).toBe(true);
    expect(await q.operate(b, 'release')).toBe(true);
    expect(await q.operate(c, 'delete')).toBe(true);
    expect(await q.operate('NOSUCH', 'hold')).toBe(false);
    expect(await q.operate(c, 'release')).toBe(false);
    await q.close();
    q = await Queue.open(d);
    expect(ids(q.list())).toEqual([a, b]);
    expect(q.get(a)?.held).toBe(true);
    expect(q.get(b)?.held).toBe(false);
    expect(q.get(a)?.recipients[0]).toMatchObject({ state: 'deferred', nextAttempt: T0 + 3_600_000 });
    expect(await q.operate(a, 'flush')).toBe(true);
    expect(q.get(a)?.recipients.map((r) => r.state)).toEqual(['queued', 'failed']);
    expect(q.get(a)?.recipients[0]).toMatchObject({ attempts: 1, lastReply: '451 later' });
    expect(ids(q.due(T0))).toEqual([b]); // a is flushed but still held
    await q.close();
    q = await Queue.open(d);
    expect(q.get(a)?.recipients[0]?.state).toBe('queued');
    expect(await q.operate(a, 'release')).toBe(true);
    expect(ids(q.due(T0))).toEqual([a, b]);
    await q.close();
  });

  it('onAvailable fires after the fsync for commits, submits, bounces, releases and flushes; never for holds', async () => {
    const q = await Queue.open(dir());
    const seen: string[] = [];
    q.onAvailable((id) => seen.push(id));
    q.onAvailable(() => {
      throw new Error('a bad listener does not stop the others or the queue');
    });
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    await q.commit('SMTP1', envelope(['a@x']));
    const sub = await q.submit(envelope(['a@x']), Buffer.from('x'));
    await q.operate(sub, 'hold');
    await q.operate(sub, 'flush'); // held: not available
    await q.operate(sub, 'release');
    await q.recordOutcomes('SMTP1', [{ index: 0, outcome: { kind: 'failed', reply: '550 no' } }]);
    const bounce = await q.finish('SMTP1', { envelope: envelope(['sender@example.org'], ''), body: Buffer.from('bounce') });
    expect(seen).toEqual(['SMTP1', sub, sub, bounce]);
    expect(warn).toHaveBeenCalledTimes(4);
    warn.mockRestore();
    await q.close();
  });

  it('finish refuses while a recipient is open, and is a no-op for a message already gone', async () => {
    const q = await Queue.open(dir());
    const id = await q.submit(envelope(['a@x', 'b@x']), Buffer.from('x'));
    await q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'delivered', reply: '250' } }]);
    await expect(q.finish(id)).rejects.toThrow(/recipient 1 is not final/);
    // an outcome not yet applied counts: finish right after recordOutcomes without awaiting it
    const p = q.recordOutcomes(id, [{ index: 1, outcome: { kind: 'failed', reply: '550' } }]);
    const f = q.finish(id);
    await p;
    expect(await f).toBeNull();
    expect(q.list()).toEqual([]);
    expect(await q.finish(id)).toBeNull();
    await q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'delivered', reply: 'late' } }]); // ignored
    await expect(q.recordOutcomes('NOPE', [])).resolves.toBeUndefined();
    await q.close();
  });

  it('recordOutcomes refuses an out-of-range recipient without appending anything', async () => {
    const q = await Queue.open(dir());
    const id = await q.submit(envelope(['a@x']), Buffer.from('x'));
    await expect(q.recordOutcomes(id, [
      { index: 0, outcome: { kind: 'delivered', reply: '250' } },
      { index: 1, outcome: { kind: 'delivered', reply: '250' } },
    ])).rejects.toThrow(RangeError);
    expect(q.get(id)?.recipients[0]?.state).toBe('queued');
    await q.close();
  });
});

describe('bounces', () => {
  it('finish with a bounce: one COMMIT that also finishes the original; the bounce is listed with sender <>', async () => {
    const d = dir();
    let q = await Queue.open(d);
    const id = await q.submit(envelope(['gone@example.net']), Buffer.from('original'));
    await q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'failed', reply: '550 5.1.1 no such user' } }]);
    const dsn = Buffer.alloc(150_000, 0x41); // several BODY records
    const bounce = await q.finish(id, { envelope: envelope(['sender@example.org'], ''), body: dsn });
    expect(bounce).not.toBeNull();
    const check = async (qq: Queue) => {
      expect(ids(qq.list())).toEqual([bounce]);
      expect(qq.get(bounce!)).toMatchObject({ sender: '', size: dsn.length, recipients: [{ address: 'sender@example.org', state: 'queued' }] });
      expect((await readAll(qq.readBody(bounce!))).equals(dsn)).toBe(true);
    };
    await check(q);
    await q.close();
    q = await Queue.open(d);
    await check(q);
    await q.close();
    const records = scanSegment(readFileSync(join(d, readdirSync(d).find((f) => f.endsWith('.log'))!))).records.map((r) => decodeRecord(r.payload));
    const last = records.at(-1);
    expect(last?.ok && last.record.kind === 'commit' && last.record.finishes).toBe(id);
    expect(records.some((r) => r.ok && r.record.kind === 'done')).toBe(false);
  });
});
