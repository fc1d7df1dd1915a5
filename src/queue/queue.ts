/**
 * The queue: Petrel's append-only, log-structured message store (DESIGN.md
 * "The queue log"). Sessions stream BODY chunks in as they arrive and call
 * commit() at end of data; the 250 reply (RFC 5321 §4.1.1.4, §6.1: a server
 * that accepts a message takes responsibility for it) waits for the returned
 * promise, which resolves only after the fdatasync covering the COMMIT record.
 *
 * This file is the adapter: id allocation, per-transaction body accounting,
 * open/recover/close. Framing, records and the index are pure modules; the
 * group-commit writer is committer.ts; replay is recovery.ts.
 */
import { Committer } from './committer';
import { crc32Update } from './framing';
import type { BatchItem, Tail } from './committer';
import { apply, dropPending, toQueuedMessage } from './index';
import type { QueueIndex } from './index';
import { readEntryBody } from './reader';
import { MAX_BODY_CHUNK, isValidId } from './records';
import type { CommitRecord } from './records';
import { replay } from './recovery';
import type { NewestSegment, RecoveryReport } from './recovery';
import { lockQueueDir } from './lock';
import { fsyncDir, nodeFs, segmentPath } from './segment';
import type { QueueFs } from './segment';
import { QueueError } from './types';
import type { Envelope, QueuedMessage } from './types';

export { QueueError } from './types';
export type { Envelope, QueuedMessage, QueuedRecipient, QueueErrorCode, RecipientState } from './types';
export type { QueueFs, QueueFile } from './segment';
export type { RecoveryReport } from './recovery';
export { readQueue } from './reader';

export interface QueueOptions {
  /** Rotate to a new segment once the current one reaches this size (default 64 MiB). */
  segmentBytes?: number;
  /** Default true; false only for benchmarks: nothing is then durable. */
  fsync?: boolean;
  /** Injectable file system, for fault tests. */
  fs?: QueueFs;
}

/** Callers pause their sockets while backlogBytes is above this… */
export const BACKLOG_HIGH_WATER = 8 * 1024 * 1024;
/** …and resume when onDrain fires, at or below this. */
export const BACKLOG_LOW_WATER = 2 * 1024 * 1024;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

interface Txn {
  seq: number;
  size: number;
  crc: number;
}

export class Queue {
  private readonly txns = new Map<string, Txn>();
  private readonly committing = new Set<string>();
  private readonly committer: Committer;
  private closed = false;
  private unlock: () => Promise<void> = async () => undefined;
  private lastMs = 0;
  private idSeq = 0;

  private constructor(
    private readonly dir: string,
    private readonly fs: QueueFs,
    private readonly index: QueueIndex,
    readonly recoveryReport: RecoveryReport,
    tail: Tail,
    opts: QueueOptions,
  ) {
    this.committer = new Committer(
      {
        fs,
        dir,
        segmentBytes: opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
        fsync: opts.fsync ?? true,
        lowWater: BACKLOG_LOW_WATER,
        onWritten: (items) => this.applyWritten(items),
      },
      tail,
    );
    for (const id of index.messages.keys()) this.lastMs = Math.max(this.lastMs, idTime(id));
  }

  /** mkdir -p, replay the segments, truncate a torn tail of the newest one, rebuild the index. */
  static async open(dir: string, opts: QueueOptions = {}): Promise<Queue> {
    const fs = opts.fs ?? nodeFs;
    await fs.mkdir(dir, { recursive: true });
    const unlock = await lockQueueDir(dir);
    try {
      const { index, report, newest } = await replay(fs, dir);
      const fsync = opts.fsync ?? true;
      const tail = await openTail(fs, dir, newest, report, fsync);
      // the newest segment's name may never have been made durable before a crash
      if (fsync && tail.fh) await fsyncDir(fs, dir);
      const q = new Queue(dir, fs, index, report, tail, opts);
      q.unlock = unlock;
      await q.committer.durable(); // a new segment's header and directory entry are on disk before we accept mail
      return q;
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  /** 10 Crockford base32 chars of ms since the epoch, then 5 of a per-ms sequence: unique, sortable by time. */
  newId(): string {
    let now = Date.now();
    if (now <= this.lastMs) {
      now = this.lastMs; // same ms, or the clock stepped back: keep ids increasing
      this.idSeq += 1;
      if (this.idSeq >= 32 ** 5) {
        now += 1;
        this.idSeq = 0;
      }
    } else this.idSeq = 0;
    this.lastMs = now;
    return base32(now, 10) + base32(this.idSeq, 5);
  }

  /** Queues a chunk for the next write (split into ≤ 64 KiB BODY records). Dropped if the queue is unusable: commit() reports it. */
  appendBody(id: string, chunk: Buffer): void {
    if (!isValidId(id)) throw new RangeError(`invalid queue id: ${JSON.stringify(id)}`);
    if (this.closed || this.committer.failure) return;
    let t = this.txns.get(id);
    if (!t) {
      t = { seq: 0, size: 0, crc: 0 };
      this.txns.set(id, t);
    }
    for (let at = 0; at < chunk.length; at += MAX_BODY_CHUNK) {
      const bytes = chunk.subarray(at, at + MAX_BODY_CHUNK);
      this.committer.append({ kind: 'body', id, seq: t.seq, bytes });
      t.seq += 1;
      t.size += bytes.length;
      t.crc = crc32Update(t.crc, bytes);
    }
  }

  /** Appends the COMMIT; resolves only after the fdatasync that covers it. */
  commit(id: string, env: Envelope): Promise<void> {
    if (this.closed) return Promise.reject(new QueueError('closed', 'queue is closed'));
    if (this.committer.failure) return Promise.reject(this.committer.poisonedError());
    if (this.index.messages.has(id) || this.committing.has(id)) return Promise.reject(new Error(`queue id ${id} is already committed`));
    const t = this.txns.get(id) ?? { seq: 0, size: 0, crc: 0 };
    this.txns.delete(id);
    const record: CommitRecord = {
      kind: 'commit',
      id,
      receivedAt: env.receivedAt,
      sender: env.sender,
      recipients: [...env.recipients],
      params: { ...env.params },
      clientIp: env.clientIp,
      helo: env.helo,
      size: t.size,
      chunkCount: t.seq,
      bodyCrc: t.crc >>> 0,
    };
    try {
      this.committer.append(record);
    } catch (e) {
      return Promise.reject(e); // an envelope field too long for the codec
    }
    this.committing.add(id);
    return this.committer.durable().finally(() => this.committing.delete(id));
  }

  /** The transaction was aborted: its BODY records stay in the log as garbage, never indexed. */
  discard(id: string): void {
    if (!this.txns.delete(id)) return;
    if (!this.committer.failure) this.committer.forget(id);
  }

  get backlogBytes(): number {
    return this.committer.backlogBytes;
  }

  /** One-shot: `cb` runs once backlogBytes is at or below the low-water mark (at once if it already is). */
  onDrain(cb: () => void): void {
    this.committer.onDrain(cb);
  }

  list(): QueuedMessage[] {
    return [...this.index.messages.values()].map(toQueuedMessage);
  }

  get(id: string): QueuedMessage | undefined {
    const e = this.index.messages.get(id);
    return e ? toQueuedMessage(e) : undefined;
  }

  readBody(id: string): AsyncIterable<Buffer> {
    const entry = this.index.messages.get(id);
    if (!entry) throw new Error(`no such message: ${id}`);
    return readEntryBody(this.fs, this.dir, entry);
  }

  /** segment number → live messages with records in it (for compaction: 0 means the segment is dead). */
  get liveBySegment(): ReadonlyMap<number, number> {
    return this.index.live;
  }

  get poisoned(): boolean {
    return this.committer.failure !== null;
  }

  /** Flushes everything, fdatasyncs, closes the file. Later commits reject with 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.committer.close();
    } finally {
      await this.unlock();
    }
  }

  /** Records become visible in the index only once written (and, for COMMIT, synced). */
  private applyWritten(items: BatchItem[]): void {
    for (const item of items) {
      if (item.kind === 'forget') dropPending(this.index, item.id);
      else if (item.record) apply(this.index, item.record, item.location);
    }
  }
}

/** Where appending resumes: after the newest segment's last complete record (cutting a torn tail off). */
async function openTail(fs: QueueFs, dir: string, newest: NewestSegment | null, report: RecoveryReport, fsync: boolean): Promise<Tail> {
  if (!newest) return { segment: 1, offset: 0, fh: null };
  // a header that is unreadable while later records are fine: keep the file as it is, start afresh
  if (!newest.header && newest.recordCount > 0) return { segment: newest.segment + 1, offset: 0, fh: null };
  const end = newest.header ? newest.validEnd : 0; // no header and no records: creation was torn
  const fh = await fs.open(segmentPath(dir, newest.segment), 'r+');
  if (end < newest.size) {
    await fh.truncate(end);
    if (fsync) await fh.sync();
    report.truncated = { segment: newest.segment, from: end, to: newest.size };
  }
  return { segment: newest.segment, offset: end, fh };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function base32(n: number, width: number): string {
  let s = '';
  let v = n;
  for (let i = 0; i < width; i++) {
    s = CROCKFORD[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return s;
}

/** The time part of an id newId made (0 for any other id, so foreign ids cannot push the clock ahead). */
function idTime(id: string): number {
  if (!/^[0-9A-HJKMNP-TV-Z]{15}$/.test(id)) return 0;
  let ms = 0;
  for (const ch of id.slice(0, 10)) {
    const d = CROCKFORD.indexOf(ch);
    if (d < 0) return 0;
    ms = ms * 32 + d;
  }
  return ms;
}
