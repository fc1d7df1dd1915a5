/**
 * Petrel's memory under load (issue 5: "under 100 MB at 100 sessions and
 * 150 MB while holding 1 000"), measured from outside the process: the
 * server's VmRSS and VmHWM from /proc/PID/status every 100 ms. Nothing in
 * src/ knows it is being measured. Two scenarios, each on a fresh server
 * (`node dist/petrel.mjs serve`, relaying to Postfix's smtp-sink on loopback):
 * - load: smtp-source -s SESSIONS -m N -l SIZE (one message per connection),
 *   the peak RSS while accepting and relaying, and the throughput beside it
 *   so that a memory fix that costs speed shows;
 * - hold: HOLD connections of our own open at once, each stopped in the
 *   middle of DATA (RFC 5321 §4.1.1.4) after EHLO, MAIL, RCPT and the first
 *   part of the body, then trickling a little more, then finishing: the RSS
 *   of a server holding that many sessions.
 * `--node-flags "--trace-gc"` runs the server under extra node flags to look
 * inside (trace-gc lines are summarised: heap committed at the largest GC);
 * the headline figures are always from a run without flags. Bounded: every
 * wait has a timeout, and only processes started here are stopped, by pid.
 * Output: one JSON line per run, then a table of medians.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BUNDLE, PetrelProcess, tempDir, writeConfig, type Settings } from '../test/helpers/spawn';
import { freePort } from '../test/delivery/harness';
import { startCountingSink, type CountingSink } from './lib/counting-sink';
import { treeCpuSeconds } from './lib/procs';
import { median } from './lib/report';
import { runSource } from './lib/source';

const USAGE = `usage: npx tsx bench/memory.ts [flags]   (build first: node scripts/build.mjs)
  --only load|hold      one scenario (default both)
  --sizes LIST          load: payload sizes, e.g. 1k,20k (default)
  --sessions N          load: smtp-source -s (default 100)
  --messages N          load: messages per run (default 20000)
  --hold N              hold: connections held open at once (default 1000)
  --reps N              repetitions of each run (default 3)
  --node-flags "…"      extra node flags for the server (analysis only, e.g. "--trace-gc")
  --bundle LIST         petrel.mjs builds to compare, run interleaved (default dist/petrel.mjs)
  --petrel KEY=VALUE    extra petrel.conf setting (repeatable)`;

interface Opts {
  only: 'load' | 'hold' | null;
  sizes: number[];
  sessions: number;
  messages: number;
  hold: number;
  reps: number;
  nodeFlags: string[];
  bundles: string[];
  settings: Settings;
}

function parseSize(s: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2] ?? '') ? 1024 : 1048576);
}

function parseArgs(argv: string[]): Opts {
  // auth_checks = no: SPF/DKIM lookups would leave loopback, and the issue's figures predate them
  const o: Opts = { only: null, sizes: [1024, 20480], sessions: 100, messages: 20_000, hold: 1000, reps: 3, nodeFlags: [], bundles: [BUNDLE], settings: { auth_checks: 'no' } };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => argv[++i] ?? '';
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a === '--only') o.only = next() === 'hold' ? 'hold' : 'load';
    else if (a === '--sizes') o.sizes = next().split(',').map(parseSize);
    else if (a === '--sessions') o.sessions = Number(next());
    else if (a === '--messages') o.messages = Number(next());
    else if (a === '--hold') o.hold = Number(next());
    else if (a === '--reps') o.reps = Number(next());
    else if (a === '--node-flags') o.nodeFlags = next().split(/\s+/).filter(Boolean);
    else if (a === '--bundle') o.bundles = next().split(',').map((f) => resolve(f));
    else if (a === '--petrel') {
      const [k = '', ...v] = next().split('=');
      o.settings[k] = v.join('=');
    } else throw new Error(`${a}?\n${USAGE}`);
  }
  return o;
}

// ---- the server and its memory -------------------------------------------------------------

async function startServer(bundle: string, settings: Settings, nodeFlags: string[]): Promise<PetrelProcess> {
  const dir = tempDir('petrel-mem-');
  const config = writeConfig(dir, settings);
  const child = spawn(process.execPath, [...nodeFlags, bundle, 'serve', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = new PetrelProcess(child, dir, config);
  try {
    await p.waitForLog((l) => l.event === 'started', 15_000);
  } catch (e) {
    await p.kill();
    throw e;
  }
  const drain = setInterval(() => keepUnparsed(p), 500);
  void p.exited.then(() => clearInterval(drain));
  return p;
}

async function stopServer(p: PetrelProcess): Promise<void> {
  const timer = setTimeout(() => void p.kill(), 15_000);
  await p.stop().finally(() => clearTimeout(timer));
  unparsed.delete(p);
  rmSync(p.dir, { recursive: true, force: true });
}

function statusKb(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (f: string): number => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** VmRSS every 100 ms; VmHWM (the kernel's own peak, exact) at the end. */
function sampler(pid: number): { stop(): { peakMb: number; medianMb: number; hwmMb: number } } {
  const rss: number[] = [];
  const timer = setInterval(() => rss.push(statusKb(pid).rss), 100);
  return {
    stop: () => {
      clearInterval(timer);
      const s = statusKb(pid);
      rss.push(s.rss);
      return { peakMb: mb(Math.max(...rss)), medianMb: mb(median(rss) ?? 0), hwmMb: mb(s.hwm) };
    },
  };
}

const mb = (kb: number): number => Math.round(kb / 102.4) / 10;

/** From --trace-gc lines ("Scavenge 12.1 (20.3) -> 9.8 (21.3) MB"): counts and the largest committed heap. */
function gcSummary(p: PetrelProcess): Record<string, unknown> | null {
  keepUnparsed(p);
  const lines = unparsed.get(p) ?? [];
  let scavenges = 0;
  let markCompacts = 0;
  let committed = 0;
  const live: number[] = [];
  for (const line of lines) {
    const m = /: (Scavenge|Mark-Compact|Mark-sweep)[^\d]*[\d.]+ \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/.exec(line);
    if (!m) continue;
    if (m[1] === 'Scavenge') scavenges += 1;
    else (markCompacts += 1), live.push(Number(m[3]));
    committed = Math.max(committed, Number(m[2]), Number(m[4]));
  }
  // live: the heap in use right after each full GC, i.e. what was still reachable
  const liveMax = live.length === 0 ? null : Math.max(...live);
  return lines.length === 0 ? null : { scavenges, mark_compacts: markCompacts, heap_committed_peak_mb: committed, live_after_full_gc_median_mb: median(live), live_after_full_gc_max_mb: liveMax };
}

/** Lines that are not Petrel's JSON (--trace-gc output), per server; the JSON log lines are let go. */
const unparsed = new Map<PetrelProcess, string[]>();

/** PetrelProcess keeps every log line; a 20 000-message run would hold ~200 000 of them in this harness. */
function keepUnparsed(p: PetrelProcess): void {
  const mine = unparsed.get(p) ?? [];
  unparsed.set(p, mine);
  for (const l of p.logs.splice(0)) if (l.level === 'unparsed') mine.push(String(l.line));
}

// ---- scenario 1: smtp-source load ---------------------------------------------------------------

async function loadRun(o: Opts, bundle: string, size: number, rep: number): Promise<Record<string, unknown>> {
  const sink = await startCountingSink('127.0.0.35', await freePort('127.0.0.35'));
  let p: PetrelProcess | null = null;
  try {
    p = await startServer(bundle, { relay_host: `[${sink.host}]:${sink.port}`, queue_only: 'no', queue_fsync: 'yes', max_connections_per_ip: 1000, ...o.settings }, o.nodeFlags);
    const idle = statusKb(p.pid).rss;
    const cpu0 = treeCpuSeconds(p.pid);
    const s = sampler(p.pid);
    const t0 = performance.now();
    const ac = new AbortController();
    const src = await runSource({ host: '127.0.0.1', port: p.port, sessions: o.sessions, messages: o.messages, size, timeoutMs: 300_000 }, ac.signal);
    const relayed = src.ok && (await sink.waitFor(o.messages, 30_000, ac.signal));
    const relayMs = performance.now() - t0;
    const cpu = treeCpuSeconds(p.pid) - cpu0;
    const m = s.stop();
    return {
      scenario: 'load', bundle, rep, size, sessions: o.sessions, messages: o.messages, ok: src.ok && relayed, error: src.error,
      idle_mb: mb(idle), rss_peak_mb: Math.max(m.peakMb, m.hwmMb), rss_median_mb: m.medianMb,
      accept_msgs_per_s: Math.round(o.messages / (src.ms / 1000)), relay_msgs_per_s: Math.round(sink.count() / (relayMs / 1000)),
      cpu_s_per_1000: Math.round((cpu / o.messages) * 1000 * 1000) / 1000, gc: gcSummary(p), node_flags: o.nodeFlags.join(' '),
    };
  } finally {
    if (p) await stopServer(p);
    await sink.stop();
  }
}

// ---- scenario 2: many held sessions -------------------------------------------------------------

/** One client connection that hands out complete replies (RFC 5321 §4.2.1: last line has a space after the code). */
class Held {
  private buf = '';
  private readonly replies: string[] = [];
  private waiter: ((r: string) => void) | null = null;
  closed = false;

  constructor(readonly sock: Socket) {
    sock.setEncoding('latin1').on('data', (s: string) => this.take(s));
    sock.on('close', () => {
      this.closed = true;
      this.waiter?.('closed');
    });
    sock.on('error', () => undefined);
  }

  async reply(timeoutMs = 60_000): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return ready;
    if (this.closed) return 'closed';
    return new Promise((resolve) => {
      const timer = setTimeout(() => ((this.waiter = null), resolve('timeout')), timeoutMs);
      this.waiter = (r) => ((this.waiter = null), clearTimeout(timer), resolve(r));
    });
  }

  async send(line: string, expect: string): Promise<void> {
    this.sock.write(line);
    const r = await this.reply();
    if (!r.startsWith(expect)) throw new Error(`${JSON.stringify(line.slice(0, 30))} got ${JSON.stringify(r.slice(0, 80))}`);
  }

  private take(s: string): void {
    this.buf += s;
    for (let m = /^\d{3} .*\r\n/m.exec(this.buf); m; m = /^\d{3} .*\r\n/m.exec(this.buf)) {
      const end = m.index + m[0].length;
      const r = this.buf.slice(0, end);
      this.buf = this.buf.slice(end);
      if (this.waiter) this.waiter(r);
      else this.replies.push(r);
    }
  }
}

const BODY_LINE = `${'x'.repeat(76)}\r\n`;
const bodyPart = (bytes: number): string => BODY_LINE.repeat(Math.ceil(bytes / BODY_LINE.length));

async function openHeld(host: string, port: number, i: number): Promise<Held> {
  const sock = connect({ host, port });
  await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
  const h = new Held(sock);
  if (!(await h.reply()).startsWith('220')) throw new Error('no greeting');
  await h.send('EHLO held.bench\r\n', '250');
  await h.send('MAIL FROM:<held@source.bench>\r\n', '250');
  await h.send(`RCPT TO:<rcpt${i}@sink.bench>\r\n`, '250');
  await h.send('DATA\r\n', '354');
  h.sock.write(`Subject: held ${i}\r\n\r\n${bodyPart(2048)}`);
  return h;
}

/** Runs f over items, at most `width` at a time. */
async function inBatches<T, R>(items: T[], width: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(f))));
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function holdRun(o: Opts, bundle: string, rep: number): Promise<Record<string, unknown>> {
  const sink = await startCountingSink('127.0.0.36', await freePort('127.0.0.36'));
  let p: PetrelProcess | null = null;
  let held: Held[] = [];
  try {
    const limit = o.hold + 100;
    p = await startServer(bundle, { relay_host: `[${sink.host}]:${sink.port}`, queue_only: 'no', queue_fsync: 'yes', max_connections: limit, max_connections_per_ip: limit, ...o.settings }, o.nodeFlags);
    const idle = statusKb(p.pid).rss;
    const all = sampler(p.pid);
    const t0 = performance.now();
    held = await inBatches([...Array(o.hold).keys()], 50, (i) => openHeld('127.0.0.1', p!.port, i));
    const openMs = performance.now() - t0;
    await sleep(2000); // idle in the middle of DATA
    const heldNow = statusKb(p.pid).rss;
    for (let round = 0; round < 6; round++) {
      // slow senders: a little more body from every session, 500 ms apart
      for (const h of held) h.sock.write(bodyPart(1024));
      await sleep(500);
    }
    const trickled = statusKb(p.pid).rss;
    const finish = await Promise.all(held.map((h) => h.send('.\r\n', '250').then(() => true, () => false)));
    await Promise.all(held.map((h) => h.send('QUIT\r\n', '221').catch(() => undefined)));
    const ac = new AbortController();
    const accepted = finish.filter(Boolean).length;
    const relayed = await sink.waitFor(accepted, 30_000, ac.signal);
    const m = all.stop();
    return {
      scenario: 'hold', bundle, rep, connections: o.hold, ok: accepted === o.hold && relayed, accepted, relayed: sink.count(), open_s: Math.round(openMs) / 1000,
      idle_mb: mb(idle), rss_held_mb: mb(heldNow), rss_trickled_mb: mb(trickled), rss_peak_mb: Math.max(m.peakMb, m.hwmMb), gc: gcSummary(p), node_flags: o.nodeFlags.join(' '),
    };
  } finally {
    for (const h of held) h.sock.destroy();
    if (p) await stopServer(p);
    await sink.stop();
  }
}

// ---- main -----------------------------------------------------------------------------------------

function table(records: Record<string, unknown>[]): string {
  const groups = new Map<string, Record<string, unknown>[]>();
  for (const r of records) {
    const what = r.scenario === 'load' ? `load ${Number(r.size) / 1024} KB × ${String(r.sessions)}` : `hold ${String(r.connections)}`;
    const key = `${what}${records.some((x) => x.bundle !== r.bundle) ? ` (${relative(process.cwd(), String(r.bundle))})` : ''}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const cols = ['idle_mb', 'rss_median_mb', 'rss_held_mb', 'rss_trickled_mb', 'rss_peak_mb', 'accept_msgs_per_s', 'relay_msgs_per_s', 'cpu_s_per_1000'];
  const rows = [`| run | ok | ${cols.join(' | ')} |`, `|${' --- |'.repeat(cols.length + 2)}`];
  for (const [key, rs] of groups) {
    const ok = rs.filter((r) => r.ok);
    const cell = (c: string): string => {
      const xs = ok.map((r) => r[c]).filter((x): x is number => typeof x === 'number');
      return xs.length === 0 ? '–' : String(median(xs));
    };
    rows.push(`| ${key} | ${ok.length}/${rs.length} | ${cols.map(cell).join(' | ')} |`);
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const records: Record<string, unknown>[] = [];
  const emit = (r: Record<string, unknown>): void => {
    records.push(r);
    process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), ...r })}\n`);
  };
  // interleaved (A B A B …), so that drift on a shared machine hits every build alike
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const bundle of o.bundles) {
      if (o.only !== 'hold') for (const size of o.sizes) emit(await loadRun(o, bundle, size, rep));
      if (o.only !== 'load') emit(await holdRun(o, bundle, rep));
    }
  }
  process.stdout.write(`\nmedians (MB, msgs/s, CPU s), node ${process.version}${o.nodeFlags.length ? `, server flags ${o.nodeFlags.join(' ')}` : ''}\n${table(records)}\n`);
}

await main();
