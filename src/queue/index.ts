/**
 * The queue index: a reducer over logical records, in the spirit of bitcask's
 * key directory. It maps each committed queue id to its envelope, the log
 * locations of its BODY records and its recipients' states (the append-only
 * form of Postfix's per-recipient cross-off), and counts the live messages
 * that have records in each segment, so compaction can tell dead segments.
 *
 * It also remembers what compaction needs to delete a segment safely. A DONE
 * (or OP delete, or a bounce COMMIT that finishes its original) is a
 * tombstone: it only hides the message's COMMIT records while they are still
 * on disk, and those may lie in OLDER segments (the original and any copies
 * moved forward). Deleting the tombstone's segment before theirs would bring
 * the message back at the next recovery. So a finished message whose COMMITs
 * survive in other segments stays as a ghost {tomb, commits}, and a segment
 * may be deleted only when no live message has a record in it (live count 0)
 * and no ghost has its tombstone there (tombs count 0). dropSegment() is told
 * when a segment is gone, which retires ghosts whose COMMITs are all gone.
 *
 * Pure in the sense that matters for the spec: no I/O, no clock, output
 * determined by the records in order. It updates the index in place and
 * returns it, so replaying a log is O(records), not O(records × messages).
 */
import { assertNever } from '../smtp/assert-never';
import { IndexEntry, PendingBody, segsAdd, segsHas, segsList, segsWithout } from './entry';
import type { Location, Segs } from './entry';
import type { BodyRecord, CommitRecord, OpRecord, QueueRecord, RcptRecord } from './records';
import type { QueuedMessage, QueuedRecipient } from './types';

export { IndexEntry, PendingBody } from './entry';
export type { Location } from './entry';

/** A finished message whose COMMIT records are still on disk in segments other than its tombstone's. */
export interface Ghost {
  readonly tomb: number;
  readonly commits: Set<number>;
}

export interface IndexProblem {
  readonly id: string;
  readonly location: Location;
  readonly problem: string;
}

export interface QueueIndex {
  readonly messages: Map<string, IndexEntry>;
  readonly pending: Map<string, PendingBody>;
  /** segment → number of live (committed or pending) messages with records in it. */
  readonly live: Map<number, number>;
  readonly ghosts: Map<string, Ghost>;
  /** segment → ghosts whose tombstone lies in it: while > 0 the segment must stay. */
  readonly tombs: Map<number, number>;
  readonly problems: IndexProblem[];
  /** The greatest id ever put in `messages` ('' before any): no key sorts after it. */
  topId: string;
}

export function emptyIndex(): QueueIndex {
  return { messages: new Map(), pending: new Map(), live: new Map(), ghosts: new Map(), tombs: new Map(), problems: [], topId: '' };
}

export function apply(index: QueueIndex, record: QueueRecord, at: Location): QueueIndex {
  switch (record.kind) {
    case 'body':
      return applyBody(index, record, at);
    case 'commit':
      return applyCommit(index, record, at);
    case 'rcpt':
      return applyRcpt(index, record, at);
    case 'op':
      return applyOp(index, record, at);
    case 'done':
      return bury(index, record.id, at);
    default:
      return assertNever(record);
  }
}

function applyBody(index: QueueIndex, r: BodyRecord, at: Location): QueueIndex {
  let p = index.pending.get(r.id);
  // seq 0 again: the earlier chunks were a copy cut off by a crash before its COMMIT; start over
  if (p && r.seq === 0 && p.chunkCount > 0) {
    dropPending(index, r.id);
    p = undefined;
  }
  if (!p) {
    if (r.seq !== 0) problem(index, r.id, at, `BODY seq ${r.seq}, expected 0`);
    p = new PendingBody();
    index.pending.set(r.id, p);
  } else if (r.seq !== p.chunkCount) problem(index, r.id, at, `BODY seq ${r.seq}, expected ${p.chunkCount}`);
  p.add(at, r.bytes.length);
  p.segs = touch(index, p.segs, at.segment);
  return index;
}

const NO_BODY = new PendingBody();

function applyCommit(index: QueueIndex, r: CommitRecord, at: Location): QueueIndex {
  if (r.finishes !== undefined && r.finishes !== r.id) bury(index, r.finishes, at);
  // A second COMMIT for an id is a copy moved forward by compaction: the newest wins.
  // Ids grow with time (ids.ts), so most COMMITs carry an id after every one
  // in the map: certainly new, no lookup (in a million-entry map, a lookup
  // that misses costs several cache misses: a third of replay time).
  const prior = r.id > index.topId ? undefined : index.messages.get(r.id);
  const before = prior === undefined ? null : prior.commits;
  const commits = segsAdd(Array.isArray(before) ? [...before] : before, at.segment);
  if (prior !== undefined) drop(index, prior);
  const p = index.pending.get(r.id) ?? NO_BODY;
  index.pending.delete(r.id);
  if (p.chunkCount !== r.chunkCount || p.size !== r.size) {
    problem(index, r.id, at, `COMMIT says ${r.chunkCount} chunks/${r.size} bytes, log has ${p.chunkCount}/${p.size}`);
  }
  const segs = touch(index, p.segs, at.segment);
  index.messages.set(r.id, IndexEntry.of(r, recipientStates(r), p, segs, commits));
  if (r.id > index.topId) index.topId = r.id;
  return index;
}

/** Fresh, or as the snapshot of a copied COMMIT says; one object shape for all, so V8 keeps them small. */
function recipientStates(r: CommitRecord): QueuedRecipient[] {
  // the usual single recipient: a literal, which V8 can pretenure like the entry (IndexEntry.of)
  if (r.recipients.length === 1) return [recipientState(r, 0)];
  const out: QueuedRecipient[] = new Array(r.recipients.length);
  for (let i = 0; i < out.length; i++) out[i] = recipientState(r, i);
  return out;
}

function recipientState(r: CommitRecord, i: number): QueuedRecipient {
  const s = r.snapshot?.recipients[i];
  const address = r.recipients[i] as string;
  return s
    ? { address, state: s.state, attempts: s.attempts, nextAttempt: s.nextAttempt, lastReply: s.lastReply }
    : { address, state: 'queued', attempts: 0, nextAttempt: null, lastReply: null };
}

function applyRcpt(index: QueueIndex, r: RcptRecord, at: Location): QueueIndex {
  const entry = index.messages.get(r.id);
  if (!entry) return index; // already finished: a DONE raced an outcome
  const rcpt = entry.recipients[r.index];
  if (!rcpt) return problem(index, r.id, at, `RCPT index ${r.index} out of range`);
  const o = r.outcome;
  rcpt.state = o.state;
  switch (o.state) {
    case 'delivered':
      rcpt.attempts += 1;
      rcpt.nextAttempt = null;
      if (o.reply !== undefined) rcpt.lastReply = o.reply;
      break;
    case 'deferred':
      rcpt.attempts = o.attempts;
      rcpt.nextAttempt = o.nextAt;
      rcpt.lastReply = o.reply;
      break;
    case 'failed':
      rcpt.attempts += 1;
      rcpt.nextAttempt = null;
      rcpt.lastReply = o.reply;
      break;
    default:
      assertNever(o);
  }
  entry.segs = touch(index, entry.segs, at.segment);
  return index;
}

function applyOp(index: QueueIndex, r: OpRecord, at: Location): QueueIndex {
  const entry = index.messages.get(r.id);
  if (!entry) return index;
  switch (r.op) {
    case 'hold':
    case 'release':
      entry.held = r.op === 'hold';
      break;
    case 'delete':
      return bury(index, r.id, at);
    case 'flush':
      // postqueue -f: every deferred recipient is due now; attempts and last reply stay.
      for (const rcpt of entry.recipients) {
        if (rcpt.state === 'deferred') Object.assign(rcpt, { state: 'queued', nextAttempt: null });
      }
      break;
    default:
      assertNever(r.op);
  }
  entry.segs = touch(index, entry.segs, at.segment);
  return index;
}

/** A tombstone at `at` finishes the message; it becomes a ghost while its COMMITs elsewhere survive. */
function bury(index: QueueIndex, id: string, at: Location): QueueIndex {
  const entry = index.messages.get(id);
  if (!entry) return index;
  forget(index, id);
  const commits = new Set(segsList(segsWithout(entry.commits, at.segment)));
  if (commits.size === 0) return index;
  index.ghosts.set(id, { tomb: at.segment, commits });
  index.tombs.set(at.segment, (index.tombs.get(at.segment) ?? 0) + 1);
  return index;
}

/** May this segment's file be unlinked without losing or resurrecting anything? */
export function isDeletable(index: QueueIndex, segment: number): boolean {
  return !index.live.has(segment) && !index.tombs.has(segment);
}

/** The segment's file is gone: its COMMITs no longer need a tombstone to hide them. */
export function dropSegment(index: QueueIndex, segment: number): void {
  for (const [id, g] of index.ghosts) {
    g.commits.delete(segment);
    if (g.commits.size > 0 && g.tomb !== segment) continue;
    index.ghosts.delete(id);
    const n = (index.tombs.get(g.tomb) ?? 0) - 1;
    if (n > 0) index.tombs.set(g.tomb, n);
    else index.tombs.delete(g.tomb);
  }
  for (const e of index.messages.values()) if (segsHas(e.commits, segment)) e.commits = segsWithout(e.commits, segment);
}

/** Removes a committed message (DONE, OP delete, or superseded by a newer COMMIT). */
function forget(index: QueueIndex, id: string): QueueIndex {
  const entry = index.messages.get(id);
  return entry ? drop(index, entry) : index;
}

function drop(index: QueueIndex, entry: IndexEntry): QueueIndex {
  index.messages.delete(entry.id);
  release(index, entry.segs);
  return index;
}

/** Forgets a transaction that will never commit (aborted, or cut off by a crash). */
export function dropPending(index: QueueIndex, id: string): QueueIndex {
  const p = index.pending.get(id);
  if (!p) return index;
  index.pending.delete(id);
  release(index, p.segs);
  return index;
}

export function dropAllPending(index: QueueIndex): QueueIndex {
  for (const id of [...index.pending.keys()]) dropPending(index, id);
  return index;
}

/** `segs` with `segment` added, counting the message as live there if it was not yet. */
function touch(index: QueueIndex, segs: Segs, segment: number): Segs {
  if (segsHas(segs, segment)) return segs;
  index.live.set(segment, (index.live.get(segment) ?? 0) + 1);
  return segsAdd(segs, segment);
}

function release(index: QueueIndex, segs: Segs): void {
  for (const s of typeof segs === 'number' ? [segs] : (segs ?? [])) {
    const n = (index.live.get(s) ?? 0) - 1;
    if (n > 0) index.live.set(s, n);
    else index.live.delete(s);
  }
}

function problem(index: QueueIndex, id: string, at: Location, text: string): QueueIndex {
  // a copy: recovery reuses one Location object for every record
  index.problems.push({ id, location: { segment: at.segment, offset: at.offset, end: at.end }, problem: text });
  return index;
}

/** The public view of an entry: a deep copy, so callers cannot change the index. */
export function toQueuedMessage(e: IndexEntry): QueuedMessage {
  return {
    id: e.id,
    sender: e.sender,
    size: e.size,
    arrived: e.receivedAt,
    held: e.held,
    recipients: e.recipients.map((r) => ({ ...r })),
    clientIp: e.clientIp,
    helo: e.helo,
    params: e.params,
  };
}
