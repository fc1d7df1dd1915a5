/**
 * CPU time and memory of an MTA's whole process tree, read from /proc (Linux
 * only), for bench/run.ts. No cgroups: the tree is the root pid (Petrel's
 * node process, or the private Postfix master) and every live descendant,
 * found by a scan of /proc/PID/stat parent links.
 *
 * CPU: utime + stime + cutime + cstime summed over the live tree. A child's
 * own time moves into its parent's cutime/cstime when the parent reaps it
 * (wait(2)), so a Postfix smtpd or cleanup that exits mid-run is still
 * counted, once, through the master. The figure is the difference of two
 * samples (before the load, after the last message reached the sink). Error:
 * the kernel reports each field in whole clock ticks (1/CLK_TCK s, 10 ms),
 * truncated, so each live process contributes up to one tick per field of
 * under-count at each sample: with ~100 Postfix processes that is at most
 * ~2 s and typically well under 1 s, against tens of CPU seconds per run;
 * for Petrel (one process) at most 20 ms.
 *
 * Memory: the sum of VmRSS over the tree (shared pages such as libc text are
 * counted once per process, which overstates a many-process MTA) and the sum
 * of Pss from smaps_rollup (shared pages split between their users), both
 * sampled on a timer; the peak is the largest sample, so a spike shorter
 * than the interval can be missed. For the root alone VmHWM is exact.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICK_S = 1 / clockTicks();

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100; // Linux's USER_HZ for /proc is 100 on every common architecture
  }
}

interface Stat {
  readonly pid: number;
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  readonly ticks: number;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null; // the process exited between the scan and the read
  }
}

/** Fields after the command name, which sits in parentheses and may itself hold spaces or ')'. */
function parseStat(pid: number, text: string): Stat {
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number): number => Number(f[i] ?? 0);
  // f[0] is field 3 (state) of proc(5): ppid is field 4, utime..cstime are fields 14..17
  return { pid, ppid: n(1), ticks: n(11) + n(12) + n(13) + n(14) };
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const text = readText(`/proc/${name}/stat`);
    if (text !== null) out.push(parseStat(Number(name), text));
  }
  return out;
}

/** The root and its live descendants. */
export function processTree(root: number): Stat[] {
  const stats = allStats();
  const children = new Map<number, Stat[]>();
  for (const s of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(s);
    else children.set(s.ppid, [s]);
  }
  const tree = stats.filter((s) => s.pid === root);
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]?.pid ?? -1) ?? []));
  return tree;
}

/** CPU seconds used so far by the tree, reaped children included. */
export function treeCpuSeconds(root: number): number {
  return processTree(root).reduce((sum, s) => sum + s.ticks, 0) * TICK_S;
}

function kbField(text: string | null, field: string): number {
  const m = text === null ? null : new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

export interface MemorySample {
  readonly rssKb: number;
  readonly pssKb: number;
  readonly processes: number;
}

export function treeMemory(root: number): MemorySample {
  let rssKb = 0;
  let pssKb = 0;
  const tree = processTree(root);
  for (const s of tree) {
    rssKb += kbField(readText(`/proc/${s.pid}/status`), 'VmRSS');
    pssKb += kbField(readText(`/proc/${s.pid}/smaps_rollup`), 'Pss');
  }
  return { rssKb, pssKb, processes: tree.length };
}

/** The root's own peak resident set (VmHWM), exact for a one-process MTA. */
export function peakRssKb(pid: number): number {
  return kbField(readText(`/proc/${pid}/status`), 'VmHWM');
}

/** Samples treeMemory every intervalMs until stop(), which returns the peaks (the same ones if called again). */
export function memorySampler(root: number, intervalMs = 500): { stop(): MemorySample } {
  let peak: MemorySample = { rssKb: 0, pssKb: 0, processes: 0 };
  const take = (): void => {
    const m = treeMemory(root);
    peak = { rssKb: Math.max(peak.rssKb, m.rssKb), pssKb: Math.max(peak.pssKb, m.pssKb), processes: Math.max(peak.processes, m.processes) };
  };
  take();
  const timer = setInterval(take, intervalMs);
  let final: MemorySample | null = null;
  return {
    stop: () => {
      clearInterval(timer);
      if (final === null) take();
      final ??= { ...peak, rssKb: Math.max(peak.rssKb, peakRssKb(root)) };
      return final;
    },
  };
}
