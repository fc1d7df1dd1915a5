/**
 * `npm run bench`: Petrel against Postfix on the same machine in the same
 * invocation (issue 5). Postfix's smtp-source sends N messages over S
 * sessions to an MTA on 127.0.0.1, which relays them to Postfix's smtp-sink
 * on its own loopback address: Petrel (relay_host, queue_fsync = yes), a
 * private Postfix (relayhost, defaults), and the ceiling (smtp-source
 * straight into smtp-sink). For each cell of the matrix the targets run
 * interleaved, A B C A B C …, so drift on a shared machine hits all alike.
 * Each run is one JSON line (stdout and bench/results/*.jsonl); at the end a
 * markdown table of medians with Petrel ÷ Postfix ratios.
 *
 *   npm run bench -- --quick          a smoke run of a few seconds
 *   npm run bench -- --report FILE    the table of an earlier results file
 *   npm run bench -- --help           every flag (see bench/README.md)
 *
 * Every load is bounded in count and time; every process started here is
 * stopped by its pid (the private Postfix by `postfix -c DIR stop`), also on
 * failure or Ctrl-C. Nothing here asserts: it measures.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup } from '../test/helpers/spawn';
import { measure, type RunRecord } from './lib/measure';
import { parseOptions, USAGE, type Options } from './lib/options';
import { ensurePrerequisites, fsTypeOf, postfixVersion } from './lib/prereq';
import { markdownTable, tableOfRecords } from './lib/report';

const BENCH = dirname(fileURLToPath(import.meta.url));

function resultsFile(o: Options): string {
  if (o.out) return resolve(o.out);
  mkdirSync(join(BENCH, 'results'), { recursive: true });
  return join(BENCH, 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
}

/** Ctrl-C stops the run in flight (smtp-source killed, waits cut short) and lets every finally block clean up. */
function abortOnSigint(): AbortController {
  const ac = new AbortController();
  process.on('SIGINT', () => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write('\nbench: interrupted; stopping what this run started (Ctrl-C again to leave at once)\n');
    ac.abort();
  });
  return ac;
}

function describe(o: Options, file: string): string {
  const runs = o.cells.length * o.reps * o.targets.length;
  return [
    `bench: ${o.cells.length} cells × ${o.reps} reps × ${o.targets.join('/')} = ${runs} runs; results in ${file}`,
    `bench: node ${process.version}, postfix ${postfixVersion()}, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `bench: queues under ${tmpdir()} (${fsTypeOf(tmpdir())})${['tmpfs', 'ramfs'].includes(fsTypeOf(tmpdir())) ? ': in memory, so fsync costs nothing and no figure here is a durable one; set TMPDIR to a disk' : ''}`,
    ...(o.petrelSettings.queue_fsync === 'no' ? ['bench: queue_fsync = no: Petrel figures are for analysis only, never a headline'] : []),
  ].join('\n');
}

function readRecords(file: string): RunRecord[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as RunRecord);
}

async function runAll(o: Options, file: string, signal: AbortSignal): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  for (const cell of o.cells) {
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const target of o.targets) {
        if (signal.aborted) return records;
        const r = await measure(target, cell, { rep, latency: o.latency, timeoutMs: o.timeoutMs, stallMs: o.stallMs, petrelSettings: o.petrelSettings, petrelBundle: o.petrelBundle, signal });
        records.push(r);
        const line = JSON.stringify(r);
        appendFileSync(file, `${line}\n`);
        console.log(line);
      }
    }
  }
  return records;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) return void console.log(USAGE);
  const report = argv.indexOf('--report');
  if (report >= 0) return void console.log(tableOfRecords(readRecords(argv[report + 1] ?? '')));
  const o = parseOptions(argv);
  ensurePrerequisites((s) => console.error(s));
  const file = resultsFile(o);
  console.error(describe(o, file));
  const ac = abortOnSigint();
  try {
    const records = await runAll(o, file, ac.signal);
    console.log(`\n${markdownTable(o.cells, o.targets, records)}\n`);
    const failed = records.filter((r) => !r.ok).length;
    if (failed > 0) console.error(`bench: ${failed} of ${records.length} runs failed; their "error" field says why`);
    console.error('bench: numbers from a shared or busy machine are noisy; compare within one invocation only');
  } finally {
    await cleanup(); // temp folders of startPetrel; each process was already stopped by its own run
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
