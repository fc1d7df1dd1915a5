/**
 * File-system edge of the queue log: segment file names, the injectable fs
 * surface (so fault tests can fail a write or an fsync on purpose), directory
 * fsync, and reading a record back by its location.
 *
 * Segments are named by zero-padded number (00000001.log) so that name order
 * is log order (Kafka). After a segment is created or unlinked the directory
 * itself is fsync'd, or the new name may not survive a crash (chasquid safeio,
 * LevelDB env_posix SyncDirIfManifest).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readRecordAt } from './framing';
import type { Location } from './index';

/** The subset of a node:fs/promises FileHandle the queue uses. */
export interface QueueFile {
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(len: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** The subset of node:fs/promises the queue uses; inject a wrapper to simulate faults. */
export interface QueueFs {
  mkdir(dir: string, opts: { recursive: true }): Promise<unknown>;
  readdir(dir: string): Promise<string[]>;
  readFile(file: string): Promise<Buffer>;
  open(file: string, flags: string): Promise<QueueFile>;
  /** Compaction only; node:fs/promises unlink when absent. */
  unlink?(file: string): Promise<void>;
}

export const nodeFs: QueueFs = {
  mkdir: (dir, opts) => fsp.mkdir(dir, opts),
  readdir: (dir) => fsp.readdir(dir),
  readFile: (file) => readWhole(file),
  open: (file, flags) => fsp.open(file, flags),
  unlink: (file) => fsp.unlink(file),
};

/**
 * The whole file with one read call (one thread-pool job), where fs.readFile
 * takes 512 KiB per event-loop round trip: so recovery can decode one segment
 * while the next is being read. A file growing meanwhile yields a prefix, as
 * readFile may too; recovery treats any tail as torn.
 */
async function readWhole(file: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const buf = Buffer.allocUnsafe(size);
    let n = 0;
    while (n < size) {
      const { bytesRead } = await fh.read(buf, n, size - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return n < size ? buf.subarray(0, n) : buf;
  } finally {
    await fh.close();
  }
}

const SEGMENT_NAME = /^(\d{8,10})\.log$/;

export function segmentName(n: number): string {
  return `${String(n).padStart(8, '0')}.log`;
}

export function segmentPath(dir: string, n: number): string {
  return path.join(dir, segmentName(n));
}

/** Segment numbers present in `dir`, ascending; other files are left alone. */
export async function listSegments(fs: QueueFs, dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw e;
  }
  const nums: number[] = [];
  for (const name of names) {
    const m = SEGMENT_NAME.exec(name);
    if (m?.[1] !== undefined) nums.push(Number(m[1]));
  }
  return nums.sort((a, b) => a - b);
}

export async function fsyncDir(fs: QueueFs, dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Unlinks a segment (already gone is fine: a crash may have come between unlink and bookkeeping), then makes that durable. */
export async function unlinkSegment(fs: QueueFs, dir: string, n: number, fsync: boolean): Promise<void> {
  const file = segmentPath(dir, n);
  try {
    await (fs.unlink ? fs.unlink(file) : fsp.unlink(file));
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
  }
  if (fsync) await fsyncDir(fs, dir);
}

/** Writes all buffers at `position`, continuing after a short write so the real error (ENOSPC) surfaces. */
export async function writeAll(fh: QueueFile, buffers: Buffer[], position: number): Promise<number> {
  let pos = position;
  let rest = buffers;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, pos);
    if (bytesWritten <= 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    pos += bytesWritten;
    rest = skipBytes(rest, bytesWritten);
  }
  return pos;
}

function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  let left = n;
  let i = 0;
  while (i < buffers.length && left >= (buffers[i]?.length ?? 0)) left -= buffers[i++]?.length ?? 0;
  const rest = buffers.slice(i);
  const head = rest[0];
  if (head !== undefined && left > 0) rest[0] = head.subarray(left);
  return rest;
}

/** Reads exactly [loc.offset, loc.end) and unframes the record there; null if not intact. */
export async function readLogRecord(fh: QueueFile, loc: Location): Promise<Buffer | null> {
  const buf = Buffer.allocUnsafe(loc.end - loc.offset);
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, loc.offset + got);
    if (bytesRead === 0) return null;
    got += bytesRead;
  }
  return readRecordAt(buf, loc.offset);
}

export function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}
