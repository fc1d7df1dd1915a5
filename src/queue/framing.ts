/**
 * Physical layer of the queue log: LevelDB log framing (google/leveldb
 * doc/log_format.md), with Petrel's checksum and a per-segment header record.
 *
 * File = sequence of 32 KiB blocks. Every physical record has a 7-byte header:
 *
 *   checksum  u32 LE  masked CRC-32 of the type byte followed by the payload
 *   length    u16 LE  payload bytes that follow this header (not counting it)
 *   type      u8      FULL | FIRST | MIDDLE | LAST (0 = zeroed/preallocated)
 *
 * The CRC is zlib.crc32: the IEEE 802.3 polynomial 0x04C11DB7 (reflected
 * 0xEDB88320), not LevelDB's CRC-32C; it is native in node:zlib, so there is no
 * dependency. It is masked as in LevelDB (rotate right 15, add 0xa282ead8) so
 * that a payload which itself contains CRCs cannot confuse the check.
 *
 * A logical record that does not fit the rest of a block is cut into FIRST,
 * MIDDLE…, LAST fragments; a record never starts in the last 6 bytes of a block,
 * which are zero-filled (the trailer). Blocks are what make resync after
 * corruption possible: the reader drops the rest of a bad block and carries on
 * at the next boundary, never trusting a length field whose CRC failed.
 *
 * The first logical record of every segment is a header: magic "PETRELQ1",
 * format version (u16 LE), segment number (u32 LE), so stale bytes from another
 * file or a newer format are recognised (after RocksDB's log number).
 *
 * Pure: buffers in, buffers out; zlib.crc32 is computation, not I/O.
 */
import { crc32 } from 'node:zlib';

export const BLOCK_SIZE = 32768;
export const HEADER_SIZE = 7;
/** u16 length field: a fragment never carries more than a block anyway. */
const MAX_FRAGMENT = BLOCK_SIZE - HEADER_SIZE;

export const enum FrameType {
  Zero = 0, // preallocated or zero-filled space; never written as a record
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
}

const MASK_DELTA = 0xa282ead8;
const ZERO_TRAILER = Buffer.alloc(HEADER_SIZE - 1);

/** LevelDB's crc mask: rotate right by 15 bits and add a constant (mod 2^32). */
export function maskCrc(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

/** CRC-32 of each possible type byte alone: the running value every frame's checksum starts from. */
const TYPE_CRC: readonly number[] = Array.from({ length: 256 }, (_, t) => crc32(Uint8Array.of(t)));

/** Masked CRC-32 (IEEE) of the type byte followed by the payload. */
export function frameChecksum(type: number, payload: Uint8Array): number {
  return maskCrc(crc32Update(TYPE_CRC[type & 0xff] as number, payload));
}

/**
 * Running CRC-32 over more data. Node 20's zlib.crc32 returns 0, dropping the
 * running value, for a zero-length Buffer with no backing store (Buffer.alloc(0)),
 * so empty input is answered here.
 */
export function crc32Update(crc: number, data: Uint8Array): number {
  return data.length === 0 ? crc >>> 0 : crc32(data, crc);
}

export interface Framed {
  /** File offset of the record's first header (past any zero trailer put before it). */
  readonly start: number;
  /** Buffers to append at the offset given to frameRecord, in order. */
  readonly buffers: Buffer[];
  /** File offset after these buffers. */
  readonly offset: number;
}

/**
 * Frames one logical record to be appended at file offset `offset`. Payload
 * bytes are referenced, not copied: the caller must not mutate them until written.
 */
export function frameRecord(offset: number, payload: Buffer): Framed {
  const buffers: Buffer[] = [];
  let pos = offset;
  let done = 0;
  let first = true;
  let start = offset;
  do {
    const leftover = BLOCK_SIZE - (pos % BLOCK_SIZE);
    if (leftover < HEADER_SIZE) {
      if (leftover > 0) buffers.push(ZERO_TRAILER.subarray(0, leftover));
      pos += leftover;
    }
    if (first) start = pos;
    const room = Math.min(BLOCK_SIZE - (pos % BLOCK_SIZE) - HEADER_SIZE, MAX_FRAGMENT);
    const len = Math.min(room, payload.length - done);
    const last = done + len === payload.length;
    const type = first ? (last ? FrameType.Full : FrameType.First) : last ? FrameType.Last : FrameType.Middle;
    const fragment = payload.subarray(done, done + len);
    buffers.push(frameHeader(type, fragment));
    if (len > 0) buffers.push(fragment);
    pos += HEADER_SIZE + len;
    done += len;
    first = false;
  } while (done < payload.length);
  return { start, buffers, offset: pos };
}

function frameHeader(type: FrameType, fragment: Buffer): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt32LE(frameChecksum(type, fragment), 0);
  h.writeUInt16LE(fragment.length, 4);
  h.writeUInt8(type, 6);
  return h;
}

// ---------------------------------------------------------------------------
// Reading

export interface LogRecord {
  /** File offset of the header of the record's first fragment. */
  readonly offset: number;
  /** File offset just past its last fragment. */
  readonly end: number;
  readonly payload: Buffer;
}

export interface Corruption {
  /** File offset where the dropped bytes start. */
  readonly offset: number;
  readonly bytes: number;
  readonly reason: string;
}

export interface LogScan {
  readonly records: LogRecord[];
  /** End of the last complete logical record (or `base` if none): a torn tail starts here. */
  readonly validEnd: number;
  readonly corruptions: Corruption[];
}

interface Assembly {
  readonly offset: number;
  readonly parts: Buffer[];
}

/**
 * Scans `bytes`, which are the file's bytes from offset `base` to its end (EOF).
 * Follows leveldb/db/log_reader.cc: a short header or short payload in the last,
 * partial block is EOF (the writer died mid-record) and is not reported; a bad
 * length or CRC mismatch elsewhere drops the rest of the block and is reported;
 * a FIRST whose LAST never came before EOF is a torn tail, not reported.
 */
export function scanLog(bytes: Buffer, base = 0, sink: RecordSink | null = null): LogScan {
  const st: ScanState = { records: [], corruptions: [], validEnd: base, asm: null, sink };
  scanPiece(st, bytes, base);
  return { records: st.records, validEnd: st.validEnd, corruptions: st.corruptions };
}

/**
 * Scans file bytes [base, base + bytes.length). If that end is on a block
 * boundary, nothing here treats it as EOF (records never cross blocks), so a
 * file can be scanned piece by piece with one state: the same result as whole.
 */
function scanPiece(st: ScanState, bytes: Buffer, base: number): void {
  const fileEnd = base + bytes.length;
  let abs = base;
  while (abs < fileEnd) {
    const next = scanPhysical(st, bytes, base, abs, fileEnd);
    if (next === null) break;
    abs = next;
  }
}

/** Handles the physical record (or trailer) at `abs`; returns where the next one starts, or null at EOF. */
function scanPhysical(st: ScanState, bytes: Buffer, base: number, abs: number, fileEnd: number): number | null {
  const blockEnd = (Math.floor(abs / BLOCK_SIZE) + 1) * BLOCK_SIZE;
  const avail = Math.min(blockEnd, fileEnd) - abs;
  if (blockEnd - abs < HEADER_SIZE) return blockEnd; // trailer (or EOF inside one)
  if (avail < HEADER_SIZE) return null; // truncated header at EOF
  const at = abs - base;
  const length = bytes.readUInt16LE(at + 4);
  const type = bytes.readUInt8(at + 6);
  if (HEADER_SIZE + length > avail) {
    if (blockEnd > fileEnd) return null; // EOF in this block: the writer died mid-payload
    dropBlock(st, abs, abs + avail, 'bad record length');
    return blockEnd;
  }
  if (type === FrameType.Zero && length === 0) {
    // zero-filled space (preallocation, or a page the crash left zeroed)
    dropAssembly(st, 'zero padding in middle of record');
    return blockEnd;
  }
  const payload = bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + length);
  if (bytes.readUInt32LE(at) !== frameChecksum(type, payload)) {
    // the length itself may be what is corrupt: trust nothing else in this block
    dropBlock(st, abs, abs + avail, 'checksum mismatch');
    return blockEnd;
  }
  const end = abs + HEADER_SIZE + length;
  acceptFragment(st, type, payload, abs, end);
  return end;
}

interface ScanState {
  records: LogRecord[];
  corruptions: Corruption[];
  validEnd: number;
  asm: Assembly | null;
  /** If set, records go here as they are found instead of into `records`. */
  sink: RecordSink | null;
}

/** Takes each logical record as found: its payload and file span (no object per record). */
export type RecordSink = (payload: Buffer, offset: number, end: number) => void;

function dropBlock(st: ScanState, from: number, to: number, reason: string): void {
  if (st.asm) dropAssembly(st, 'error in middle of record');
  st.corruptions.push({ offset: from, bytes: to - from, reason });
}

function dropAssembly(st: ScanState, reason: string): void {
  if (!st.asm) return;
  let n = 0;
  for (const p of st.asm.parts) n += p.length;
  st.corruptions.push({ offset: st.asm.offset, bytes: n, reason });
  st.asm = null;
}

function acceptFragment(st: ScanState, type: number, payload: Buffer, offset: number, end: number): void {
  switch (type) {
    case FrameType.Full:
      dropAssembly(st, 'partial record without end');
      emit(st, offset, end, payload);
      return;
    case FrameType.First:
      dropAssembly(st, 'partial record without end');
      st.asm = { offset, parts: [payload] };
      return;
    case FrameType.Middle:
      if (st.asm) st.asm.parts.push(payload);
      else st.corruptions.push({ offset, bytes: end - offset, reason: 'missing start of fragmented record' });
      return;
    case FrameType.Last:
      if (!st.asm) {
        st.corruptions.push({ offset, bytes: end - offset, reason: 'missing start of fragmented record' });
        return;
      }
      st.asm.parts.push(payload);
      emit(st, st.asm.offset, end, Buffer.concat(st.asm.parts));
      st.asm = null;
      return;
    default:
      dropAssembly(st, 'error in middle of record');
      st.corruptions.push({ offset, bytes: end - offset, reason: `unknown record type ${type}` });
  }
}

function emit(st: ScanState, offset: number, end: number, payload: Buffer): void {
  if (st.sink) st.sink(payload, offset, end);
  else st.records.push({ offset, end, payload });
  st.validEnd = end;
}

/**
 * Decodes the one logical record that starts at file offset `offset`, given the
 * file bytes from there up to (at least) its end. Used to read a BODY back by
 * its index location. Returns null if the bytes there are not an intact record.
 */
export function readRecordAt(bytes: Buffer, offset: number): Buffer | null {
  const scan = scanLog(bytes, offset);
  const rec = scan.records[0];
  return rec !== undefined && rec.offset === offset && scan.corruptions.length === 0 ? rec.payload : null;
}

// ---------------------------------------------------------------------------
// Segment header

export const SEGMENT_MAGIC = 'PETRELQ1';
export const FORMAT_VERSION = 1;
const SEGMENT_HEADER_LENGTH = 8 + 2 + 4;

export interface SegmentHeader {
  readonly version: number;
  readonly segment: number;
}

export function encodeSegmentHeader(segment: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_LENGTH);
  b.write(SEGMENT_MAGIC, 0, 'latin1');
  b.writeUInt16LE(FORMAT_VERSION, 8);
  b.writeUInt32LE(segment, 10);
  return b;
}

export function decodeSegmentHeader(payload: Buffer): SegmentHeader | null {
  if (payload.length !== SEGMENT_HEADER_LENGTH) return null;
  if (payload.toString('latin1', 0, 8) !== SEGMENT_MAGIC) return null;
  return { version: payload.readUInt16LE(8), segment: payload.readUInt32LE(10) };
}

export interface SegmentScan extends LogScan {
  /** Null if the first record is missing, corrupt or not a segment header. */
  readonly header: SegmentHeader | null;
}

/**
 * Scans a whole segment file. The header record is taken off `records`; a
 * segment whose first record is not a valid header keeps its other records
 * (an acknowledged message is never dropped for a bad header) and says so.
 */
export function scanSegment(bytes: Buffer): SegmentScan {
  const scan = scanLog(bytes, 0);
  const first = scan.records[0];
  const header = first !== undefined && first.offset === 0 ? decodeSegmentHeader(first.payload) : null;
  const records = header ? scan.records.slice(1) : scan.records;
  const corruptions = [...scan.corruptions];
  if (!header && bytes.length > 0) corruptions.unshift({ offset: 0, bytes: 0, reason: 'missing segment header' });
  return { header, records, validEnd: scan.validEnd, corruptions };
}

export interface SegmentWalk {
  readonly header: SegmentHeader | null;
  /** Records handed out, the header not counted. */
  readonly recordCount: number;
  readonly validEnd: number;
  readonly corruptions: Corruption[];
}

/**
 * scanSegment, but each record after the header goes to `each` as soon as it
 * is found, and the file may come in pieces (SegmentWalker.feed): recovery
 * then holds neither a 64 MiB segment nor its tens of thousands of records at
 * once. (A fresh 64 MiB buffer per segment also made V8 count that much more
 * external memory each time, and run a full GC over the index for it.)
 */
export class SegmentWalker {
  private readonly st: ScanState;
  private header: SegmentHeader | null = null;
  private seen = 0;
  private fed = 0;

  constructor(each: RecordSink) {
    const sink: RecordSink = (payload, offset, end) => {
      if (this.seen++ === 0 && offset === 0) this.header = decodeSegmentHeader(payload);
      if (this.seen > 1 || this.header === null) each(payload, offset, end);
    };
    this.st = { records: [], corruptions: [], validEnd: 0, asm: null, sink };
  }

  /**
   * The file's next bytes. Every piece but the last must end on a block
   * boundary. Records go to `each` before this returns; the caller may then
   * reuse `bytes` (a record still open at the end is copied out of it).
   */
  feed(bytes: Buffer): void {
    if (this.fed % BLOCK_SIZE !== 0) throw new RangeError('only the last piece of a segment may end inside a block');
    scanPiece(this.st, bytes, this.fed);
    this.fed += bytes.length;
    const asm = this.st.asm;
    if (asm) this.st.asm = { offset: asm.offset, parts: [Buffer.concat(asm.parts)] };
  }

  /** What the walk found; call after the last piece. */
  result(): SegmentWalk {
    const header = this.header;
    const corruptions = [...this.st.corruptions];
    if (!header && this.fed > 0) corruptions.unshift({ offset: 0, bytes: 0, reason: 'missing segment header' });
    return { header, recordCount: header ? this.seen - 1 : this.seen, validEnd: this.st.validEnd, corruptions };
  }
}

/** SegmentWalker over a whole file in one piece. */
export function walkSegment(bytes: Buffer, each: RecordSink): SegmentWalk {
  const w = new SegmentWalker(each);
  w.feed(bytes);
  return w.result();
}
