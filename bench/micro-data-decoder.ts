/**
 * Microbenchmark of the DATA hot path: DataDecoder (server side), LineEndingChecker
 * (BDAT) and DataEncoder (client side) over a realistic message fed in socket-sized
 * chunks. Prints MB/s; asserts nothing (timings never decide a test).
 *
 *   npx tsx bench/micro-data-decoder.ts
 */
import { DataDecoder, DataEncoder, encodeData } from '../src/smtp/data-decoder';
import { LineEndingChecker } from '../src/smtp/line-ending';

const MESSAGE_BYTES = 32 * 1024 * 1024;
const CHUNK = 64 * 1024;
const ROUNDS = 7;

/** 76-column text lines (base64-like), every 50th line starting with a dot, plus a header block. */
function makeBody(size: number): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const parts: string[] = ['From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n'];
  let total = parts[0]?.length ?? 0;
  for (let n = 0; total < size; n++) {
    let line = n % 50 === 0 ? '.' : '';
    while (line.length < 76) line += alphabet[(n * 7 + line.length * 13) % 64];
    parts.push(line + '\r\n');
    total += 78;
  }
  return Buffer.from(parts.join(''), 'latin1');
}

function chunks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += CHUNK) out.push(buf.subarray(i, i + CHUNK));
  return out;
}

/** Runs warm-up rounds first (the JIT settles), then prints the median and best round. */
function measure(name: string, bytes: number, run: () => void): void {
  for (let w = 0; w < 3; w++) run();
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    run();
    rates.push(bytes / (Number(process.hrtime.bigint() - t0) / 1e9) / 1e6);
  }
  rates.sort((x, y) => x - y);
  const median = rates[Math.floor(rates.length / 2)] ?? 0;
  const best = rates[rates.length - 1] ?? 0;
  console.log(`${name.padEnd(28)} median ${median.toFixed(0).padStart(6)} MB/s   best ${best.toFixed(0).padStart(6)} MB/s`);
}

const body = makeBody(MESSAGE_BYTES);
const wire = encodeData(body);
const wireChunks = chunks(wire);
const bodyChunks = chunks(body);

measure('DataDecoder.push', wire.length, () => {
  const dec = new DataDecoder(Number.MAX_SAFE_INTEGER);
  let out: Buffer[] = [];
  for (const c of wireChunks) {
    if (dec.push(c, 0, out) >= 0) break;
    out = [];
  }
  if (dec.outcome.bareLineEnding || dec.outcome.size !== body.length) throw new Error('bench: decode mismatch');
});

measure('DataDecoder.push (doomed)', wire.length, () => {
  const dec = new DataDecoder(1024);
  const out: Buffer[] = [];
  for (const c of wireChunks) if (dec.push(c, 0, out) >= 0) break;
});

measure('LineEndingChecker.push', body.length, () => {
  const checker = new LineEndingChecker();
  for (const c of bodyChunks) checker.push(c);
  checker.end();
});

measure('DataEncoder.push', body.length, () => {
  const enc = new DataEncoder();
  let out: Buffer[] = [];
  for (const c of bodyChunks) {
    enc.push(c, out);
    out = [];
  }
  enc.end(out);
});
