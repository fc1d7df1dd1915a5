/**
 * Recovery: replays the segments in log order through the framing decoder,
 * the record codec and the index reducer, and says what it found.
 *
 * - In the newest segment, anything after the last complete record is a torn
 *   tail (the process died mid-append): it is not corruption, and the writer
 *   truncates it. A read-only scan just ignores it (it may be mid-write).
 * - In a sealed segment, a CRC error is corruption: reported, the rest of the
 *   block skipped (LevelDB resync), startup never aborted.
 * - Transactions whose COMMIT never made it are dropped (their sessions are gone,
 *   and their clients never saw a 250).
 */
import { SegmentWalker } from './framing';
import type { SegmentHeader } from './framing';
import { apply, dropAllPending, emptyIndex } from './index';
import type { IndexProblem, QueueIndex } from './index';
import { decodeRecord } from './records';
import type { Tail } from './committer';
import { listSegments, readSegments, segmentPath } from './segment';
import type { QueueFs } from './segment';

export interface SegmentCorruption {
  readonly segment: number;
  readonly offset: number;
  readonly bytes: number;
  readonly reason: string;
}

export interface RecoveryReport {
  /** Segment numbers replayed, in order. */
  readonly segments: number[];
  /** Torn tail cut off the newest segment (set by the writer, never by a read-only scan). */
  truncated: { segment: number; from: number; to: number } | null;
  readonly corruptions: SegmentCorruption[];
  /** Index-level inconsistencies (missing chunks, out-of-range recipients). */
  readonly problems: IndexProblem[];
  /** Uncommitted transactions whose BODY records were ignored. */
  droppedTransactions: number;
}

export interface NewestSegment {
  readonly segment: number;
  readonly header: SegmentHeader | null;
  readonly recordCount: number;
  readonly validEnd: number;
  readonly size: number;
}

export interface Replay {
  readonly index: QueueIndex;
  readonly report: RecoveryReport;
  readonly newest: NewestSegment | null;
  /** segment → file size as read (compaction weighs live bytes against it). */
  readonly sizes: Map<number, number>;
}

export async function replay(fs: QueueFs, dir: string): Promise<Replay> {
  const index = emptyIndex();
  const segments = await listSegments(fs, dir);
  const report: RecoveryReport = { segments: [], truncated: null, corruptions: [], problems: index.problems, droppedTransactions: 0 };
  let newest: NewestSegment | null = null;
  const sizes = new Map<number, number>();
  const last = segments[segments.length - 1];
  let seg: SegmentReplay | null = null;
  for await (const piece of readSegments(fs, dir, segments)) {
    seg ??= new SegmentReplay(index, piece.segment);
    seg.feed(piece.bytes);
    if (!piece.last) continue;
    report.segments.push(piece.segment);
    sizes.set(piece.segment, seg.size);
    newest = seg.finish(report, piece.segment === last);
    seg = null;
  }
  report.droppedTransactions = index.pending.size;
  dropAllPending(index);
  // a finished message's COMMIT may outlive the BODY segments compaction already deleted: not a problem
  const live = index.problems.filter((p) => index.messages.has(p.id));
  index.problems.splice(0, index.problems.length, ...live);
  return { index, report, newest, sizes };
}

/** One segment's replay, fed piece by piece: records go to the index as they are found. */
class SegmentReplay {
  private readonly walker: SegmentWalker;
  private readonly bad: SegmentCorruption[] = [];
  size = 0;

  constructor(index: QueueIndex, private readonly segment: number) {
    // one Location for the whole segment: the index copies what it keeps, so a million records make no garbage here
    const at = { segment, offset: 0, end: 0 };
    this.walker = new SegmentWalker((payload, offset, end) => {
      const decoded = decodeRecord(payload);
      at.offset = offset;
      at.end = end;
      if (decoded.ok) apply(index, decoded.record, at);
      else if (!decoded.ignorable) this.bad.push({ segment, offset, bytes: end - offset, reason: decoded.reason });
    });
  }

  feed(bytes: Buffer): void {
    this.walker.feed(bytes);
    this.size += bytes.length;
  }

  finish(report: RecoveryReport, isNewest: boolean): NewestSegment {
    const segment = this.segment;
    const scan = this.walker.result();
    const tornFrom = isNewest ? scan.validEnd : Infinity;
    const empty = scan.header === null && scan.recordCount === 0;
    for (const c of scan.corruptions) {
      // the newest segment's tail is a crash artifact; so is a header torn at creation
      if (c.offset >= tornFrom || (isNewest && empty)) continue;
      report.corruptions.push({ segment, ...c });
    }
    if (scan.header && scan.header.segment !== segment) {
      report.corruptions.push({ segment, offset: 0, bytes: 0, reason: `header names segment ${scan.header.segment}` });
    }
    for (const c of this.bad) report.corruptions.push(c); // after the scan's own, as before; no spread: there may be many
    return { segment, header: scan.header, recordCount: scan.recordCount, validEnd: scan.validEnd, size: this.size };
  }
}

/** Where appending resumes: after the newest segment's last complete record (cutting a torn tail off). */
export async function openTail(fs: QueueFs, dir: string, newest: NewestSegment | null, report: RecoveryReport, fsync: boolean): Promise<Tail> {
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
