/**
 * Read handles on queue segments, shared by every body reader of a running
 * queue. Delivery reads each message's body back once, just after it was
 * committed; opening and closing the segment for every message cost about a
 * tenth of the server's CPU under load (an open, a close and their promise
 * round trips per message, measured with --cpu-prof). Reads are positional
 * (pread), so one handle per segment serves any number of concurrent readers.
 *
 * A handle lives until its segment is retired (compaction deleted it: an open
 * handle would keep the unlinked file's blocks allocated), the queue closes,
 * or a read through it fails (the next reader opens afresh). It is closed
 * only once its last reader has let it go.
 */
import { segmentPath } from './segment';
import type { QueueFile, QueueFs } from './segment';

/** A handle on one segment, lent to one reader. */
export interface Lease {
  readonly fh: QueueFile;
  /** `failed`: a read through this handle failed, so it must not be reused. */
  release(failed: boolean): Promise<void>;
}

/** Where readEntryBody gets a handle for a segment. */
export interface SegmentHandles {
  acquire(segment: number): Promise<Lease>;
}

/** One open per reader, closed after it: for the read-only CLI scan, which must hold nothing open. */
export function oneShotHandles(fs: QueueFs, dir: string): SegmentHandles {
  return {
    acquire: async (segment) => {
      const fh = await fs.open(segmentPath(dir, segment), 'r');
      return { fh, release: () => fh.close() };
    },
  };
}

interface Shared {
  readonly fh: Promise<QueueFile>;
  users: number;
  /** Out of the table: closed when the last user leaves. */
  retired: boolean;
}

export class SharedHandles implements SegmentHandles {
  private readonly table = new Map<number, Shared>();

  constructor(
    private readonly fs: QueueFs,
    private readonly dir: string,
  ) {}

  async acquire(segment: number): Promise<Lease> {
    let s = this.table.get(segment);
    if (!s) {
      s = { fh: this.fs.open(segmentPath(this.dir, segment), 'r'), users: 0, retired: false };
      this.table.set(segment, s);
    }
    const shared = s;
    shared.users += 1;
    let fh: QueueFile;
    try {
      fh = await shared.fh;
    } catch (e) {
      shared.users -= 1;
      this.retire(segment, shared); // a failed open is not cached: the next reader tries again
      throw e;
    }
    return { fh, release: (failed) => this.release(segment, shared, failed) };
  }

  /** Closes (once idle) the handles of segments for which `live` is false: compaction removed them. */
  async keepOnly(live: (segment: number) => boolean): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [segment, s] of this.table) if (!live(segment)) closing.push(this.retire(segment, s));
    await Promise.all(closing);
  }

  async closeAll(): Promise<void> {
    await this.keepOnly(() => false);
  }

  private async release(segment: number, s: Shared, failed: boolean): Promise<void> {
    s.users -= 1;
    if (failed) await this.retire(segment, s);
    else if (s.retired) await this.closeIdle(s);
  }

  private async retire(segment: number, s: Shared): Promise<void> {
    if (this.table.get(segment) === s) this.table.delete(segment);
    s.retired = true;
    await this.closeIdle(s);
  }

  private async closeIdle(s: Shared): Promise<void> {
    if (s.users !== 0) return;
    s.users = -1; // closed: never twice
    const fh = await s.fh.catch(() => null);
    await fh?.close().catch(() => undefined);
  }
}
