// The in-memory copy of recently committed bodies (src/queue/hot-bodies.ts): bounded, oldest out
// first, never a view of the caller's buffer, and the queue serves from it exactly what the log holds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HOT_MAX_MESSAGE, HotBodies } from '../../src/queue/hot-bodies';
import { Queue, type Envelope } from '../../src/queue/queue';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-hot-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
const env: Envelope = { sender: 's@example.org', recipients: ['r@example.net'], params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'h', receivedAt: 1_764_316_800_000 };
async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

describe('HotBodies', () => {
  it('evicts the oldest first and stays within its budget', () => {
    const h = new HotBodies(100);
    h.put('a', Buffer.alloc(40));
    h.put('b', Buffer.alloc(40));
    h.put('c', Buffer.alloc(40));
    expect([h.get('a'), h.get('b')?.length, h.get('c')?.length]).toEqual([undefined, 40, 40]);
    expect(h.size).toBe(80);
    h.delete('b');
    expect(h.size).toBe(40);
    h.put('big', Buffer.alloc(101));
    expect(h.get('big')).toBeUndefined();
  });
});

describe('the queue with a hot cache', () => {
  it('serves the same bytes from memory and from the log, and a later change to the caller\'s buffer does not leak in', async () => {
    const d = dir();
    const hot = await Queue.open(d);
    const chunk = Buffer.from('Subject: a\r\n\r\nfirst version\r\n');
    const id = hot.newId();
    hot.appendBody(id, chunk.subarray(0, 10));
    hot.appendBody(id, chunk.subarray(10));
    await hot.commit(id, env);
    chunk.fill(0x58); // the socket buffer is reused
    const fromMemory = await readAll(hot.readBody(id));
    expect(fromMemory.toString()).toBe('Subject: a\r\n\r\nfirst version\r\n');
    await hot.close();
    const cold = await Queue.open(d, { hotBytes: 0 });
    expect(await readAll(cold.readBody(id))).toEqual(fromMemory);
    await cold.close();
  });

  it('a body dribbled in one byte at a time is cached whole, with the prefix first', async () => {
    const q = await Queue.open(dir());
    const text = Buffer.from(`Subject: slow\r\n\r\n${'x'.repeat(9000)}\r\n`);
    const id = q.newId();
    for (let i = 0; i < text.length; i++) q.appendBody(id, text.subarray(i, i + 1));
    const prefix = Buffer.from('Authentication-Results: mx.test; spf=none\r\n');
    await q.commit(id, env, prefix);
    expect(await readAll(q.readBody(id))).toEqual(Buffer.concat([prefix, text]));
    await q.close();
  });

  it('a message over the size cap, and one finished, come from the log or not at all', async () => {
    const q = await Queue.open(dir());
    const big = Buffer.alloc(HOT_MAX_MESSAGE + 1, 0x61);
    const id = await q.submit(env, big);
    expect((await readAll(q.readBody(id))).equals(big)).toBe(true);
    await q.recordOutcomes(id, [{ index: 0, outcome: { kind: 'delivered', reply: '250 ok' } }]);
    await q.finish(id);
    expect(() => q.readBody(id)).toThrow(/no such message/);
    await q.close();
  });
});
