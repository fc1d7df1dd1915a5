// Header fields known only at end of data (DKIM-Signature, Authentication-Results)
// are stored as a prefix chunk after the body and delivered first: through a
// restart, through compaction, through the read-only CLI scan, and a damaged
// prefix is caught by the body checksum like any other chunk.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from '../../src/queue/queue';
import type { Envelope } from '../../src/queue/queue';
import { readQueue } from '../../src/queue/reader';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'petrel-prefix-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const env: Envelope = { sender: 's@example.org', recipients: ['r@example.net'], params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'h', receivedAt: 1_764_316_800_000 };
const PREFIX = Buffer.from('DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=k;\r\n\tb=abc\r\n');

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

/** A body of several chunks (> 64 KiB), sent in uneven pieces like a session does. */
function bigBody(): Buffer {
  const b = Buffer.alloc(150_000, 0x61);
  b.write('Subject: x\r\n\r\n', 0);
  return b;
}

async function commitWithPrefix(q: Queue, body: Buffer): Promise<string> {
  const id = q.newId();
  q.appendBody(id, body.subarray(0, 70_000));
  q.appendBody(id, body.subarray(70_000));
  await q.commit(id, env, PREFIX);
  return id;
}

describe('queue prefix chunk', () => {
  it('the in-memory copy for delivery has the prefix first too', async () => {
    const q = await Queue.open(dir());
    const body = Buffer.from('Subject: hot\r\n\r\nsmall\r\n');
    const id = await commitWithPrefix(q, Buffer.concat([body, Buffer.alloc(0)]));
    expect(await readAll(q.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
    await q.close();
  });

  it('delivers the prefix first, and the size counts it', async () => {
    const q = await Queue.open(dir());
    const body = bigBody();
    const id = await commitWithPrefix(q, body);
    expect(await readAll(q.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
    expect(q.list().find((m) => m.id === id)?.size).toBe(body.length + PREFIX.length);
    await q.close();
  });

  it('keeps it through a restart and in the read-only scan', async () => {
    const d = dir();
    const body = bigBody();
    const q = await Queue.open(d);
    const id = await commitWithPrefix(q, body);
    const plain = await q.submit(env, Buffer.from('Subject: y\r\n\r\nno prefix\r\n'));
    await q.close();
    const again = await Queue.open(d);
    expect(await readAll(again.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
    expect((await readAll(again.readBody(plain))).toString()).toBe('Subject: y\r\n\r\nno prefix\r\n');
    await again.close();
    const snap = await readQueue(d);
    expect(await readAll(snap.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
  });

  it('survives compaction copying the message forward', async () => {
    const d = dir();
    const q = await Queue.open(d, { segmentBytes: 64 * 1024 });
    const body = bigBody();
    const id = await commitWithPrefix(q, body);
    // fill and finish other messages so the first segments become mostly dead and the survivor is copied
    for (let i = 0; i < 6; i++) {
      const other = await q.submit(env, Buffer.alloc(40_000, 0x62));
      await q.recordOutcomes(other, [{ index: 0, outcome: { kind: 'delivered', reply: '250 ok' } }]);
      await q.finish(other);
    }
    let copied = 0;
    for (let i = 0; i < 10; i++) {
      const r = await q.compact();
      copied += r.copiedMessages;
      if (r.deletedSegments === 0 && r.copiedMessages === 0) break;
    }
    expect(copied).toBeGreaterThan(0);
    expect(await readAll(q.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
    await q.close();
    const again = await Queue.open(d, { segmentBytes: 64 * 1024 });
    expect(await readAll(again.readBody(id))).toEqual(Buffer.concat([PREFIX, body]));
    await again.close();
  });

  it('a damaged prefix is never delivered: not while running, not after a restart', async () => {
    const d = dir();
    const q = await Queue.open(d, { hotBytes: 0 }); // read back from the log, not from the in-memory copy
    const id = await commitWithPrefix(q, Buffer.from('Subject: z\r\n\r\nbody\r\n'));
    const log = readdirSync(d).filter((f) => f.endsWith('.log')).sort()[0] ?? '';
    const bytes = readFileSync(join(d, log));
    const at = bytes.indexOf('a=ed25519');
    expect(at).toBeGreaterThan(0);
    bytes[at] = 0x41;
    writeFileSync(join(d, log), bytes); // in place, under the running queue's positional reads
    await expect(readAll(q.readBody(id))).rejects.toThrow(/unreadable/);
    await q.close();
    const again = await Queue.open(d);
    expect(again.list().map((m) => m.id)).not.toContain(id);
    await again.close();
  });

  it('refuses an empty or oversized prefix', async () => {
    const q = await Queue.open(dir());
    const id = q.newId();
    q.appendBody(id, Buffer.from('x\r\n'));
    await expect(q.commit(id, env, Buffer.alloc(0))).rejects.toThrow(RangeError);
    await expect(q.commit(id, env, Buffer.alloc(70_000))).rejects.toThrow(RangeError);
    await q.close();
  });
});
