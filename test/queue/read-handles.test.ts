// SharedHandles: one open per segment for any number of readers; a handle is closed only when its
// last reader lets go, and never reused after a failed read or once its segment is retired.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SharedHandles } from '../../src/queue/read-handles';
import { nodeFs, segmentPath } from '../../src/queue/segment';
import type { QueueFile, QueueFs } from '../../src/queue/segment';

const dir = mkdtempSync(join(tmpdir(), 'petrel-handles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (const n of [1, 2]) writeFileSync(segmentPath(dir, n), Buffer.from(`segment ${n}`));

function countingFs(): { fs: QueueFs; opens: number[]; closed: number[] } {
  const opens: number[] = [];
  const closed: number[] = [];
  const fs: QueueFs = {
    ...nodeFs,
    async open(file, flags) {
      const n = Number(file.slice(-12, -4));
      opens.push(n);
      const fh = await nodeFs.open(file, flags);
      return Object.assign(Object.create(fh) as QueueFile, {
        read: fh.read.bind(fh),
        close: async () => {
          closed.push(n);
          await fh.close();
        },
      });
    },
  };
  return { fs, opens, closed };
}

describe('SharedHandles', () => {
  it('opens a segment once for concurrent and later readers, and closes it only when retired and idle', async () => {
    const { fs, opens, closed } = countingFs();
    const h = new SharedHandles(fs, dir);
    const [a, b] = await Promise.all([h.acquire(1), h.acquire(1)]);
    expect(a.fh).toBe(b.fh);
    await a.release(false);
    await b.release(false);
    const c = await h.acquire(1);
    expect(opens).toEqual([1]);
    await h.keepOnly((s) => s !== 1);
    expect(closed).toEqual([]); // c still reads
    const buf = Buffer.alloc(9);
    await c.fh.read(buf, 0, 9, 0);
    expect(buf.toString()).toBe('segment 1');
    await c.release(false);
    expect(closed).toEqual([1]);
    await h.closeAll();
  });

  it('does not reuse a handle after a failed read, nor cache a failed open', async () => {
    const { fs, opens, closed } = countingFs();
    const h = new SharedHandles(fs, dir);
    const a = await h.acquire(2);
    await a.release(true);
    expect(closed).toEqual([2]);
    await (await h.acquire(2)).release(false);
    expect(opens).toEqual([2, 2]);
    await expect(h.acquire(7)).rejects.toThrow();
    await expect(h.acquire(7)).rejects.toThrow();
    expect(opens).toEqual([2, 2, 7, 7]);
    await h.closeAll();
    expect(closed).toEqual([2, 2]);
  });
});
