/**
 * The next hop for bench/run.ts: Postfix's smtp-sink (a fast C receiver, so
 * the figure measured is the MTA's) with its running counter (-c), which it
 * prints as "sess=S quit=Q mesg=M\r" after each event; mesg counts messages
 * whose end of data (RFC 5321 §4.1.1.4) it answered. Nothing is written to
 * disk, so the sink adds no I/O to the fsyncs being measured.
 *
 * startSmtpSink (test/helpers/sink.ts) runs the same binary but keeps its
 * output to itself and uses a listen backlog of 64, which drops connections
 * at 100 concurrent sessions; hence this wrapper. Stopped by its own pid.
 */
import { spawn } from 'node:child_process';
import { smtpSinkBinary } from '../../test/helpers/sink';
import { listening, stopChild } from '../../test/helpers/child';

export interface CountingSink {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** Messages received so far. */
  count(): number;
  /** Resolves when count() reaches n (true), or false after stallMs without progress or on abort. */
  waitFor(n: number, stallMs: number, signal: AbortSignal): Promise<boolean>;
  stop(): Promise<void>;
}

/** Enough for every session of the largest matrix row to be in the accept queue at once. */
const BACKLOG = 1024;

export async function startCountingSink(host: string, port: number): Promise<CountingSink> {
  const uid = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  const child = spawn(smtpSinkBinary(), [...uid, '-c', '-h', 'sink.bench', `${host}:${port}`, String(BACKLOG)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let errors = '';
  let tail = '';
  child.stdout?.setEncoding('latin1').on('data', (s: string) => {
    const parts = (tail + s).split('\r');
    tail = parts.pop() ?? '';
    const last = parts.at(-1);
    const m = last === undefined ? null : / mesg=(\d+)/.exec(last);
    if (m) count = Number(m[1]);
  });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => void (errors += s));
  if (!(await listening(host, port, child))) {
    await stopChild(child);
    throw new Error(`smtp-sink did not listen on ${host}:${port}: ${errors}`);
  }
  return {
    host,
    port,
    pid: child.pid ?? -1,
    count: () => count,
    waitFor: (n, stallMs, signal) => waitForCount(() => count, n, stallMs, signal),
    stop: () => stopChild(child),
  };
}

async function waitForCount(count: () => number, n: number, stallMs: number, signal: AbortSignal): Promise<boolean> {
  let seen = count();
  let progressAt = Date.now();
  while (count() < n) {
    if (signal.aborted || Date.now() - progressAt > stallMs) return false;
    await new Promise((r) => setTimeout(r, 2));
    if (count() !== seen) [seen, progressAt] = [count(), Date.now()];
  }
  return true;
}

