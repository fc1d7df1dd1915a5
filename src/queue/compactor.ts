/**
 * Compaction of the queue log (DESIGN.md "Segments whose messages are all
 * finished are deleted; long-lived messages are copied forward so that disk
 * use stays bounded"), after bitcask's merge and Kafka's segment deletion.
 *
 * Deleting. A sealed segment (older than the one being appended to, and with
 * every record of it already applied to the index) is unlinked when
 * isDeletable() says so: no live message and no open transaction has a record
 * in it, and no tombstone in it still hides a COMMIT that survives in another
 * segment (see index.ts: deleting a DONE before the COMMIT it hides would
 * resurrect the message at the next recovery; deleting the COMMIT first is
 * always safe). So any dead segment may go, in any position, not only the
 * oldest. Segments are tried oldest first, which is the order that unblocks
 * tombstones, and the directory is fsync'd after EACH unlink: every single
 * deletion is safe given the ones before it, so they must become durable in
 * the order they were made. A segment a reader is streaming a body from
 * (pinned) is left for the next round.
 *
 * Copying forward. A sealed segment whose live messages' BODY bytes are under
 * a quarter of its size is mostly garbage held by a few long-lived messages:
 * each of them is re-appended to the active segment (its BODY records, then a
 * COMMIT with a snapshot of the recipients' states and the held flag), the
 * batch is fsync'd, and the old segment, now dead, is deleted. A message with
 * records not yet applied (an outcome or operator action in flight) is not
 * copied this round, so a snapshot never misses a state change; one changed
 * while its body was being read is not copied either.
 *
 * Crash safety: until the copy's COMMIT is durable the old copy is the only
 * one (torn copy BODY records without a COMMIT are dropped at recovery); after
 * that both may be on disk and the newer COMMIT wins in the index, replacing
 * the older entry rather than adding one. Deletion only ever follows the
 * durable COMMIT. At no point is a message lost or present twice.
 *
 * Disk use: every sealed segment is either at least 25 % live or being
 * emptied, so the log stays within about four times the live bytes plus the
 * active segment, except for dead segments whose tombstones wait on a
 * segment that is itself mostly live (they go when it does).
 */
import { dropSegment, isDeletable } from './index';
import type { IndexEntry, Location, QueueIndex } from './index';
import { unlinkSegment } from './segment';
import type { QueueFs } from './segment';

/** Below this fraction of live BODY bytes, a sealed segment's live messages are moved out of it. */
export const COPY_FORWARD_RATIO = 0.25;

/**
 * The segment files as the writer knows them: which exist, how big they are,
 * which are sealed (every record below the newest applied segment has been
 * applied: nothing more will be written there and the index knows all of it),
 * and which a body reader is using (pinned).
 */
export class SegmentTable {
  private readonly pins = new Map<number, number>();
  private applied: number;

  constructor(private readonly sizes: Map<number, number>) {
    this.applied = Math.max(0, ...sizes.keys());
  }

  /** A record or segment header at `loc` has been written and applied. */
  note(loc: Location): void {
    this.sizes.set(loc.segment, Math.max(this.sizes.get(loc.segment) ?? 0, loc.end));
    if (loc.segment > this.applied) this.applied = loc.segment;
  }

  sealed(): number[] {
    return [...this.sizes.keys()].filter((s) => s < this.applied).sort((a, b) => a - b);
  }

  size(segment: number): number {
    return this.sizes.get(segment) ?? 0;
  }

  /** Keeps these segments while a reader streams from them; returns the release. */
  pin(segments: number[]): () => void {
    for (const s of segments) this.pins.set(s, (this.pins.get(s) ?? 0) + 1);
    return () => {
      for (const s of segments) {
        const n = (this.pins.get(s) ?? 1) - 1;
        if (n > 0) this.pins.set(s, n);
        else this.pins.delete(s);
      }
    };
  }

  pinned(segment: number): boolean {
    return this.pins.has(segment);
  }

  gone(segment: number): void {
    this.sizes.delete(segment);
  }
}

/** What compaction needs from the queue; Queue implements it over its private state. */
export interface CompactionHost {
  readonly index: QueueIndex;
  readonly fs: QueueFs;
  readonly dir: string;
  readonly fsync: boolean;
  /** Upper bound on body bytes copied per call, so one call stays short. */
  readonly maxCopyBytes: number;
  readonly segments: SegmentTable;
  /** False while the message has unapplied records, is being finished, or the queue is unusable. */
  copyable(id: string): boolean;
  readBody(id: string): AsyncIterable<Buffer>;
  /** Synchronously re-checks `entry` is current and copyable, then appends the copy; false if it is not. */
  appendCopy(entry: IndexEntry, chunks: Buffer[]): boolean;
  durable(): Promise<void>;
}

export interface CompactionResult {
  deletedSegments: number;
  copiedMessages: number;
}

export async function compact(h: CompactionHost): Promise<CompactionResult> {
  let deletedSegments = await deleteDead(h);
  const victims = copyVictims(h);
  if (victims.length === 0) return { deletedSegments, copiedMessages: 0 };
  const copiedMessages = await copyForward(h, victims);
  if (copiedMessages > 0) {
    await h.durable();
    deletedSegments += await deleteDead(h);
  }
  return { deletedSegments, copiedMessages };
}

/** Without any I/O: is there a segment to delete or one worth emptying? */
export function hasWork(h: CompactionHost): boolean {
  return nextDead(h) !== undefined || copyVictims(h).length > 0;
}

function nextDead(h: CompactionHost): number | undefined {
  return h.segments.sealed().find((s) => isDeletable(h.index, s) && !h.segments.pinned(s));
}

async function deleteDead(h: CompactionHost): Promise<number> {
  let n = 0;
  for (let s = nextDead(h); s !== undefined; s = nextDead(h)) {
    await unlinkSegment(h.fs, h.dir, s, h.fsync);
    dropSegment(h.index, s);
    h.segments.gone(s);
    n += 1;
  }
  return n;
}

/** Ids of the live messages holding mostly-dead sealed segments, oldest first, up to maxCopyBytes of bodies. */
function copyVictims(h: CompactionHost): string[] {
  const sealed = h.segments.sealed();
  if (sealed.length === 0) return [];
  const isSealed = new Set(sealed);
  const liveBytes = new Map<number, number>();
  for (const e of h.index.messages.values()) {
    for (let i = 0; i < e.chunkCount; i++) {
      const c = e.chunkAt(i) as Location;
      if (isSealed.has(c.segment)) liveBytes.set(c.segment, (liveBytes.get(c.segment) ?? 0) + c.end - c.offset);
    }
  }
  const sparse = new Set(sealed.filter((s) => h.index.live.has(s) && (liveBytes.get(s) ?? 0) < COPY_FORWARD_RATIO * h.segments.size(s)));
  if (sparse.size === 0) return [];
  const entries = [...h.index.messages.values()].filter((e) => e.inAnySegment((s) => sparse.has(s)) && h.copyable(e.id));
  entries.sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : 1));
  const out: string[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (out.length > 0 && bytes + e.size > h.maxCopyBytes) break;
    out.push(e.id);
    bytes += e.size;
  }
  return out;
}

async function copyForward(h: CompactionHost, ids: string[]): Promise<number> {
  let n = 0;
  for (const id of ids) {
    const entry = h.index.messages.get(id);
    if (!entry || !h.copyable(id)) continue;
    let chunks: Buffer[];
    try {
      chunks = await collect(h.readBody(id));
    } catch {
      continue; // unreadable (a corrupt sealed segment, reported at recovery): leave it where it is
    }
    if (h.appendCopy(entry, chunks)) n += 1;
  }
  return n;
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const b of body) out.push(b);
  return out;
}
