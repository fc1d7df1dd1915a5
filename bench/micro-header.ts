/**
 * Microbenchmark of the RFC 5322 §2.2 / §3.6 header-section parser (src/message/header.ts,
 * HeaderParser: field splitting, unfolding bounds, defect detection) over the corpus messages
 * in /work/shared/corpus/messages (or the directory given as the first argument), each
 * repeated many times, fed whole and in 1 KB chunks. Only the header section is counted in
 * MB/s (the parser stops reading at the empty line). Median of several rounds after warm-up;
 * asserts nothing.
 *
 *   npx tsx bench/micro-header.ts [corpus-dir]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HeaderParser } from '../src/message/header';

const CORPUS = process.argv[2] ?? '/work/shared/corpus/messages';
const TARGET_BYTES = 16 * 1024 * 1024; // header bytes parsed per round
const SMALL_CHUNK = 1024;
const ROUNDS = 7;

function emlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return emlFiles(p);
    return name.endsWith('.eml') ? [p] : [];
  });
}

/** Parses one message; returns the header bytes read and the fields found. */
function parseOne(msg: Buffer, chunk: number): { headerBytes: number; fields: number } {
  const p = new HeaderParser();
  let fields = 0;
  for (let at = 0; at < msg.length && !p.done; at += chunk) fields += p.push(msg.subarray(at, at + chunk)).length;
  fields += p.end().length;
  return { headerBytes: p.bodyOffset >= 0 ? p.bodyOffset : msg.length, fields };
}

const messages = emlFiles(CORPUS).map((f) => readFileSync(f));
const perPass = messages.map((m) => parseOne(m, m.length));
const passHeaderBytes = perPass.reduce((a, r) => a + r.headerBytes, 0);
const passFields = perPass.reduce((a, r) => a + r.fields, 0);
const passes = Math.max(1, Math.ceil(TARGET_BYTES / passHeaderBytes));

function measure(name: string, chunk: number): void {
  const run = () => {
    for (let i = 0; i < passes; i++) for (const m of messages) parseOne(m, chunk === 0 ? m.length : chunk);
  };
  for (let w = 0; w < 3; w++) run();
  const secs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    run();
    secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  secs.sort((x, y) => x - y);
  const median = secs[Math.floor(secs.length / 2)] ?? 1;
  const best = secs[0] ?? 1;
  const bytes = passes * passHeaderBytes;
  const line = (s: number) =>
    `${(bytes / s / 1e6).toFixed(1).padStart(6)} MB/s ${((passes * messages.length) / s / 1e3).toFixed(1).padStart(6)} k msgs/s ${((passes * passFields) / s / 1e6).toFixed(2).padStart(5)} M fields/s`;
  console.log(`${name.padEnd(30)} median ${line(median)}   best ${line(best)}`);
}

console.log(`${messages.length} messages from ${CORPUS}: ${passHeaderBytes} header bytes, ${passFields} fields per pass; ${passes} passes per round`);
measure('HeaderParser (whole message)', 0);
measure(`HeaderParser (${SMALL_CHUNK} B chunks)`, SMALL_CHUNK);
