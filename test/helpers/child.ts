/**
 * Child processes the tests and benchmarks start themselves (dnsmasq,
 * smtp-sink, …): wait until one listens, stop it by its own pid. Never by a
 * name: a system instance of the same program is not ours to touch.
 */
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

/** SIGTERM to this child only; SIGKILL if it lingers past 2 s. */
export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** True once host:port accepts a TCP connection (within 5 s), false if the child died or never listened. */
export async function listening(host: string, port: number, child: ChildProcess): Promise<boolean> {
  for (const end = Date.now() + 5000; Date.now() < end; ) {
    if (child.exitCode !== null) return false;
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}
