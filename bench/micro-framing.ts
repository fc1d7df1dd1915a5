/**
 * Microbenchmark of the queue log's record framing (src/queue/framing.ts) and
 * record codec: how many MB/s of BODY payload can be encoded+framed, and
 * scanned+decoded back, on one core. Prints numbers; asserts nothing.
 *
 *   npx tsx bench/micro-framing.ts
 */
import { performance } from 'node:perf_hooks';
import { frameRecord, scanLog } from '../src/queue/framing';
import { decodeRecord, encodeRecord } from '../src/queue/records';

const TOTAL = 256 * 1024 * 1024; // payload bytes per measurement

function encodeAll(chunk: Buffer): { bytes: number; ms: number; image: Buffer } {
  const parts: Buffer[] = [];
  let offset = 0;
  const t0 = performance.now();
  for (let seq = 0, done = 0; done < TOTAL; seq++, done += chunk.length) {
    const f = frameRecord(offset, encodeRecord({ kind: 'body', id: '01JABCDEFGH0000', seq, bytes: chunk }));
    offset = f.offset;
    if (parts.length < 4096) parts.push(...f.buffers); // keep a slice of the log for the decode run
  }
  return { bytes: TOTAL, ms: performance.now() - t0, image: Buffer.concat(parts) };
}

function decodeAll(image: Buffer): { bytes: number; ms: number } {
  let bytes = 0;
  const rounds = Math.max(1, Math.floor(TOTAL / Math.max(image.length, 1)));
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    for (const r of scanLog(image).records) {
      const d = decodeRecord(r.payload);
      if (d.ok && d.record.kind === 'body') bytes += d.record.bytes.length;
    }
  }
  return { bytes, ms: performance.now() - t0 };
}

const mbps = (bytes: number, ms: number) => (bytes / 1e6 / (ms / 1e3)).toFixed(0).padStart(6);

console.log('chunk size   encode+frame MB/s   scan+decode MB/s');
for (const size of [200, 4096, 16_384, 65_536]) {
  const chunk = Buffer.alloc(size, 0x61);
  const enc = encodeAll(chunk);
  const dec = decodeAll(enc.image);
  console.log(`${String(size).padStart(10)}   ${mbps(enc.bytes, enc.ms)}              ${mbps(dec.bytes, dec.ms)}`);
}
