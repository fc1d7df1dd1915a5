/**
 * Restart benchmark for the queue log (DESIGN.md "The queue log"; issue 5 target:
 * 1 000 000 queued messages recovered in under 10 s). Fills a fresh queue directory
 * under os.tmpdir() with N committed messages of ~1 KB through the real Queue API
 * (newId, appendBody, commit), so the segments are byte for byte what Petrel writes;
 * the fill runs with fsync OFF (QueueOptions.fsync = false) because durability is not
 * what is measured and a million fdatasyncs would take hours. Then it measures
 * Queue.open() — segment replay, CRC + record decode, index rebuild — in a fresh
 * child process each time (so each run has a cold heap and its own peak RSS),
 * 3 times, and prints wall time and peak RSS. The directory it created is removed
 * at the end (also on Ctrl-C). Asserts nothing.
 *
 *   npx tsx bench/recovery.ts [--messages N] [--runs R] [--recipients K] [--profile] [--dir DIR]
 *
 * --profile writes a V8 CPU profile of each open() (node --cpu-prof) to bench/results/.
 * --dir DIR keeps the queue in DIR instead of a temporary directory: filled only if it
 * has no segment yet, and never deleted, so repeated runs skip the (long) fill.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from '../src/queue/queue';
import type { Envelope } from '../src/queue/queue';

const BATCH = 2000; // messages in flight per group commit during the fill

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} wants a whole number`);
  return v;
}

function body(n: number): Buffer {
  const head = `From: sender${n}@example.org\r\nTo: rcpt@example.net\r\nSubject: recovery bench ${n}\r\nMessage-ID: <${n}@bench.example>\r\n\r\n`;
  return Buffer.from(head + 'x'.repeat(76).concat('\r\n').repeat(12), 'latin1'); // ~1.05 KB
}

function envelope(n: number, recipients: number): Envelope {
  const rcpts = Array.from({ length: recipients }, (_, r) => `user${r}.${n}@example.net`);
  return { sender: `sender${n}@example.org`, recipients: rcpts, params: { size: 1100, body: '8BITMIME', smtputf8: false }, clientIp: '192.0.2.10', helo: 'client.example.org', receivedAt: 1_790_000_000_000 + n };
}

async function fill(dir: string, messages: number, recipients: number): Promise<void> {
  const q = await Queue.open(dir, { fsync: false });
  const t0 = performance.now();
  for (let done = 0; done < messages; ) {
    const inFlight: Promise<void>[] = [];
    for (const end = Math.min(messages, done + BATCH); done < end; done++) {
      const id = q.newId();
      q.appendBody(id, body(done));
      inFlight.push(q.commit(id, envelope(done, recipients)));
    }
    await Promise.all(inFlight);
    if (done % 100_000 === 0) process.stdout.write(`  filled ${done} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  await q.close();
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
}

/** Child mode: one cold Queue.open() of `dir`; prints one JSON line. */
async function openOnce(dir: string): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const q = await Queue.open(dir, { fsync: false });
  const ms = performance.now() - t0;
  const r = q.recoveryReport;
  const line = {
    ms,
    messages: q.list().length,
    segments: r.segments.length,
    corruptions: r.corruptions.length,
    problems: r.problems.length,
    rss_before_mb: rssBefore / 2 ** 20,
    rss_after_mb: process.memoryUsage().rss / 2 ** 20,
    heap_used_mb: process.memoryUsage().heapUsed / 2 ** 20,
    max_rss_mb: process.resourceUsage().maxRSS / 1024,
  };
  await q.close();
  console.log(JSON.stringify(line));
}

interface OpenResult {
  ms: number;
  messages: number;
  segments: number;
  corruptions: number;
  problems: number;
  rss_before_mb: number;
  rss_after_mb: number;
  heap_used_mb: number;
  max_rss_mb: number;
}

function measureOpen(dir: string, profile: boolean): OpenResult {
  const prof = profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve('bench/results')}`] : [];
  const child = spawnSync(process.execPath, [...prof, ...process.execArgv, fileURLToPath(import.meta.url), '--open', dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (child.status !== 0) throw new Error(`open child failed (${child.status}): ${child.stderr}`);
  const last = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as OpenResult;
}

async function main(): Promise<void> {
  const messages = flag('--messages', 1_000_000);
  const runs = flag('--runs', 3);
  const recipients = flag('--recipients', 1);
  const at = process.argv.indexOf('--dir');
  const kept = at >= 0 ? process.argv[at + 1] : undefined;
  const dir = kept !== undefined ? resolve(kept) : mkdtempSync(join(tmpdir(), 'petrel-recovery-bench-'));
  const cleanup = () => {
    if (kept === undefined) rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    if (kept === undefined || !existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith('.log'))) {
      mkdirSync(dir, { recursive: true });
      console.log(`queue ${dir}: filling ${messages} messages (~1 KB body, ${recipients} recipient(s)) with fsync OFF`);
      const t0 = performance.now();
      await fill(dir, messages, recipients);
      console.log(`filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } else console.log(`queue ${dir}: reusing what it holds (--messages is not checked against it)`);
    const bytes = dirBytes(dir);
    console.log(`${(bytes / 1e6).toFixed(0)} MB in ${readdirSync(dir).length} files`);
    const results: OpenResult[] = [];
    for (let r = 0; r < runs; r++) {
      const res = measureOpen(dir, process.argv.includes('--profile'));
      results.push(res);
      console.log(
        `open #${r + 1}: ${(res.ms / 1000).toFixed(2)} s (${((bytes / 1e6) / (res.ms / 1000)).toFixed(0)} MB/s, ${((res.messages / res.ms) * 1000 / 1e3).toFixed(0)} k msgs/s), ` +
          `${res.messages} messages in ${res.segments} segments, peak RSS ${res.max_rss_mb.toFixed(0)} MB ` +
          `(RSS before open ${res.rss_before_mb.toFixed(0)} MB, after ${res.rss_after_mb.toFixed(0)} MB, heap used ${res.heap_used_mb.toFixed(0)} MB), ` +
          `corruptions ${res.corruptions}, problems ${res.problems}`,
      );
    }
    const sorted = results.map((x) => x.ms).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const rss = Math.max(...results.map((x) => x.max_rss_mb));
    console.log(`RESULT messages=${messages} open_median_s=${(median / 1000).toFixed(2)} open_best_s=${((sorted[0] ?? 0) / 1000).toFixed(2)} peak_rss_mb=${rss.toFixed(0)} queue_mb=${(bytes / 1e6).toFixed(0)}`);
    if (messages !== 1_000_000 && messages > 0) console.log(`  linear extrapolation to 1 000 000 messages: ${((median / 1000) * (1_000_000 / messages)).toFixed(1)} s`);
  } finally {
    cleanup();
  }
}

const at = process.argv.indexOf('--open');
const openDir = at >= 0 ? process.argv[at + 1] : undefined;
(openDir !== undefined ? openOnce(openDir) : main()).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
