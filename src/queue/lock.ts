/**
 * One writer per queue directory. Two servers appending to the same segment
 * would interleave records and corrupt the log, so `Queue.open` takes
 * `LOCK` (created exclusively, holding the owner's pid). A lock left by a
 * process that no longer exists (after a SIGKILL or a crash) is stale and
 * is taken over; one held by a live process makes the open fail.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { QueueError } from './types';

export async function lockQueueDir(dir: string): Promise<() => Promise<void>> {
  const file = join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => unlink(file).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && (owner === process.pid || alive(owner))) {
      throw new QueueError('io', `queue directory ${dir} is in use by process ${owner} (remove ${file} if that is wrong)`);
    }
    await unlink(file).catch(() => undefined);
  }
  throw new QueueError('io', `cannot lock queue directory ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
