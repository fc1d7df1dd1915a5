/**
 * Command-line flags of bench/run.ts and the default matrix: message size
 * 1 KB, 20 KB, 200 KB × concurrency 1, 20, 100, with N per cell chosen so
 * that the slower MTA's run takes roughly 10–60 s on a 2-core machine.
 */
import { resolve } from 'node:path';
import type { Settings } from '../../test/helpers/spawn';
import type { Cell } from './measure';
import { TARGET_NAMES, type TargetName } from './targets';

export interface Options {
  readonly cells: Cell[];
  readonly reps: number;
  readonly targets: TargetName[];
  readonly latency: boolean;
  readonly timeoutMs: number;
  readonly stallMs: number;
  readonly petrelSettings: Settings;
  /** The petrel.mjs to run (default dist/petrel.mjs): compare two builds. */
  readonly petrelBundle: string | null;
  readonly out: string | null;
}

export const USAGE = `usage: npm run bench -- [flags]
  --quick               smoke run: 1 KB, 20 sessions, 500 messages, 1 repetition
  --sizes LIST          message payload sizes, e.g. 1k,20k,200k (default) or bytes
  --concurrency LIST    smtp-source sessions, e.g. 1,20,100 (default)
  --messages N          messages per run, for every cell (default: per cell, see bench/README.md)
  --reps N              repetitions of each cell, interleaved across targets (default 3)
  --targets LIST        of ${TARGET_NAMES.join(', ')} (default petrel,postfix,ceiling)
  --tuned               add postfix-tuned to the targets
  --no-latency          no final-250 latency probe
  --petrel KEY=VALUE    extra petrel.conf setting (repeatable); queue_fsync=no is marked, never a headline
  --petrel-bundle FILE  run this petrel.mjs instead of dist/petrel.mjs (compare two builds)
  --timeout SECONDS     bound on each smtp-source run (default 300)
  --stall SECONDS       give up on relaying after this long without progress at the sink (default 30)
  --out FILE            JSON lines file (default bench/results/<time>.jsonl)
  --report FILE         print the table of an earlier results file and exit (runs nothing)`;

/** Runs of the MTAs measured here (2 cores) take ~10–40 s with these; the ceiling is much faster. */
export function defaultMessages(size: number, sessions: number): number {
  if (sessions === 1) return size >= 100_000 ? 1000 : 3000;
  if (size >= 100_000) return 3000;
  return size >= 10_000 ? 8000 : 10_000;
}

function parseSize(s: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}: write bytes or a number with k or m`);
  const unit = m[2]?.toLowerCase() === 'k' ? 1024 : m[2]?.toLowerCase() === 'm' ? 1024 * 1024 : 1;
  return Number(m[1]) * unit;
}

function positive(s: string | undefined, flag: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive whole number, got ${s}`);
  return n;
}

function targetList(s: string): TargetName[] {
  return s.split(',').map((t) => {
    const name = TARGET_NAMES.find((n) => n === t.trim());
    if (!name) throw new Error(`unknown target ${t}: one of ${TARGET_NAMES.join(', ')}`);
    return name;
  });
}

interface Raw {
  quick: boolean;
  sizes: number[];
  sessions: number[];
  messages: number | null;
  reps: number;
  targets: TargetName[];
  tuned: boolean;
  latency: boolean;
  timeoutS: number;
  stallS: number;
  petrel: Settings;
  bundle: string | null;
  out: string | null;
}

function setting(kv: string, into: Settings): void {
  const eq = kv.indexOf('=');
  if (eq <= 0) throw new Error(`--petrel needs KEY=VALUE, got ${kv}`);
  into[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim();
}

/** Flags that take no value. */
const SWITCHES: Record<string, (r: Raw) => void> = {
  '--quick': (r) => void (r.quick = true),
  '--tuned': (r) => void (r.tuned = true),
  '--no-latency': (r) => void (r.latency = false),
};

/** Flags followed by one value. */
const VALUED: Record<string, (r: Raw, v: string, flag: string) => void> = {
  '--sizes': (r, v) => void (r.sizes = v.split(',').map(parseSize)),
  '--concurrency': (r, v, f) => void (r.sessions = v.split(',').map((s) => positive(s, f))),
  '--messages': (r, v, f) => void (r.messages = positive(v, f)),
  '--reps': (r, v, f) => void (r.reps = positive(v, f)),
  '--targets': (r, v) => void (r.targets = targetList(v)),
  '--timeout': (r, v, f) => void (r.timeoutS = positive(v, f)),
  '--stall': (r, v, f) => void (r.stallS = positive(v, f)),
  '--petrel': (r, v) => setting(v, r.petrel),
  '--out': (r, v) => void (r.out = v),
  '--petrel-bundle': (r, v) => void (r.bundle = resolve(v)),
};

/** Applies one flag (and its value, if it takes one); returns how many arguments it used. */
function flag(r: Raw, name: string, value: string | undefined): number {
  const sw = SWITCHES[name];
  if (sw) {
    sw(r);
    return 1;
  }
  const valued = VALUED[name];
  if (!valued) throw new Error(`unknown flag ${name}\n${USAGE}`);
  if (value === undefined) throw new Error(`${name} needs a value`);
  valued(r, value, name);
  return 2;
}

export function parseOptions(argv: readonly string[]): Options {
  const r: Raw = { quick: false, sizes: [1024, 20 * 1024, 200 * 1024], sessions: [1, 20, 100], messages: null, reps: 3, targets: ['petrel', 'postfix', 'ceiling'], tuned: false, latency: true, timeoutS: 300, stallS: 30, petrel: {}, bundle: null, out: null };
  const given = new Set<string>();
  for (let i = 0; i < argv.length; ) {
    const name = argv[i] ?? '';
    given.add(name);
    i += flag(r, name, argv[i + 1]);
  }
  if (r.quick) {
    if (!given.has('--sizes')) r.sizes = [1024];
    if (!given.has('--concurrency')) r.sessions = [20];
    if (!given.has('--messages')) r.messages = 500;
    if (!given.has('--reps')) r.reps = 1;
  }
  const wanted = new Set<TargetName>(r.tuned ? [...r.targets, 'postfix-tuned'] : r.targets);
  const targets = TARGET_NAMES.filter((n) => wanted.has(n)); // A B C in a fixed order within each repetition
  const cells = r.sizes.flatMap((size) => r.sessions.map((sessions) => ({ size, sessions, messages: r.messages ?? defaultMessages(size, sessions) })));
  return { cells, reps: r.reps, targets, latency: r.latency, timeoutMs: r.timeoutS * 1000, stallMs: r.stallS * 1000, petrelSettings: r.petrel, petrelBundle: r.bundle, out: r.out };
}
