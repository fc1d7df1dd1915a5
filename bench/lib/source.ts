/**
 * The load for bench/run.ts: Postfix's smtp-source, N messages of a given
 * payload size over S parallel sessions, one message per connection (its
 * default: connect, EHLO, MAIL, RCPT, DATA, QUIT). smtp-source prints nothing
 * by default and exits non-zero at the first reply that is not the expected
 * positive one, so exit status 0 means every message got its 250 after the
 * data (RFC 5321 §4.1.1.4); the process is timed from spawn to exit.
 * Bounded: killed by its pid after timeoutMs or on abort.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export const SMTP_SOURCE = '/usr/sbin/smtp-source';

export interface SourceLoad {
  readonly host: string;
  readonly port: number;
  readonly sessions: number;
  readonly messages: number;
  /** Payload bytes per message (smtp-source -l), its few header lines not included. */
  readonly size: number;
  readonly timeoutMs: number;
}

export interface SourceResult {
  readonly ok: boolean;
  readonly ms: number;
  /** Why it failed: exit status or signal and smtp-source's own words. */
  readonly error: string | null;
}

export function sourceBinary(): string {
  if (existsSync(SMTP_SOURCE)) return SMTP_SOURCE;
  throw new Error('smtp-source not found: install the Debian package postfix (npm run bench installs it when run as root)');
}

export function sourceArgs(l: SourceLoad): string[] {
  return ['-s', String(l.sessions), '-m', String(l.messages), '-l', String(l.size), '-M', 'source.bench', '-f', 'load@source.bench', '-t', 'rcpt@sink.bench', `${l.host}:${l.port}`];
}

export function runSource(load: SourceLoad, signal: AbortSignal): Promise<SourceResult> {
  const t0 = performance.now();
  const child = spawn(sourceBinary(), sourceArgs(load), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => void (stderr += s));
  let why = '';
  const kill = (reason: string): void => {
    why = reason;
    child.kill('SIGKILL');
  };
  const timer = setTimeout(() => kill(`timed out after ${load.timeoutMs} ms`), load.timeoutMs);
  const onAbort = (): void => kill('aborted');
  signal.addEventListener('abort', onAbort, { once: true });
  return new Promise((resolve) => {
    const finish = (error: string | null): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ ok: error === null, ms: performance.now() - t0, error });
    };
    child.once('error', (e) => finish(`smtp-source: ${e.message}`));
    child.once('exit', (code, sig) => finish(code === 0 && why === '' ? null : `smtp-source ${why || `exited ${code ?? sig}`}${stderr.trim() ? `: ${stderr.trim().slice(0, 500)}` : ''}`));
  });
}
