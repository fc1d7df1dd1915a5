/**
 * One run of bench/run.ts: a fresh sink and a fresh target, the smtp-source
 * load, and the figures, as one JSON-ready record. Timings:
 * - acceptance: spawn of smtp-source to its exit with status 0, i.e. every
 *   one of the N messages had its 250 after the data;
 * - relay (end to end): the same start to the moment the sink's counter
 *   reaches every accepted message (load + latency probes);
 * - CPU: the MTA tree's CPU seconds between just before the load and the
 *   moment relaying finished (see ./procs for the method and its error).
 * Every wait is bounded; the sink and the target are stopped in finally
 * blocks by their own pids, whatever happened.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Settings } from '../../test/helpers/spawn';
import { freePort } from '../../test/delivery/harness';
import { startCountingSink, type CountingSink } from './counting-sink';
import { memorySampler, treeCpuSeconds, type MemorySample } from './procs';
import { quantile, startProbe, type ProbeResult } from './probe';
import { runSource, type SourceResult } from './source';
import { SINK_HOST, startTarget, type Target, type TargetName } from './targets';

export interface Cell {
  readonly size: number;
  readonly sessions: number;
  readonly messages: number;
}

export interface RunOptions {
  readonly rep: number;
  readonly latency: boolean;
  readonly timeoutMs: number;
  readonly stallMs: number;
  readonly petrelSettings: Settings;
  readonly petrelBundle?: string | null;
  readonly signal: AbortSignal;
}

export interface RunRecord {
  readonly ts: string;
  readonly target: TargetName;
  readonly rep: number;
  readonly size: number;
  readonly sessions: number;
  readonly messages: number;
  readonly ok: boolean;
  readonly error: string | null;
  readonly accept_s: number | null;
  readonly accept_msgs_per_s: number | null;
  readonly relay_s: number | null;
  readonly relay_msgs_per_s: number | null;
  readonly relayed: number;
  readonly cpu_s: number | null;
  readonly cpu_s_per_1000: number | null;
  readonly rss_peak_mb: number | null;
  readonly pss_peak_mb: number | null;
  readonly processes_peak: number | null;
  readonly latency_p50_ms: number | null;
  readonly latency_p99_ms: number | null;
  readonly probes: number;
  readonly probe_errors: number;
  readonly mta_warnings: number;
  readonly mta_warning_examples: string[];
  readonly load1_before: number;
  readonly queue_fsync: boolean | null;
}

export async function measure(name: TargetName, cell: Cell, o: RunOptions): Promise<RunRecord> {
  const load1 = loadavg()[0] ?? 0;
  const sinkHost = SINK_HOST[name];
  const sink = await startCountingSink(sinkHost, await freePort(sinkHost));
  try {
    const target = await startTarget(name, sink, o.petrelSettings, o.petrelBundle ?? undefined);
    try {
      return toRecord(target, sink, cell, o, load1, await load(target, sink, cell, o));
    } finally {
      await target.stop();
    }
  } finally {
    await sink.stop();
  }
}

const mb = (kb: number): number => Math.round(kb / 102.4) / 10;
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** What one run saw, before it is turned into a record. */
interface Observed {
  readonly src: SourceResult;
  readonly expected: number;
  readonly relayed: boolean;
  readonly relayMs: number;
  readonly cpu: number | null;
  readonly peak: MemorySample | null;
  readonly probed: ProbeResult | null;
}

async function load(target: Target, sink: CountingSink, cell: Cell, o: RunOptions): Promise<Observed> {
  const mem = target.pid === null ? null : memorySampler(target.pid);
  let probe: { stop(): Promise<ProbeResult> } | null = null;
  try {
    const cpu0 = target.pid === null ? 0 : treeCpuSeconds(target.pid);
    probe = o.latency ? startProbe(target.host, target.port, cell.size) : null;
    const t0 = performance.now();
    const src = await runSource({ host: target.host, port: target.port, sessions: cell.sessions, messages: cell.messages, size: cell.size, timeoutMs: o.timeoutMs }, o.signal);
    const probed = probe ? await probe.stop() : null;
    probe = null;
    const expected = cell.messages + (probed?.accepted ?? 0);
    const relayed = src.ok && (await sink.waitFor(expected, o.stallMs, o.signal));
    const relayMs = performance.now() - t0;
    const cpu = target.pid === null ? null : treeCpuSeconds(target.pid) - cpu0;
    return { src, expected, relayed, relayMs, cpu, peak: mem?.stop() ?? null, probed };
  } finally {
    mem?.stop(); // idempotent; here it matters when the run threw, to clear the sampler's timer
    await probe?.stop();
  }
}

function toRecord(target: Target, sink: CountingSink, cell: Cell, o: RunOptions, load1: number, x: Observed): RunRecord {
  const problems = target.problems();
  const error = x.src.error ?? (x.relayed ? null : `sink has ${sink.count()} of ${x.expected} after ${o.stallMs} ms without progress`);
  const ok = error === null;
  const { probed, peak, cpu } = x;
  return {
    ts: new Date().toISOString(),
    target: target.name,
    rep: o.rep,
    ...cell,
    ok,
    error,
    accept_s: x.src.ok ? round(x.src.ms / 1000) : null,
    accept_msgs_per_s: x.src.ok ? round(cell.messages / (x.src.ms / 1000), 1) : null,
    relay_s: ok ? round(x.relayMs / 1000) : null,
    relay_msgs_per_s: ok ? round(x.expected / (x.relayMs / 1000), 1) : null,
    relayed: sink.count(),
    cpu_s: cpu === null ? null : round(cpu, 2),
    cpu_s_per_1000: cpu === null || !ok ? null : round((cpu * 1000) / x.expected),
    rss_peak_mb: peak ? mb(peak.rssKb) : null,
    pss_peak_mb: peak ? mb(peak.pssKb) : null,
    processes_peak: peak ? peak.processes : null,
    latency_p50_ms: probed ? nullableRound(quantile(probed.latenciesMs, 0.5)) : null,
    latency_p99_ms: probed ? nullableRound(quantile(probed.latenciesMs, 0.99)) : null,
    probes: probed?.latenciesMs.length ?? 0,
    probe_errors: probed?.errors ?? 0,
    mta_warnings: problems.count,
    mta_warning_examples: [...problems.examples, ...(probed?.firstError ? [`probe: ${probed.firstError}`] : [])],
    load1_before: round(load1, 2),
    queue_fsync: target.name === 'petrel' ? o.petrelSettings.queue_fsync !== 'no' : null,
  };
}

function nullableRound(x: number | null): number | null {
  return x === null ? null : round(x, 2);
}
