/**
 * The delivery lifecycle's pieces that need no file: the outcome type the
 * scheduler reports (RFC 5321 §4.2.5, §4.5.4.1: a 2yz reply delivers, 4yz
 * defers and retries, 5yz fails for good), the records Queue appends for each
 * call, which messages are due, and the ledger of records appended but not
 * yet applied to the index.
 *
 * Why the ledger: the index changes only after the fsync, but callers act in
 * between. Two outcomes for one recipient appended before either is applied
 * must still count attempts 1 and 2; finish() right after an un-awaited
 * recordOutcomes() must see the outcome; compaction must not snapshot a
 * message whose state is about to change (the copy's COMMIT would carry the
 * old state past the new record); a message with a DONE on its way is no
 * longer due and cannot be finished twice.
 */
import { assertNever } from '../smtp/assert-never';
import type { IndexEntry } from './index';
import type { CommitRecord, QueueRecord, RcptRecord } from './records';
import type { Envelope, QueuedRecipient, RecipientState } from './types';

/** One delivery attempt's result for one recipient (the remote reply, or Petrel's own reason). */
export type RcptOutcome =
  | { kind: 'delivered'; reply: string }
  | { kind: 'deferred'; reply: string; nextAt: number } // ms since the epoch
  | { kind: 'failed'; reply: string };

export function commitRecord(id: string, env: Envelope, size: number, chunkCount: number, crc: number): CommitRecord {
  const r: CommitRecord = {
    kind: 'commit',
    id,
    receivedAt: env.receivedAt,
    sender: env.sender,
    recipients: [...env.recipients],
    params: { ...env.params },
    clientIp: env.clientIp,
    helo: env.helo,
    size,
    chunkCount,
    bodyCrc: crc >>> 0,
  };
  if (env.prefixed) r.prefixed = true;
  return r;
}

export function rcptRecord(id: string, index: number, o: RcptOutcome, attempts: number): RcptRecord {
  switch (o.kind) {
    case 'delivered':
      return { kind: 'rcpt', id, index, outcome: { state: 'delivered', reply: o.reply } };
    case 'deferred':
      return { kind: 'rcpt', id, index, outcome: { state: 'deferred', nextAt: o.nextAt, attempts, reply: o.reply } };
    case 'failed':
      return { kind: 'rcpt', id, index, outcome: { state: 'failed', reply: o.reply } };
    default:
      return assertNever(o);
  }
}

/** The COMMIT of a copy moved forward: same id and envelope, the current states (records.ts `snapshot`). */
export function copyRecord(entry: IndexEntry, size: number, chunkCount: number, crc: number): CommitRecord {
  const recipients = entry.recipients.map((r) => ({ state: r.state, attempts: r.attempts, nextAttempt: r.nextAttempt, lastReply: r.lastReply }));
  return { ...commitRecord(entry.id, entry.envelope, size, chunkCount, crc), snapshot: { held: entry.held, recipients } };
}

export function isDue(r: QueuedRecipient, now: number): boolean {
  return r.state === 'queued' || (r.state === 'deferred' && (r.nextAttempt ?? 0) <= now);
}

export function byArrival(a: IndexEntry, b: IndexEntry): number {
  return a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Records appended but not yet applied, by message and by recipient. */
export class Unapplied {
  private readonly perMessage = new Map<string, number>();
  private readonly perRcpt = new Map<string, { count: number; state: RecipientState }>();
  private readonly finishing = new Set<string>();

  /** An RCPT/OP/DONE (or a bounce finishing `id`) was appended; `finishes` if it ends the message. */
  mark(id: string, finishes = false): void {
    this.perMessage.set(id, (this.perMessage.get(id) ?? 0) + 1);
    if (finishes) this.finishing.add(id);
  }

  /** An outcome was appended; returns the attempts not yet applied before it. */
  markOutcome(id: string, index: number, state: RecipientState): number {
    const key = `${id} ${index}`;
    const before = this.perRcpt.get(key)?.count ?? 0;
    this.perRcpt.set(key, { count: before + 1, state });
    this.mark(id);
    return before;
  }

  /** The recipient's state once everything appended is applied. */
  stateOf(id: string, index: number, applied: RecipientState): RecipientState {
    return this.perRcpt.get(`${id} ${index}`)?.state ?? applied;
  }

  isFinishing(id: string): boolean {
    return this.finishing.has(id);
  }

  /** Nothing about this message is on its way: a snapshot of it now is its final word. */
  isSettled(id: string): boolean {
    return !this.perMessage.has(id) && !this.finishing.has(id);
  }

  /** `r` was applied: clears its marks. Returns the id it made available for delivery, if any. */
  settle(r: QueueRecord, heldNow: (id: string) => boolean | undefined): string | null {
    switch (r.kind) {
      case 'body':
        return null;
      case 'commit':
        if (r.finishes !== undefined) this.settleFinish(r.finishes);
        return r.snapshot ? null : r.id; // a copy moved forward is not news
      case 'rcpt':
        this.settleOutcome(`${r.id} ${r.index}`);
        this.unmark(r.id);
        return null;
      case 'op':
        if (r.op === 'delete') {
          this.settleFinish(r.id);
          return null;
        }
        this.unmark(r.id);
        return (r.op === 'release' || r.op === 'flush') && heldNow(r.id) === false ? r.id : null;
      case 'done':
        this.settleFinish(r.id);
        return null;
      default:
        return assertNever(r);
    }
  }

  private settleOutcome(key: string): void {
    const p = this.perRcpt.get(key);
    if (p && p.count > 1) this.perRcpt.set(key, { count: p.count - 1, state: p.state });
    else this.perRcpt.delete(key);
  }

  private settleFinish(id: string): void {
    this.unmark(id);
    this.finishing.delete(id);
    for (const key of this.perRcpt.keys()) if (key.startsWith(`${id} `)) this.perRcpt.delete(key);
  }

  private unmark(id: string): void {
    const n = (this.perMessage.get(id) ?? 1) - 1;
    if (n > 0) this.perMessage.set(id, n);
    else this.perMessage.delete(id);
  }
}
