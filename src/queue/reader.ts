/**
 * Reading the queue without writing it: streaming a committed body back from
 * its BODY records, and the read-only scan behind `petrel queue list/show`,
 * which must work beside a running server, so it never truncates, creates or
 * locks anything and treats the newest segment's tail as possibly mid-write.
 */
import { crc32Update } from './framing';
import type { IndexEntry, Location } from './index';
import { toQueuedMessage } from './index';
import { decodeRecord } from './records';
import { replay } from './recovery';
import type { RecoveryReport } from './recovery';
import { oneShotHandles } from './read-handles';
import type { Lease, SegmentHandles } from './read-handles';
import { nodeFs, readLogRecord } from './segment';
import type { QueueFile, QueueFs } from './segment';
import { QueueError } from './types';
import type { QueuedMessage } from './types';

/** Streams a message's BODY chunks in stored order, checking each record and the whole-body CRC. */
export function readEntryBody(handles: SegmentHandles, entry: IndexEntry): AsyncGenerator<Buffer> {
  return readChunks(handles, entry, entry.chunkCount, null);
}

/**
 * The message as it is delivered: when the COMMIT says the last chunk is a
 * prefix (header fields added at end of data), that chunk comes first.
 */
export async function* readEntryMessage(handles: SegmentHandles, entry: IndexEntry): AsyncGenerator<Buffer> {
  const last = entry.chunkCount - 1;
  if (!entry.prefixed || last < 0) {
    yield* readChunks(handles, entry, entry.chunkCount, null);
    return;
  }
  const loc = entry.chunkAt(last);
  if (!loc) throw new QueueError('io', `prefix of ${entry.id} has no location`);
  const lease = await handles.acquire(loc.segment);
  let prefix: Buffer;
  try {
    prefix = await readChunk(lease.fh, loc, entry.id, last);
  } catch (e) {
    await lease.release(true);
    throw e;
  }
  await lease.release(false);
  yield prefix;
  yield* readChunks(handles, entry, last, prefix);
}

/** Chunks 0 … count-1; `trailing` (already read) completes the CRC, which covers stored order. */
async function* readChunks(handles: SegmentHandles, entry: IndexEntry, count: number, trailing: Buffer | null): AsyncGenerator<Buffer> {
  let lease: Lease | null = null;
  let open = -1;
  let crc = 0;
  let failed = false;
  try {
    for (let seq = 0; seq < count; seq++) {
      const loc = entry.chunkAt(seq);
      if (!loc) break;
      if (!lease || open !== loc.segment) {
        await lease?.release(false);
        lease = null;
        lease = await handles.acquire(loc.segment);
        open = loc.segment;
      }
      const bytes = await readChunk(lease.fh, loc, entry.id, seq);
      crc = crc32Update(crc, bytes);
      yield bytes;
    }
  } catch (e) {
    failed = true; // a consumer that stops early (return()) lands only in finally: its handle stays good
    throw e;
  } finally {
    await lease?.release(failed);
  }
  if (trailing) crc = crc32Update(crc, trailing);
  if (crc >>> 0 !== entry.bodyCrc >>> 0) throw new QueueError('io', `body of ${entry.id} does not match its COMMIT checksum`);
}

async function readChunk(fh: QueueFile, loc: Location, id: string, seq: number): Promise<Buffer> {
  const payload = await readLogRecord(fh, loc);
  const decoded = payload ? decodeRecord(payload) : null;
  const r = decoded?.ok ? decoded.record : null;
  if (r?.kind !== 'body' || r.id !== id || r.seq !== seq) {
    throw new QueueError('io', `BODY ${seq} of ${id} unreadable at segment ${loc.segment} offset ${loc.offset}`);
  }
  return r.bytes;
}

export interface QueueSnapshot {
  messages: QueuedMessage[];
  readBody(id: string): AsyncIterable<Buffer>;
  report: RecoveryReport;
}

/** Read-only scan for the CLI (`petrel queue list` works with or without a running server): never truncates or writes. */
export async function readQueue(dir: string, fs: QueueFs = nodeFs): Promise<QueueSnapshot> {
  const { index, report } = await replay(fs, dir);
  const messages = [...index.messages.values()].map(toQueuedMessage);
  return {
    messages,
    report,
    readBody(id: string): AsyncIterable<Buffer> {
      const entry = index.messages.get(id);
      if (!entry) throw new Error(`no such message: ${id}`);
      return readEntryMessage(oneShotHandles(fs, dir), entry);
    },
  };
}
