// ChunkList (src/message/chunk-list.ts): whatever the chunking, the bytes come back in order and the
// number of pieces held stays proportional to the bytes, not to the number of chunks a client sent.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkList } from '../src/message/chunk-list';

describe('ChunkList', () => {
  it('gives back exactly the bytes pushed, in order, for any chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 40 }), (chunks) => {
        const l = new ChunkList();
        for (const c of chunks) l.push(Buffer.from(c));
        expect(l.bytes).toBe(chunks.reduce((n, c) => n + c.length, 0));
        expect(Buffer.concat(l.take())).toEqual(Buffer.concat(chunks.map((c) => Buffer.from(c))));
        expect(l.take()).toEqual([]);
      }),
    );
  });

  it('100 KiB sent a byte at a time is held in 25 pieces, not 102 400', () => {
    const l = new ChunkList();
    for (let i = 0; i < 100 * 1024; i++) l.push(Buffer.of(i & 0xff));
    expect(l.pieces).toBe(25);
    const all = Buffer.concat(l.take());
    expect(all.length).toBe(100 * 1024);
    expect(all[4097]).toBe(4097 & 0xff);
  });

  it('never more than about two pieces per KiB, even alternating small and large chunks', () => {
    const l = new ChunkList();
    for (let i = 0; i < 200; i++) {
      l.push(Buffer.alloc(1, 1));
      l.push(Buffer.alloc(1024, 2));
    }
    expect(l.pieces).toBeLessThanOrEqual(Math.ceil((2 * l.bytes) / 1024) + 1);
  });

  it('a copied small chunk does not change when the caller reuses its buffer', () => {
    const l = new ChunkList();
    const reused = Buffer.from('abc');
    l.push(reused);
    reused.fill(0x78);
    expect(Buffer.concat(l.take()).toString()).toBe('abc');
  });
});
