/**
 * The three (or four) things bench/run.ts puts between smtp-source and
 * smtp-sink, each started fresh for one run and stopped by its own pid:
 * - petrel: the bundle dist/petrel.mjs relaying everything to the sink
 *   through relay_host = [sink]:port, queue_fsync = yes (an fsync before
 *   every 250, DESIGN.md), everything else at its default except
 *   max_connections_per_ip, raised from 50 because Postfix exempts
 *   $mynetworks (here 127.0.0.0/8) from its own limit of 50;
 * - postfix: the private instance of test/helpers/postfix.ts with
 *   relayhost = [sink]:port, Postfix's defaults for everything that sets
 *   throughput (in_flow_delay, default_destination_concurrency_limit 20,
 *   default_process_limit 100, one fsync per queue file);
 * - postfix-tuned (optional): the same with the usual throughput knobs;
 * - ceiling: no MTA, smtp-source straight into the sink.
 */
import { rmSync } from 'node:fs';
import { startPostfix } from '../../test/helpers/postfix';
import { startPetrel, type PetrelProcess, type Settings } from '../../test/helpers/spawn';
import { freePort } from '../../test/delivery/harness';
import { assertNever } from '../../src/smtp/assert-never';
import type { CountingSink } from './counting-sink';

export const TARGET_NAMES = ['petrel', 'postfix', 'postfix-tuned', 'ceiling'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** Where each target's MTA listens: 127.0.0.1 as the issue says; the sinks get their own addresses. */
const MTA_HOST = '127.0.0.1';

/** Each target's sink on its own loopback address, so a stray late connection cannot feed another run's count. */
export const SINK_HOST: Record<TargetName, string> = {
  petrel: '127.0.0.31',
  postfix: '127.0.0.32',
  'postfix-tuned': '127.0.0.33',
  ceiling: '127.0.0.34',
};

/** Throughput settings commonly recommended for a Postfix relay; none of them weakens its fsync. */
export const POSTFIX_TUNED: Readonly<Record<string, string>> = {
  in_flow_delay: '0s',
  default_process_limit: '250',
  default_destination_concurrency_limit: '100',
  smtpd_client_connection_count_limit: '0',
};

export interface Target {
  readonly name: TargetName;
  readonly host: string;
  readonly port: number;
  /** Root of the MTA's process tree, or null for the ceiling. */
  readonly pid: number | null;
  /** Warnings and errors the MTA logged during the run (Petrel only), a few examples. */
  problems(): { count: number; examples: string[] };
  stop(): Promise<void>;
}

export async function startTarget(name: TargetName, sink: CountingSink, petrelSettings: Settings, petrelBundle?: string): Promise<Target> {
  switch (name) {
    case 'petrel':
      return startPetrelTarget(sink, petrelSettings, petrelBundle);
    case 'postfix':
      return startPostfixTarget(name, sink, {});
    case 'postfix-tuned':
      return startPostfixTarget(name, sink, POSTFIX_TUNED);
    case 'ceiling':
      return { name, host: sink.host, port: sink.port, pid: null, problems: () => ({ count: 0, examples: [] }), stop: async () => undefined };
    default:
      return assertNever(name);
  }
}

async function startPetrelTarget(sink: CountingSink, extra: Settings, bundle?: string): Promise<Target> {
  // queue_only = no: startPetrel's test default only queues, and here delivery is the point
  const settings: Settings = { relay_host: `[${sink.host}]:${sink.port}`, listen: `${MTA_HOST}:0`, queue_only: 'no', queue_fsync: 'yes', max_connections_per_ip: 1000, ...extra };
  const p = await startPetrel({ settings, ...(bundle ? { bundle } : {}) });
  const seen = { count: 0, examples: [] as string[] };
  // startPetrel keeps every log line; read them for problems and let them go, or a long run holds them all
  const drain = setInterval(() => drainLogs(p, seen), 500);
  return {
    name: 'petrel',
    host: MTA_HOST,
    port: p.port,
    pid: p.pid,
    problems: () => (drainLogs(p, seen), seen),
    stop: async () => {
      clearInterval(drain);
      await stopPetrel(p);
    },
  };
}

function drainLogs(p: PetrelProcess, seen: { count: number; examples: string[] }): void {
  for (const l of p.logs.splice(0)) {
    if (l.level !== 'warn' && l.level !== 'error' && l.level !== 'unparsed') continue;
    seen.count += 1;
    if (seen.examples.length < 3) seen.examples.push(JSON.stringify(l).slice(0, 300));
  }
}

/** SIGTERM drains; a drain that hangs gets SIGKILL after 15 s. */
async function stopPetrel(p: PetrelProcess): Promise<void> {
  const timer = setTimeout(() => void p.kill(), 15_000);
  try {
    await p.stop();
  } finally {
    clearTimeout(timer);
    if (!process.env.PETREL_KEEP_TMP) rmSync(p.dir, { recursive: true, force: true });
  }
}

async function startPostfixTarget(name: TargetName, sink: CountingSink, mainCf: Readonly<Record<string, string>>): Promise<Target> {
  const port = await freePort(MTA_HOST);
  const pf = await startPostfix({ host: MTA_HOST, port, relayhost: `[${sink.host}]:${sink.port}`, mainCf });
  return { name, host: MTA_HOST, port, pid: pf.masterPid, problems: () => postfixProblems(pf.log()), stop: () => pf.stop() };
}

/** Postfix's maillog lines at warning level or worse. */
function postfixProblems(log: string): { count: number; examples: string[] } {
  const bad = log.split('\n').filter((l) => /(warning|error|fatal|panic):/.test(l));
  return { count: bad.length, examples: bad.slice(0, 3).map((l) => l.slice(0, 300)) };
}
