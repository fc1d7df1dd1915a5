import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Queue } from '../../src/queue/queue';

describe('queue directory lock (one writer per queue)', () => {
  it('refuses a second writer while the first is open, and allows it after close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-lock-'));
    const first = await Queue.open(dir);
    expect(readFileSync(join(dir, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
    // Same process, but the lock is about the directory: a second Queue must still be refused.
    await expect(Queue.open(dir)).rejects.toThrow(/in use|cannot lock/);
    await first.close();
    const second = await Queue.open(dir);
    await second.close();
  });

  it('takes over a stale lock left by a process that no longer exists (SIGKILL)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-lock-'));
    mkdirSync(dir, { recursive: true });
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(dir, 'LOCK'), `${gone}\n`);
    const q = await Queue.open(dir);
    expect(readFileSync(join(dir, 'LOCK'), 'utf8').trim()).toBe(String(process.pid));
    await q.close();
  });

  it('refuses a lock held by another live process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-lock-'));
    // pid 1 always exists.
    writeFileSync(join(dir, 'LOCK'), '1\n');
    await expect(Queue.open(dir)).rejects.toThrow(/in use by process 1/);
  });
});
