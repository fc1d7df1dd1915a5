/**
 * Group commit for the queue log (LevelDB DBImpl::Write, in Node form).
 *
 * Records are framed as they are appended (the tail offset is known), and go
 * into the current batch. While no write is in flight the batch is written
 * with one writev, then one fdatasync if any waiter in it needs durability;
 * everyone in the batch resolves after that, and records appended meanwhile
 * form the next batch. One fdatasync thus covers many messages.
 *
 * A failed write or fsync POISONS the log: the state of the file is unknown,
 * and after a failed fsync Linux may already have dropped the dirty pages and
 * cleared the error, so a retry would report success for lost data
 * (PostgreSQL "fsyncgate", 2018). Every pending and later waiter is rejected;
 * the process is expected to exit and recover from the log.
 *
 * Rotation: once the tail passes segmentBytes, the next record starts a new
 * segment with its header record; the old one is fdatasync'd and closed
 * (sealed) before the new one is created, and the directory is fsync'd.
 */
import { encodeSegmentHeader, frameRecord } from './framing';
import type { Location } from './index';
import { encodeRecord } from './records';
import type { QueueRecord } from './records';
import { errno, fsyncDir, segmentPath, writeAll } from './segment';
import type { QueueFile, QueueFs } from './segment';
import { QueueError } from './types';

/** A BODY, COMMIT…, or an index-only action (a discarded transaction) kept in log order. */
export type BatchItem =
  | { kind: 'write'; segment: number; position: number; buffers: Buffer[]; bytes: number; record: QueueRecord | null; location: Location }
  | { kind: 'forget'; id: string };

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

interface Batch {
  items: BatchItem[];
  bytes: number;
  waiters: Waiter[];
}

export interface CommitterOptions {
  fs: QueueFs;
  dir: string;
  segmentBytes: number;
  fsync: boolean;
  /** Called, in log order, with each batch's items once they are written (and synced if asked). */
  onWritten(items: BatchItem[]): void;
  /** backlogBytes at or below which onDrain callbacks run. */
  lowWater: number;
}

export interface Tail {
  segment: number;
  offset: number;
  /** The open segment file, or null if `segment` does not exist yet. */
  fh: QueueFile | null;
}

function newBatch(): Batch {
  return { items: [], bytes: 0, waiters: [] };
}

export class Committer {
  private segment: number;
  private offset: number;
  private fh: QueueFile | null;
  private fhSegment: number;
  private batch = newBatch();
  private writing = false;
  private scheduled = false;
  private inFlightBytes = 0;
  private drainCallbacks: (() => void)[] = [];
  failure: QueueError | null = null;

  constructor(private readonly opts: CommitterOptions, tail: Tail) {
    this.segment = tail.segment;
    this.offset = tail.offset;
    this.fh = tail.fh;
    this.fhSegment = tail.fh ? tail.segment : -1;
    if (this.offset === 0) this.push(encodeSegmentHeader(this.segment), null);
  }

  /** Frames and queues a record; returns where it will lie in the log. */
  append(record: QueueRecord): Location {
    const payload = encodeRecord(record); // may throw (field too long): before any state changes
    if (this.offset >= this.opts.segmentBytes) {
      this.segment += 1;
      this.offset = 0;
      this.push(encodeSegmentHeader(this.segment), null);
    }
    return this.push(payload, record);
  }

  /** Resolves once everything appended so far is written and fdatasync'd. */
  durable(): Promise<void> {
    if (this.failure) return Promise.reject(this.poisonedError());
    return new Promise((resolve, reject) => {
      this.batch.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Queues an index-only action in log order (it applies after earlier records). */
  forget(id: string): void {
    this.batch.items.push({ kind: 'forget', id });
    this.kick();
  }

  get backlogBytes(): number {
    return this.batch.bytes + this.inFlightBytes;
  }

  onDrain(cb: () => void): void {
    if (this.backlogBytes <= this.opts.lowWater || this.failure) queueMicrotask(cb);
    else this.drainCallbacks.push(cb);
  }

  /** Waits for all writes, then closes the file (no fsync if poisoned: never retry one). */
  async close(): Promise<void> {
    try {
      if (!this.failure) await this.durable();
    } finally {
      const fh = this.fh;
      this.fh = null;
      await fh?.close();
    }
  }

  poisonedError(): QueueError {
    const cause = this.failure;
    return new QueueError(cause?.code === 'storage-full' ? 'storage-full' : 'poisoned', `queue log poisoned by an earlier failure: ${cause?.message ?? '?'}`, { cause });
  }

  private push(payload: Buffer, record: QueueRecord | null): Location {
    const f = frameRecord(this.offset, payload);
    const bytes = f.offset - this.offset;
    const location: Location = { segment: this.segment, offset: f.start, end: f.offset };
    this.batch.items.push({ kind: 'write', segment: this.segment, position: this.offset, buffers: f.buffers, bytes, record, location });
    this.batch.bytes += bytes;
    this.offset = f.offset;
    this.kick();
    return location;
  }

  private kick(): void {
    if (this.writing || this.scheduled || this.failure) return;
    this.scheduled = true;
    // a microtask lets a synchronous burst of appends (one socket read) share a write
    queueMicrotask(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (!this.failure && (this.batch.items.length > 0 || this.batch.waiters.length > 0)) {
        const b = this.batch;
        this.batch = newBatch();
        this.inFlightBytes = b.bytes;
        try {
          await this.writeBatch(b);
        } catch (e) {
          this.poison(e, b);
          return;
        }
        this.inFlightBytes = 0;
        this.opts.onWritten(b.items);
        for (const w of b.waiters) w.resolve();
        this.maybeDrain();
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeBatch(b: Batch): Promise<void> {
    const items = b.items.filter((i) => i.kind === 'write');
    let i = 0;
    while (i < items.length) {
      const head = items[i];
      if (!head) break;
      const buffers: Buffer[] = [];
      for (; i < items.length && items[i]?.segment === head.segment; i++) buffers.push(...(items[i]?.buffers ?? []));
      const fh = await this.fileFor(head.segment);
      await writeAll(fh, buffers, head.position);
    }
    if (b.waiters.length > 0 && this.opts.fsync && this.fh) await this.fh.datasync();
  }

  /** The open file for `segment`, sealing the previous one and creating this one if needed. */
  private async fileFor(segment: number): Promise<QueueFile> {
    if (this.fh && this.fhSegment === segment) return this.fh;
    if (this.fh) {
      // seal: nothing in the new segment may become durable before the old one is
      if (this.opts.fsync) await this.fh.datasync();
      const old = this.fh;
      this.fh = null;
      await old.close();
    }
    // 'wx': a segment number is never reused; an existing file means a bug, not a reason to clobber it
    const fh = await this.opts.fs.open(segmentPath(this.opts.dir, segment), 'wx');
    this.fh = fh;
    this.fhSegment = segment;
    if (this.opts.fsync) await fsyncDir(this.opts.fs, this.opts.dir);
    return fh;
  }

  private poison(e: unknown, b: Batch): void {
    const code = errno(e);
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    const msg = e instanceof Error ? e.message : String(e);
    this.failure = new QueueError(full ? 'storage-full' : 'io', `queue log write failed: ${msg}`, { cause: e });
    const waiters = [...b.waiters, ...this.batch.waiters];
    this.batch = newBatch();
    this.inFlightBytes = 0;
    for (const w of waiters) w.reject(this.failure);
    this.maybeDrain();
  }

  private maybeDrain(): void {
    if (this.backlogBytes > this.opts.lowWater && !this.failure) return;
    const cbs = this.drainCallbacks;
    this.drainCallbacks = [];
    for (const cb of cbs) cb();
  }
}
