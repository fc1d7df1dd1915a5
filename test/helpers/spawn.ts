/**
 * Runs the real single-file bundle (`node dist/petrel.mjs`) as a child
 * process for the integration tests: `petrel serve` in a temp dir with a
 * generated petrel.conf on port 0, its JSON log lines collected, stopped by
 * SIGTERM or SIGKILL to its own pid only; and one-shot CLI runs such as
 * `queue list --json`. A raw SMTP client for hand-written dialogues is in
 * ./smtp-raw (kept beside this file so tests control every byte sent).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MessageJson } from '../../src/server/control';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUNDLE = join(REPO, 'dist', 'petrel.mjs');

export interface LogLine {
  readonly ts: string;
  readonly level: string;
  readonly event: string;
  readonly [field: string]: unknown;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Listener {
  readonly kind: string;
  readonly host: string;
  readonly port: number;
}

/** petrel.conf keys to values; these override the test defaults below. */
export type Settings = Record<string, string | number>;

/** Loopback only, port 0 (the kernel picks a free port), a local domain the tests write to, where every local
 *  part exists (catch-all). queue_only: these servers receive and queue; tests of delivery turn it off. Should one
 *  deliver anyway, mail for other domains goes to a smart host on a closed loopback port (discard, 9), so no test
 *  can send a DNS query or a connection off this machine (auth_checks = no for the same reason). */
const DEFAULTS: Settings = {
  hostname: 'mx.petrel.test',
  listen: '127.0.0.1:0',
  data_dir: 'data',
  local_domains: 'example.test',
  catch_all: 'example.test:postmaster',
  queue_only: 'yes',
  relay_host: '[127.0.0.1]:9',
  // SPF/DKIM/DMARC checks of untrusted clients query DNS; their tests turn them on with dns_servers set.
  auth_checks: 'no',
};

/** Every child started here and not yet exited, so afterAll can stop what a failed test left. */
const running = new Set<ChildProcess>();

/** Temp folders made here; cleanup() removes them (set PETREL_KEEP_TMP=1 to keep them for a post-mortem). */
const made: string[] = [];

export function tempDir(prefix = 'petrel-it-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Writes dir/petrel.conf from DEFAULTS + settings; returns its path. */
export function writeConfig(dir: string, settings: Settings = {}, name = 'petrel.conf'): string {
  const all = { ...DEFAULTS, ...settings };
  const file = join(dir, name);
  writeFileSync(file, Object.entries(all).map(([k, v]) => `${k} = ${v}\n`).join(''));
  return file;
}

export interface StartOptions {
  /** Reuse this folder (and its data_dir) rather than a new temp one. */
  readonly dir?: string;
  readonly settings?: Settings;
  /** The petrel.mjs to run (default: the repository's dist/petrel.mjs). */
  readonly bundle?: string;
  readonly cwd?: string;
  readonly startTimeoutMs?: number;
}

/** A running `petrel serve`. */
export class PetrelProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  readonly listeners: Listener[] = [];
  readonly exited: Promise<Exit>;
  private exit: Exit | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly dir: string,
    readonly configFile: string,
  ) {
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res((this.exit = { code, signal }))));
    this.exited.then(() => this.wake());
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      const lines = (partial + s).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.take(line);
    });
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  /** The first plain SMTP listener's port. */
  get port(): number {
    return this.portOf('smtp');
  }

  portOf(kind: string): number {
    const l = this.listeners.find((x) => x.kind === kind);
    if (!l) throw new Error(`no ${kind} listener in ${JSON.stringify(this.listeners)}`);
    return l.port;
  }

  events(event: string): LogLine[] {
    return this.logs.filter((l) => l.event === event);
  }

  /** Resolves with the first log line (already seen or to come) matching; rejects on exit or timeout. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((res, rej) => {
      const check = (): void => {
        const hit = this.logs.find(match);
        if (hit) return done(() => res(hit));
        if (this.exit) return done(() => rej(new Error(`petrel exited (${JSON.stringify(this.exit)}) first; stderr: ${this.stderr}`)));
      };
      const timer = setTimeout(() => done(() => rej(new Error(`no matching log line in ${timeoutMs} ms`))), timeoutMs);
      const done = (f: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Graceful stop (SIGTERM to this pid) and wait for the exit. */
  stop(): Promise<Exit> {
    return this.signal('SIGTERM');
  }

  /** Crash (SIGKILL to this pid) and wait for the exit. */
  kill(): Promise<Exit> {
    return this.signal('SIGKILL');
  }

  signal(sig: NodeJS.Signals): Promise<Exit> {
    if (this.exit === null) this.child.kill(sig);
    return this.exited;
  }

  private take(line: string): void {
    if (line.trim() === '') return;
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      parsed = { ts: '', level: 'unparsed', event: 'unparsed', line };
    }
    this.logs.push(parsed);
    if (parsed.event === 'listening') this.listeners.push(listenerOf(parsed));
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

function listenerOf(l: LogLine): Listener {
  const a = l.address as { address: string; port: number };
  return { kind: String(l.kind), host: a.address, port: a.port };
}

/** Starts `node petrel.mjs serve --config FILE`; resolves once its "started" line (after every "listening") is out. */
export async function startPetrel(opts: StartOptions = {}): Promise<PetrelProcess> {
  const dir = opts.dir ?? tempDir();
  const configFile = writeConfig(dir, opts.settings);
  const child = spawn(process.execPath, [opts.bundle ?? BUNDLE, 'serve', '--config', configFile], {
    cwd: opts.cwd ?? dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const p = new PetrelProcess(child, dir, configFile);
  try {
    await p.waitForLog((l) => l.event === 'started', opts.startTimeoutMs ?? 15_000);
  } catch (e) {
    await p.kill();
    throw e;
  }
  return p;
}

/** SIGKILLs every server started here that is still running, by its pid. */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const c of left) c.kill('SIGKILL');
  await Promise.all(left.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
}

/** For afterAll: killAll(), then remove the temp folders made by tempDir(). */
export async function cleanup(): Promise<void> {
  await killAll();
  if (process.env.PETREL_KEEP_TMP) return;
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** One `node petrel.mjs ARGS…` run to completion. */
export function runCli(args: string[], opts: { cwd?: string; bundle?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return runProgram(process.execPath, [opts.bundle ?? BUNDLE, ...args], opts);
}

/** Runs any program (swaks, python3, …) to completion, killing it (by its pid) after timeoutMs. */
export function runProgram(file: string, args: string[], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(file, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      res({ status, stdout, stderr });
    });
  });
}

/** `queue list --json`, the shape DESIGN.md promises (the server's own type, so the two cannot drift apart). */
export type QueueEntry = MessageJson;

export async function queueList(configFile: string, opts: { cwd?: string; bundle?: string } = {}): Promise<QueueEntry[]> {
  const r = await runCli(['queue', 'list', '--json', '--config', configFile], opts);
  if (r.status !== 0) throw new Error(`queue list exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as QueueEntry[];
}

/** `queue show ID`: the stored message text (after the envelope block), or null if unknown. */
export async function queueShowText(configFile: string, id: string): Promise<string | null> {
  const r = await runCli(['queue', 'show', id, '--config', configFile]);
  if (r.status !== 0) return null;
  const cut = r.stdout.indexOf('\n\n');
  return cut < 0 ? '' : r.stdout.slice(cut + 2);
}
