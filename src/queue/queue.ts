/**
 * The queue: Petrel's append-only, log-structured message store (DESIGN.md
 * "The queue log"). Sessions stream BODY chunks in as they arrive and call
 * commit() at end of data; the 250 reply (RFC 5321 §4.1.1.4, §6.1: a server
 * that accepts a message takes responsibility for it) waits for the returned
 * promise, which resolves only after the fdatasync covering the COMMIT record.
 *
 * The delivery side drives each message through its lifecycle (RFC 5321
 * §4.5.4.1 retries, RFC 3464 bounces): due() → recordOutcomes() (one RCPT
 * record per recipient attempt) → finish() (DONE, or a bounce whose COMMIT is
 * itself the DONE: records.ts). Operators hold, release, delete and flush.
 * Every such call resolves after the fsync that makes it durable; the index
 * changes only then, so what list()/due() show is what recovery would show.
 *
 * This file is the adapter: ids, per-transaction body accounting, the
 * bookkeeping of records written but not yet applied, open/recover/close.
 * Framing, records and the index are pure modules; the group-commit writer is
 * committer.ts; replay is recovery.ts; compaction is compactor.ts.
 */
import { Committer } from './committer';
import type { BatchItem, Tail } from './committer';
import { SegmentTable, compact, hasWork } from './compactor';
import type { CompactionHost, CompactionResult } from './compactor';
import { crc32Update } from './framing';
import { IdClock } from './ids';
import { apply, dropPending, toQueuedMessage } from './index';
import type { IndexEntry, QueueIndex } from './index';
import { Unapplied, byArrival, commitRecord, copyRecord, isDue, rcptRecord } from './lifecycle';
import type { RcptOutcome } from './lifecycle';
import { lockQueueDir } from './lock';
import { SharedHandles } from './read-handles';
import { readEntryBody, readEntryMessage } from './reader';
import { HOT_BYTES, HOT_MAX_MESSAGE, HotBodies } from './hot-bodies';
import { ChunkList } from '../message/chunk-list';
import { MAX_BODY_CHUNK, encodeRecord, isValidId } from './records';
import type { CommitRecord } from './records';
import { openTail, replay } from './recovery';
import type { RecoveryReport } from './recovery';
import { fsyncDir, nodeFs } from './segment';
import type { QueueFs } from './segment';
import { QueueError } from './types';
import type { Envelope, QueuedMessage } from './types';

export { QueueError } from './types';
export type { Envelope, QueuedMessage, QueuedRecipient, QueueErrorCode, RecipientState } from './types';
export type { QueueFs, QueueFile } from './segment';
export type { RecoveryReport } from './recovery';
export type { CompactionResult } from './compactor';
export type { RcptOutcome } from './lifecycle';
export { readQueue } from './reader';

export interface QueueOptions {
  /** Rotate to a new segment once the current one reaches this size (default 64 MiB). */
  segmentBytes?: number;
  /** Default true; false only for benchmarks: nothing is then durable. */
  fsync?: boolean;
  /** Injectable file system, for fault tests. */
  fs?: QueueFs;
  /** Bytes of recently committed bodies kept in memory for delivery (hot-bodies.ts); 0: always read the log. */
  hotBytes?: number;
}

export type OperatorAction = 'hold' | 'release' | 'delete' | 'flush';

/** Callers pause their sockets while backlogBytes is above this… */
export const BACKLOG_HIGH_WATER = 8 * 1024 * 1024;
/** …and resume when onDrain fires, at or below this. */
export const BACKLOG_LOW_WATER = 2 * 1024 * 1024;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Chunks below this are gathered into one BODY record of at least this size. */
const SMALL_CHUNK = 4096;

interface Txn {
  seq: number;
  size: number;
  crc: number;
  /** The chunks as appended, while the message is small enough for the hot cache; null past HOT_MAX_MESSAGE. */
  hot: ChunkList | null;
  /** Small chunks not yet written as a BODY record (appendBody). */
  small: ChunkList;
}

export class Queue {
  private readonly txns = new Map<string, Txn>();
  private readonly committing = new Set<string>();
  private readonly committer: Committer;
  private readonly ids = new IdClock();
  private readonly segmentBytes: number;
  private readonly fsync: boolean;
  private closed = false;
  private unlock: () => Promise<void> = async () => undefined;
  /** Records appended but not yet applied (lifecycle.ts). */
  private readonly unapplied = new Unapplied();
  private readonly availableCbs: ((id: string) => void)[] = [];
  private readonly segments: SegmentTable;
  private compacting: Promise<CompactionResult> | null = null;
  private readonly handles: SharedHandles;
  private readonly hot: HotBodies;

  private constructor(
    private readonly dir: string,
    private readonly fs: QueueFs,
    private readonly index: QueueIndex,
    readonly recoveryReport: RecoveryReport,
    sizes: Map<number, number>,
    tail: Tail,
    opts: QueueOptions,
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.fsync = opts.fsync ?? true;
    if (sizes.has(tail.segment)) sizes.set(tail.segment, tail.offset); // a torn tail was cut off
    this.segments = new SegmentTable(sizes);
    this.handles = new SharedHandles(fs, dir);
    this.hot = new HotBodies(opts.hotBytes ?? HOT_BYTES);
    this.committer = new Committer(
      { fs, dir, segmentBytes: this.segmentBytes, fsync: this.fsync, lowWater: BACKLOG_LOW_WATER, onWritten: (items) => this.applyWritten(items) },
      tail,
    );
    for (const id of index.messages.keys()) this.ids.observe(id);
  }

  /** mkdir -p, replay the segments, truncate a torn tail of the newest one, rebuild the index. */
  static async open(dir: string, opts: QueueOptions = {}): Promise<Queue> {
    const fs = opts.fs ?? nodeFs;
    await fs.mkdir(dir, { recursive: true });
    const unlock = await lockQueueDir(dir);
    try {
      const { index, report, newest, sizes } = await replay(fs, dir);
      const fsync = opts.fsync ?? true;
      const tail = await openTail(fs, dir, newest, report, fsync);
      // the newest segment's name may never have been made durable before a crash
      if (fsync && tail.fh) await fsyncDir(fs, dir);
      const q = new Queue(dir, fs, index, report, sizes, tail, opts);
      q.unlock = unlock;
      await q.committer.durable(); // a new segment's header and directory entry are on disk before we accept mail
      return q;
    } catch (err) {
      await unlock();
      throw err;
    }
  }

  /** 15 Crockford base32 characters: unique, sortable by time (ids.ts). */
  newId(): string {
    return this.ids.next();
  }

  /** Queues a chunk for the next write (split into ≤ 64 KiB BODY records). Dropped if the queue is unusable: commit() reports it. */
  appendBody(id: string, chunk: Buffer): void {
    if (!isValidId(id)) throw new RangeError(`invalid queue id: ${JSON.stringify(id)}`);
    if (this.closed || this.committer.failure) return;
    let t = this.txns.get(id);
    if (!t) {
      t = { seq: 0, size: 0, crc: 0, hot: new ChunkList(), small: new ChunkList() };
      this.txns.set(id, t);
    }
    if (t.hot && t.hot.bytes + chunk.length > HOT_MAX_MESSAGE) t.hot = null;
    t.hot?.push(chunk);
    // A client sending a byte per packet must not cost a BODY record (~20 bytes of log) per byte: small chunks wait.
    if (chunk.length < SMALL_CHUNK) {
      t.small.push(chunk);
      if (t.small.bytes >= SMALL_CHUNK) this.flushSmall(id, t);
      return;
    }
    this.flushSmall(id, t);
    this.appendRecords(id, t, chunk);
  }

  private flushSmall(id: string, t: Txn): void {
    if (t.small.bytes === 0) return;
    const parts = t.small.take();
    this.appendRecords(id, t, parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
  }

  /** BODY records of at most 64 KiB each. */
  private appendRecords(id: string, t: Txn, chunk: Buffer): void {
    for (let at = 0; at < chunk.length; at += MAX_BODY_CHUNK) {
      const bytes = chunk.subarray(at, at + MAX_BODY_CHUNK);
      this.committer.append({ kind: 'body', id, seq: t.seq, bytes });
      t.seq += 1;
      t.size += bytes.length;
      t.crc = crc32Update(t.crc, bytes);
    }
  }

  /**
   * Appends the COMMIT; resolves only after the fdatasync that covers it.
   * `prefix` is header fields known only at end of data (a DKIM-Signature, an
   * Authentication-Results): stored as the last BODY chunk, delivered first.
   */
  commit(id: string, env: Envelope, prefix?: Buffer): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    if (this.index.messages.has(id) || this.committing.has(id)) return Promise.reject(new Error(`queue id ${id} is already committed`));
    if (prefix && (prefix.length === 0 || prefix.length > MAX_BODY_CHUNK)) return Promise.reject(new RangeError(`prefix of ${prefix?.length} bytes: 1 to ${MAX_BODY_CHUNK} allowed`));
    // The body so far, without the prefix: the cached copy is the message as delivered, prefix first.
    const txn = this.txns.get(id);
    const held = txn?.hot ?? null;
    if (txn) this.flushSmall(id, txn);
    // The prefix is its own last BODY record (the COMMIT's flag says so), never merged with body bytes.
    const t = txn ?? { seq: 0, size: 0, crc: 0, hot: null, small: new ChunkList() };
    if (prefix) this.appendRecords(id, t, prefix);
    this.txns.delete(id);
    // Cached before the fsync, so the delivery woken by it finds it.
    if (held) this.hot.put(id, Buffer.concat(prefix ? [prefix, ...held.take()] : held.take()));
    try {
      this.committer.append(commitRecord(id, { ...env, prefixed: prefix !== undefined }, t.size, t.seq, t.crc));
    } catch (e) {
      this.committer.forget(id); // an envelope field too long for the codec: its BODY records are garbage
      this.hot.delete(id);
      return Promise.reject(e);
    }
    this.committing.add(id);
    return this.committer
      .durable()
      .catch((e: unknown) => {
        this.hot.delete(id);
        throw e;
      })
      .finally(() => this.committing.delete(id));
  }

  /** Enqueues a message made here (a bounce, `petrel sendmail`): BODY chunks + COMMIT, durable on resolve. */
  async submit(envelope: Envelope, body: Buffer, prefix?: Buffer): Promise<string> {
    const id = this.newId();
    this.appendBody(id, body);
    await this.commit(id, envelope, prefix);
    return id;
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

  /** Messages with a recipient queued, or deferred until at most `now`; held and finishing ones excluded. Oldest first. */
  due(now: number): QueuedMessage[] {
    const out: IndexEntry[] = [];
    for (const e of this.index.messages.values()) {
      if (!e.held && !this.unapplied.isFinishing(e.id) && e.recipients.some((r) => isDue(r, now))) out.push(e);
    }
    return out.sort(byArrival).map(toQueuedMessage);
  }

  /** Earliest nextAttempt of any deferred recipient of a message that is not held, or null. */
  nextWake(): number | null {
    let min: number | null = null;
    for (const e of this.index.messages.values()) {
      if (e.held || this.unapplied.isFinishing(e.id)) continue;
      for (const r of e.recipients) {
        if (r.state === 'deferred' && r.nextAttempt !== null && (min === null || r.nextAttempt < min)) min = r.nextAttempt;
      }
    }
    return min;
  }

  /**
   * One RCPT record per outcome (each counts one attempt); resolves after their fsync. A message
   * finished or deleted meanwhile (an operator was quicker) is left alone: there is nothing to record.
   */
  recordOutcomes(id: string, outcomes: { index: number; outcome: RcptOutcome }[]): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    const e = this.index.messages.get(id);
    if (!e || this.unapplied.isFinishing(id) || outcomes.length === 0) return Promise.resolve();
    try {
      for (const o of outcomes) {
        if (!e.recipients[o.index]) throw new RangeError(`message ${id} has no recipient ${o.index}`);
        encodeRecord(rcptRecord(id, o.index, o.outcome, 1)); // refuse before appending anything
      }
    } catch (err) {
      return Promise.reject(err);
    }
    for (const o of outcomes) {
      const attempts = (e.recipients[o.index]?.attempts ?? 0) + this.unapplied.markOutcome(id, o.index, o.outcome.kind) + 1;
      this.committer.append(rcptRecord(id, o.index, o.outcome, attempts));
    }
    return this.committer.durable();
  }

  /**
   * Every recipient is final: appends DONE, or with `bounce` the bounce's BODY records and a COMMIT
   * that also finishes `id` (one record: atomic). Resolves with the bounce's id (or null) after the
   * fsync; null also when the message is already gone. Rejects if a recipient is still open.
   */
  finish(id: string, bounce?: { envelope: Envelope; body: Buffer }): Promise<string | null> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    const e = this.index.messages.get(id);
    if (!e || this.unapplied.isFinishing(id)) return Promise.resolve(null);
    const open = e.recipients.findIndex((r, i) => {
      const s = this.unapplied.stateOf(id, i, r.state);
      return s === 'queued' || s === 'deferred';
    });
    if (open >= 0) return Promise.reject(new Error(`cannot finish ${id}: recipient ${open} is not final`));
    let bounceId: string | null = null;
    try {
      if (bounce) bounceId = this.appendBounce(id, bounce.envelope, bounce.body);
      else this.committer.append({ kind: 'done', id });
    } catch (err) {
      return Promise.reject(err);
    }
    this.unapplied.mark(id, true);
    this.hot.delete(id);
    return this.committer.durable().then(() => bounceId);
  }

  /** hold / release / delete (gone, no bounce) / flush (deferred recipients due now); false for an unknown id. */
  operate(id: string, op: OperatorAction): Promise<boolean> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    if (!this.index.messages.has(id) || this.unapplied.isFinishing(id)) return Promise.resolve(false);
    this.committer.append({ kind: 'op', id, op });
    this.unapplied.mark(id, op === 'delete');
    if (op === 'delete') this.hot.delete(id);
    return this.committer.durable().then(() => true);
  }

  /** `cb` runs right after the fsync whenever a message becomes available: committed, released or flushed. */
  onAvailable(cb: (id: string) => void): void {
    this.availableCbs.push(cb);
  }

  /** Deletes dead sealed segments and empties sparse ones (compactor.ts); no I/O at all when there is nothing to do. */
  compact(): Promise<CompactionResult> {
    if (this.unusable()) return Promise.resolve({ deletedSegments: 0, copiedMessages: 0 });
    this.compacting ??= this.runCompaction().finally(() => {
      this.compacting = null;
    });
    return this.compacting;
  }

  /** Streams the body; the segments it lies in are kept (pinned) until the stream ends, even if compaction moves the message. */
  /** The message as delivered: a stored prefix first, then the rest. */
  readBody(id: string): AsyncIterable<Buffer> {
    if (!this.index.messages.has(id)) throw new Error(`no such message: ${id}`);
    const hot = this.hot.get(id);
    return hot ? once(hot) : this.pinnedBody(id, readEntryMessage);
  }

  /** segment number → live messages with records in it (for compaction: 0 means the segment is dead). */
  get liveBySegment(): ReadonlyMap<number, number> {
    return this.index.live;
  }

  get poisoned(): boolean {
    return this.committer.failure !== null;
  }

  /** Waits for a running compaction, flushes everything, fdatasyncs, closes the file. Later calls reject with 'closed'. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.compacting?.catch(() => undefined);
      await this.committer.close();
    } finally {
      await this.handles.closeAll();
      await this.unlock();
    }
  }

  private unusable(): QueueError | null {
    if (this.closed) return new QueueError('closed', 'queue is closed');
    return this.committer.failure ? this.committer.poisonedError() : null;
  }

  private appendBounce(original: string, env: Envelope, body: Buffer): string {
    const id = this.newId();
    const chunks: Buffer[] = [];
    for (let at = 0; at < body.length; at += MAX_BODY_CHUNK) chunks.push(body.subarray(at, at + MAX_BODY_CHUNK));
    const record: CommitRecord = { ...commitRecord(id, env, body.length, chunks.length, crc32Update(0, body)), finishes: original };
    encodeRecord(record); // refuse an unencodable envelope before any of it is appended
    chunks.forEach((bytes, seq) => this.committer.append({ kind: 'body', id, seq, bytes }));
    this.committer.append(record);
    return id;
  }

  private async *pinnedBody(id: string, read: typeof readEntryBody): AsyncGenerator<Buffer> {
    const entry = this.index.messages.get(id); // the current copy, looked up when reading starts
    if (!entry) throw new Error(`no such message: ${id}`);
    const unpin = this.segments.pin([...new Set(entry.chunks.map((c) => c.segment))]);
    try {
      yield* read(this.handles, entry);
    } finally {
      unpin();
    }
  }

  private async runCompaction(): Promise<CompactionResult> {
    const h = this.compactionHost();
    if (!hasWork(h)) return { deletedSegments: 0, copiedMessages: 0 };
    try {
      return await compact(h);
    } finally {
      // deleted segments: their blocks stay allocated while a handle is open
      await this.handles.keepOnly((s) => this.segments.size(s) > 0);
    }
  }

  private compactionHost(): CompactionHost {
    return {
      index: this.index,
      fs: this.fs,
      dir: this.dir,
      fsync: this.fsync,
      maxCopyBytes: this.segmentBytes,
      segments: this.segments,
      copyable: (id) => !this.unusable() && this.unapplied.isSettled(id),
      // stored order: a copy must keep the prefix chunk last
      readBody: (id) => this.pinnedBody(id, readEntryBody),
      appendCopy: (entry, chunks) => this.appendCopy(entry, chunks),
      durable: () => this.committer.durable(),
    };
  }

  /** Re-appends a message with its current state (compactor.ts), unless it changed while its body was read. */
  private appendCopy(entry: IndexEntry, chunks: Buffer[]): boolean {
    const id = entry.id;
    if (this.index.messages.get(id) !== entry || this.unusable() || !this.unapplied.isSettled(id)) return false;
    let crc = 0;
    let size = 0;
    for (const c of chunks) {
      crc = crc32Update(crc, c);
      size += c.length;
    }
    const record = copyRecord(entry, size, chunks.length, crc);
    chunks.forEach((bytes, seq) => this.committer.append({ kind: 'body', id, seq, bytes }));
    this.committer.append(record);
    return true;
  }

  /** Records become visible in the index only once written (and, for anything but BODY, synced). */
  private applyWritten(items: BatchItem[]): void {
    const available: string[] = [];
    for (const item of items) {
      if (item.kind === 'forget') {
        dropPending(this.index, item.id);
        continue;
      }
      this.segments.note(item.location);
      if (!item.record) continue;
      apply(this.index, item.record, item.location);
      const ready = this.unapplied.settle(item.record, (id) => this.index.messages.get(id)?.held);
      if (ready !== null) available.push(ready);
    }
    for (const id of available) this.announce(id);
  }

  private announce(id: string): void {
    for (const cb of this.availableCbs) {
      try {
        cb(id);
      } catch (e) {
        // a listener's bug must not stall the group-commit loop that called us
        process.emitWarning(`queue onAvailable listener threw: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
}

async function* once(body: Buffer): AsyncGenerator<Buffer> {
  yield body;
}
