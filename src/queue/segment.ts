/**
 * File-system edge of the queue log: segment file names, the injectable fs
 * surface (so fault tests can fail a write or an fsync on purpose), directory
 * fsync, reading a record back by its location, and reading whole segments
 * in pieces for recovery.
 *
 * Segments are named by zero-padded number (00000001.log) so that name order
 * is log order (Kafka). After a segment is created or unlinked the directory
 * itself is fsync'd, or the new name may not survive a crash (chasquid safeio,
 * LevelDB env_posix SyncDirIfManifest).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { BLOCK_SIZE, readRecordAt } from './framing';
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
  open(file: string, flags: string): Promise<QueueFile>;
  /** Compaction only; node:fs/promises unlink when absent. */
  unlink?(file: string): Promise<void>;
}

export const nodeFs: QueueFs = {
  mkdir: (dir, opts) => fsp.mkdir(dir, opts),
  readdir: (dir) => fsp.readdir(dir),
  open: (file, flags) => fsp.open(file, flags),
  unlink: (file) => fsp.unlink(file),
};

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

/** One read's worth of a segment file, for recovery. */
export interface Piece {
  readonly segment: number;
  /** A view into a buffer that is reused once the consumer asks for the next piece. */
  readonly bytes: Buffer;
  /** The file's last piece (possibly empty): its size is the sum of its pieces. */
  readonly last: boolean;
}

/**
 * Bytes per read: a whole number of blocks, so only a file's last piece ends
 * inside one (SegmentWalker.feed), and few enough that two reused buffers are
 * all of the log recovery holds, however large the queue.
 */
export const PIECE_BYTES = 32 * BLOCK_SIZE;

/**
 * The segments' bytes in order, piece by piece, with the next read always in
 * flight while the consumer handles the current piece: decoding, not the disk,
 * should be what recovery waits on. A file is read up to the size it had when
 * opened (one growing meanwhile yields a prefix: recovery treats any tail as
 * torn); one unlinked since the directory was listed is skipped.
 */
export async function* readSegments(fs: QueueFs, dir: string, segments: readonly number[]): AsyncGenerator<Piece> {
  const files = new PieceReader(fs, dir, segments);
  let ahead = Buffer.allocUnsafe(PIECE_BYTES);
  let spare = Buffer.allocUnsafe(PIECE_BYTES);
  let next = files.read(ahead);
  try {
    for (;;) {
      const piece = await next; // its bytes are in `ahead`
      if (piece === null) return;
      [ahead, spare] = [spare, ahead];
      next = files.read(ahead);
      next.catch(() => {}); // handled when awaited; never unhandled if the consumer stops first
      yield piece;
    }
  } finally {
    await next.catch(() => null); // the consumer stopped early: let the read in flight finish before closing its file
    await files.close();
  }
}

/** Sequential reads through a list of segment files, one open at a time. */
class PieceReader {
  private at = 0;
  private fh: QueueFile | null = null;
  private segment = 0;
  private size = 0;
  private pos = 0;

  constructor(
    private readonly fs: QueueFs,
    private readonly dir: string,
    private readonly segments: readonly number[],
  ) {}

  /** The next piece into `buf`, or null after the last file. */
  async read(buf: Buffer): Promise<Piece | null> {
    if (!this.fh && !(await this.openNext())) return null;
    const fh = this.fh as QueueFile;
    let n = 0;
    const want = Math.min(buf.length, this.size - this.pos);
    while (n < want) {
      const { bytesRead } = await fh.read(buf, n, want - n, this.pos + n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    this.pos += n;
    const last = n < buf.length || this.pos >= this.size;
    const piece = { segment: this.segment, bytes: buf.subarray(0, n), last };
    if (last) await this.close();
    return piece;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }

  private async openNext(): Promise<boolean> {
    while (this.at < this.segments.length) {
      const segment = this.segments[this.at++] as number;
      try {
        this.fh = await this.fs.open(segmentPath(this.dir, segment), 'r');
      } catch (e) {
        if (errno(e) === 'ENOENT') continue; // unlinked by a compactor since readdir
        throw e;
      }
      this.segment = segment;
      this.pos = 0;
      try {
        this.size = (await this.fh.stat()).size;
      } catch (e) {
        await this.close();
        throw e;
      }
      return true;
    }
    return false;
  }
}
