/**
 * Logical records of the queue log: a small explicit binary codec, one kind
 * byte first, then fixed-order fields. Integers are little-endian; strings are
 * u16 byte length + UTF-8 (addresses may be UTF-8 under RFC 6531 SMTPUTF8);
 * queue ids are u8 length + ASCII; times are ms since the epoch as u64.
 *
 *   'B' BODY   id, seq u32, bytes (u32 length + ≤ 64 KiB)
 *   'C' COMMIT id, receivedAt, sender, recipients (u32 n × string), flags u8,
 *              [SIZE= u64], clientIp, helo, size u64, chunkCount u32, bodyCrc u32,
 *              [finishes: id]                        (flag 0x10)
 *              (flag 0x40: the last BODY chunk is header fields that
 *               delivery puts in front: DKIM-Signature, Authentication-Results)
 *              [state: held u8, n × (state u8, attempts u32, rflags u8,
 *                      [nextAttempt u64], [lastReply])] (flag 0x20)
 *   'R' RCPT   id, index u32, outcome u8 (0 delivered | 1 deferred: nextAt u64,
 *              attempts u32, reply | 2 failed: reply | 3 delivered: reply)
 *   'O' OP     id, op u8 (1 hold | 2 release | 3 delete | 4 flush)
 *   'D' DONE   id
 *
 * A kind byte with the high bit set is "safe to ignore" (after RocksDB's
 * kRecordTypeSafeIgnoreMask): a future record an older reader may skip.
 * Anything else that does not decode is reported, never thrown.
 *
 * The COMMIT extensions (flags 0x10, 0x20) and RCPT outcome 3 were added for
 * delivery and compaction without changing anything an existing file holds, so
 * every older segment still decodes; the format version stays 1 (a reader from
 * before them reports such records as corrupt: downgrades are not supported).
 * - `finishes` makes a bounce's COMMIT also the DONE of the message it reports
 *   on: ONE logical record, which the framing makes atomic, so a crash can
 *   neither keep the bounce and lose the DONE (a second bounce later) nor the
 *   reverse (no bounce at all). Two records in one group commit would not be
 *   enough: a torn writev can persist the first and not the second.
 * - `state` is the copy-forward snapshot: a COMMIT re-appended by compaction
 *   carries the recipients' current states and the held flag, superseding the
 *   RCPT and OP records left behind in the old segment.
 *
 * Pure: no I/O.
 */
import { assertNever } from '../smtp/assert-never';
import type { RecipientState } from './types';

/** BODY chunk limit: keeps per-session memory bounded and a record within 3 blocks. */
export const MAX_BODY_CHUNK = 65536;
export const MAX_ID_LENGTH = 32;

export const Kind = { body: 0x42, commit: 0x43, rcpt: 0x52, op: 0x4f, done: 0x44 } as const; // B C R O D
const SAFE_TO_IGNORE = 0x80;

export type OpName = 'hold' | 'release' | 'delete' | 'flush';
const OP_CODES: Record<OpName, number> = { hold: 1, release: 2, delete: 3, flush: 4 };

export type RcptOutcome =
  | { state: 'delivered'; reply?: string }
  | { state: 'deferred'; nextAt: number; attempts: number; reply: string }
  | { state: 'failed'; reply: string };

export interface CommitParams {
  size?: number;
  body?: '7BIT' | '8BITMIME';
  smtputf8: boolean;
}

/** A recipient's state as carried by a copied-forward COMMIT. */
export interface RcptSnapshot {
  state: RecipientState;
  attempts: number;
  nextAttempt: number | null;
  lastReply: string | null;
}

export interface CommitSnapshot {
  held: boolean;
  /** One per envelope recipient, same order. */
  recipients: RcptSnapshot[];
}

export interface BodyRecord { kind: 'body'; id: string; seq: number; bytes: Buffer }
export interface CommitRecord {
  kind: 'commit';
  id: string;
  receivedAt: number;
  sender: string;
  recipients: string[];
  params: CommitParams;
  clientIp: string;
  helo: string;
  size: number;
  chunkCount: number;
  bodyCrc: number;
  /** A bounce: committing it also finishes this message (see the file comment). */
  finishes?: string;
  /** A copy made by compaction: the state to resume with. */
  snapshot?: CommitSnapshot;
  /** The last BODY chunk is header fields to deliver before the rest (flag 0x40). */
  prefixed?: true;
}
export interface RcptRecord { kind: 'rcpt'; id: string; index: number; outcome: RcptOutcome }
export interface OpRecord { kind: 'op'; id: string; op: OpName }
export interface DoneRecord { kind: 'done'; id: string }
export type QueueRecord = BodyRecord | CommitRecord | RcptRecord | OpRecord | DoneRecord;

export type DecodeResult =
  | { ok: true; record: QueueRecord }
  | { ok: false; ignorable: boolean; reason: string };

/** Queue ids: 1–32 printable ASCII characters, no space (they appear in logs and file-free CLI args). */
export function isValidId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_ID_LENGTH && /^[\x21-\x7e]+$/.test(id);
}

// ---------------------------------------------------------------------------
// Encoding

class Writer {
  private parts: Buffer[] = [];
  u8(n: number): this { return this.push(1, (b) => b.writeUInt8(n, 0)); }
  u16(n: number): this { return this.push(2, (b) => b.writeUInt16LE(n, 0)); }
  u32(n: number): this { return this.push(4, (b) => b.writeUInt32LE(n, 0)); }
  u64(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a u64 safe integer: ${n}`);
    return this.push(8, (b) => b.writeBigUInt64LE(BigInt(n), 0));
  }
  id(id: string): this {
    if (!isValidId(id)) throw new RangeError(`invalid queue id: ${JSON.stringify(id)}`);
    return this.u8(id.length).raw(Buffer.from(id, 'latin1'));
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.length > 0xffff) throw new RangeError('string field longer than 65535 bytes');
    return this.u16(b.length).raw(b);
  }
  bytes(b: Buffer): this { return this.u32(b.length).raw(b); }
  raw(b: Buffer): this { this.parts.push(b); return this; }
  done(): Buffer { return Buffer.concat(this.parts); }
  private push(n: number, fill: (b: Buffer) => void): this {
    const b = Buffer.allocUnsafe(n);
    fill(b);
    this.parts.push(b);
    return this;
  }
}

export function encodeRecord(r: QueueRecord): Buffer {
  const w = new Writer().u8(Kind[r.kind]).id(r.id);
  switch (r.kind) {
    case 'body':
      if (r.bytes.length > MAX_BODY_CHUNK) throw new RangeError('BODY chunk larger than 64 KiB');
      return w.u32(r.seq).bytes(r.bytes).done();
    case 'commit':
      return encodeCommit(w, r);
    case 'rcpt':
      return encodeOutcome(w.u32(r.index), r.outcome).done();
    case 'op':
      return w.u8(OP_CODES[r.op]).done();
    case 'done':
      return w.done();
    default:
      return assertNever(r);
  }
}

function encodeCommit(w: Writer, r: CommitRecord): Buffer {
  w.u64(r.receivedAt).str(r.sender).u32(r.recipients.length);
  for (const rcpt of r.recipients) w.str(rcpt);
  const p = r.params;
  const flags =
    (p.size !== undefined ? 1 : 0) | (p.body !== undefined ? 2 : 0) | (p.body === '8BITMIME' ? 4 : 0) | (p.smtputf8 ? 8 : 0) |
    (r.finishes !== undefined ? 0x10 : 0) | (r.snapshot !== undefined ? 0x20 : 0) | (r.prefixed ? 0x40 : 0);
  w.u8(flags);
  if (p.size !== undefined) w.u64(p.size);
  w.str(r.clientIp).str(r.helo).u64(r.size).u32(r.chunkCount).u32(r.bodyCrc);
  if (r.finishes !== undefined) w.id(r.finishes);
  if (r.snapshot !== undefined) encodeSnapshot(w, r.snapshot, r.recipients.length);
  return w.done();
}

const STATE_CODES: Record<RecipientState, number> = { queued: 0, deferred: 1, delivered: 2, failed: 3 };

function encodeSnapshot(w: Writer, s: CommitSnapshot, n: number): void {
  if (s.recipients.length !== n) throw new RangeError('COMMIT snapshot must hold one state per recipient');
  w.u8(s.held ? 1 : 0);
  for (const r of s.recipients) {
    w.u8(STATE_CODES[r.state]).u32(r.attempts).u8((r.nextAttempt !== null ? 1 : 0) | (r.lastReply !== null ? 2 : 0));
    if (r.nextAttempt !== null) w.u64(r.nextAttempt);
    if (r.lastReply !== null) w.str(r.lastReply);
  }
}

function encodeOutcome(w: Writer, o: RcptOutcome): Writer {
  switch (o.state) {
    case 'delivered':
      return o.reply === undefined ? w.u8(0) : w.u8(3).str(o.reply);
    case 'deferred':
      return w.u8(1).u64(o.nextAt).u32(o.attempts).str(o.reply);
    case 'failed':
      return w.u8(2).str(o.reply);
    default:
      return assertNever(o);
  }
}

// ---------------------------------------------------------------------------
// Decoding

class DecodeError extends Error {}

/**
 * The last text decoded for one field, kept with its bytes. Such fields repeat
 * from record to record: a message's BODY records and its COMMIT carry one id,
 * and runs of COMMITs come from one relay (client address, HELO name).
 * Comparing a few bytes costs less than making a string, and handing back the
 * same string again lets the index's maps and intern table skip hashing it.
 * The result is the same text either way, so decoding stays a pure function.
 */
class LastText {
  private readonly bytes = Buffer.alloc(64);
  private length = -1;
  private text = '';

  constructor(private readonly encoding: 'latin1' | 'utf8') {}

  get(b: Buffer, start: number, end: number): string {
    const n = end - start;
    if (n === this.length && this.holds(b, start, n)) return this.text;
    this.text = b.toString(this.encoding, start, end);
    this.length = n <= this.bytes.length ? b.copy(this.bytes, 0, start, end) : -1;
    return this.text;
  }

  private holds(b: Buffer, start: number, n: number): boolean {
    for (let i = 0; i < n; i++) if (b[start + i] !== this.bytes[i]) return false;
    return true;
  }
}

const lastId = new LastText('latin1');
const lastClientIp = new LastText('utf8');
const lastHelo = new LastText('utf8');

class Reader {
  private pos = 0;
  constructor(private readonly b: Buffer) {}
  u8(): number { return this.b.readUInt8(this.take(1)); }
  u16(): number { return this.b.readUInt16LE(this.take(2)); }
  u32(): number { return this.b.readUInt32LE(this.take(4)); }
  u64(): number {
    // two u32 halves rather than a BigInt: recovery reads three of these per message
    const at = this.take(8);
    const hi = this.b.readUInt32LE(at + 4);
    if (hi > 0x1fffff) throw new DecodeError('u64 out of safe range');
    const lo = this.b.readUInt32LE(at);
    return hi === 0 ? lo : hi * 0x100000000 + lo; // a small value stays a small integer, not a boxed double
  }
  id(): string {
    const n = this.u8();
    const at = this.take(n);
    // isValidId on the bytes, before any string exists (latin1: one char per byte, same code)
    if (n === 0 || n > MAX_ID_LENGTH) throw new DecodeError('invalid queue id');
    for (let i = at; i < this.pos; i++) {
      const c = this.b[i] as number;
      if (c < 0x21 || c > 0x7e) throw new DecodeError('invalid queue id');
    }
    return lastId.get(this.b, at, this.pos);
  }
  str(last: LastText | null = null): string {
    const n = this.u16();
    const at = this.take(n);
    return last ? last.get(this.b, at, this.pos) : this.b.toString('utf8', at, this.pos);
  }
  bytes(): Buffer {
    const n = this.u32();
    const at = this.take(n);
    return this.b.subarray(at, at + n);
  }
  end(): void {
    if (this.pos !== this.b.length) throw new DecodeError('trailing bytes after record');
  }
  private take(n: number): number {
    if (this.pos + n > this.b.length) throw new DecodeError('record shorter than its fields');
    const at = this.pos;
    this.pos += n;
    return at;
  }
}

/** Decodes one logical record; BODY bytes are a view into `payload`, not a copy. */
export function decodeRecord(payload: Buffer): DecodeResult {
  const kind = payload[0];
  if (kind === undefined) return { ok: false, ignorable: false, reason: 'empty record' };
  try {
    const r = new Reader(payload);
    r.u8();
    const record = decodeKind(kind, r);
    if (record === null) {
      const ignorable = (kind & SAFE_TO_IGNORE) !== 0;
      return { ok: false, ignorable, reason: `unknown record kind 0x${kind.toString(16)}` };
    }
    r.end();
    return { ok: true, record };
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) return { ok: false, ignorable: false, reason: e.message };
    throw e;
  }
}

function decodeKind(kind: number, r: Reader): QueueRecord | null {
  switch (kind) {
    case Kind.body: {
      const id = r.id();
      const seq = r.u32();
      const bytes = r.bytes();
      if (bytes.length > MAX_BODY_CHUNK) throw new DecodeError('BODY chunk larger than 64 KiB');
      return { kind: 'body', id, seq, bytes };
    }
    case Kind.commit:
      return decodeCommit(r);
    case Kind.rcpt: {
      const id = r.id();
      const index = r.u32();
      return { kind: 'rcpt', id, index, outcome: decodeOutcome(r) };
    }
    case Kind.op:
      return { kind: 'op', id: r.id(), op: decodeOp(r.u8()) };
    case Kind.done:
      return { kind: 'done', id: r.id() };
    default:
      return null;
  }
}

function decodeCommit(r: Reader): CommitRecord {
  const id = r.id();
  const receivedAt = r.u64();
  const sender = r.str();
  const n = r.u32();
  // sized up front when small (the usual case): push would reserve 17 slots per message held in the index
  const recipients: string[] = n <= 16 ? new Array<string>(n) : [];
  for (let i = 0; i < n; i++) recipients[i] = r.str();
  const flags = r.u8();
  if (flags & ~0x7f) throw new DecodeError('unknown COMMIT flags');
  const params = decodeParams(r, flags);
  const clientIp = r.str(lastClientIp);
  const helo = r.str(lastHelo);
  const size = r.u64();
  const chunkCount = r.u32();
  const bodyCrc = r.u32();
  const rec: CommitRecord = { kind: 'commit', id, receivedAt, sender, recipients, params, clientIp, helo, size, chunkCount, bodyCrc };
  if (flags & 0x10) rec.finishes = r.id();
  if (flags & 0x20) rec.snapshot = decodeSnapshot(r, n);
  if (flags & 0x40) rec.prefixed = true;
  return rec;
}

/** One object literal per combination, so each params object has its final shape at once (no out-of-object properties). */
function decodeParams(r: Reader, flags: number): CommitParams {
  const smtputf8 = (flags & 8) !== 0;
  const size = flags & 1 ? r.u64() : undefined;
  if (!(flags & 2) && flags & 4) throw new DecodeError('BODY flag without BODY parameter');
  const body = flags & 2 ? (flags & 4 ? '8BITMIME' : '7BIT') : undefined;
  if (size === undefined) return body === undefined ? { smtputf8 } : { smtputf8, body };
  return body === undefined ? { smtputf8, size } : { smtputf8, size, body };
}

function decodeSnapshot(r: Reader, n: number): CommitSnapshot {
  const held = r.u8();
  if (held > 1) throw new DecodeError('bad held flag in COMMIT snapshot');
  const recipients: RcptSnapshot[] = [];
  for (let i = 0; i < n; i++) {
    const state = decodeState(r.u8());
    const attempts = r.u32();
    const f = r.u8();
    if (f & ~3) throw new DecodeError('unknown recipient flags in COMMIT snapshot');
    const nextAttempt = f & 1 ? r.u64() : null;
    const lastReply = f & 2 ? r.str() : null;
    recipients.push({ state, attempts, nextAttempt, lastReply });
  }
  return { held: held === 1, recipients };
}

function decodeState(code: number): RecipientState {
  for (const [name, c] of Object.entries(STATE_CODES)) if (c === code) return name as RecipientState;
  throw new DecodeError(`unknown recipient state ${code}`);
}

function decodeOutcome(r: Reader): RcptOutcome {
  const code = r.u8();
  switch (code) {
    case 0:
      return { state: 'delivered' };
    case 1: {
      const nextAt = r.u64();
      const attempts = r.u32();
      return { state: 'deferred', nextAt, attempts, reply: r.str() };
    }
    case 2:
      return { state: 'failed', reply: r.str() };
    case 3:
      return { state: 'delivered', reply: r.str() };
    default:
      throw new DecodeError(`unknown RCPT outcome ${code}`);
  }
}

function decodeOp(code: number): OpName {
  for (const [name, c] of Object.entries(OP_CODES)) if (c === code) return name as OpName;
  throw new DecodeError(`unknown OP ${code}`);
}

