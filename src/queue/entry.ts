/**
 * One committed message as the queue index holds it (index.ts), and the body
 * chunks of one not yet committed. A queue may hold a million messages, and
 * recovery builds all of them at startup, so the representation is chosen for
 * the garbage collector, which marks every one of them, again each time
 * replay grows the heap: an entry is one flat object plus its recipients and
 * strings, not an object each for the envelope, the MAIL parameters, every
 * chunk's location and every number too large for a small integer.
 *
 * Pure: no I/O, no clock.
 */
import type { CommitRecord } from './records';
import type { Envelope, QueuedRecipient } from './types';

/** Where a logical record lies: the segment number and its byte span in that file. */
export interface Location {
  readonly segment: number;
  readonly offset: number;
  readonly end: number;
}

/**
 * A set of segment numbers, kept small because there is one or two per
 * message and a million messages: almost every message lies in ONE segment,
 * so that case is a bare number (no Set, no array on the heap); an array
 * only when a message spans segments; null when empty.
 */
export type Segs = number | number[] | null;

export function segsHas(s: Segs, segment: number): boolean {
  return s === segment || (Array.isArray(s) && s.includes(segment));
}

/** `s` with `segment` added; it may return `s` itself, changed. */
export function segsAdd(s: Segs, segment: number): Segs {
  if (s === null) return segment;
  if (typeof s === 'number') return s === segment ? s : [s, segment];
  if (!s.includes(segment)) s.push(segment);
  return s;
}

export function segsWithout(s: Segs, segment: number): Segs {
  if (s === segment) return null;
  if (!Array.isArray(s) || !s.includes(segment)) return s;
  const rest = s.filter((x) => x !== segment);
  return rest.length === 1 ? (rest[0] as number) : rest;
}

export function segsList(s: Segs): number[] {
  return s === null ? [] : typeof s === 'number' ? [s] : [...s];
}

/**
 * Where a message's BODY records lie, without an object per chunk: almost
 * every message is one chunk, kept as three small integers; chunks after the
 * first are packed as (segment, offset, end) triples in one array.
 */
abstract class ChunkSpans {
  /** BODY records seen, in sequence order. */
  chunkCount = 0;
  // the rest is representation: read chunks with chunkAt()
  seg0 = 0;
  off0 = 0;
  end0 = 0;
  more: number[] | null = null;

  /** Location of chunk `i` (0-based), or undefined past the last. */
  chunkAt(i: number): Location | undefined {
    if (i < 0 || i >= this.chunkCount) return undefined;
    if (i === 0) return { segment: this.seg0, offset: this.off0, end: this.end0 };
    const m = this.more as number[];
    const k = 3 * (i - 1);
    return { segment: m[k] as number, offset: m[k + 1] as number, end: m[k + 2] as number };
  }

  /** BODY record locations in sequence order (a fresh array: built on demand). */
  get chunks(): Location[] {
    const out: Location[] = new Array(this.chunkCount);
    for (let i = 0; i < out.length; i++) out[i] = this.chunkAt(i) as Location;
    return out;
  }

  protected pushChunk(at: Location): void {
    if (this.chunkCount === 0) {
      this.seg0 = at.segment;
      this.off0 = at.offset;
      this.end0 = at.end;
    } else (this.more ??= []).push(at.segment, at.offset, at.end);
    this.chunkCount += 1;
  }
}

/** MAIL parameter bits, as in the COMMIT flags byte (records.ts), plus "prefixed". */
const P_BODY = 2;
const P_8BIT = 4;
const P_UTF8 = 8;
const P_PREFIXED = 0x40;
/** receivedAt is split in two small integers: a double field would be one more heap object per message. */
const TIME_SPLIT = 2 ** 24;

/**
 * A committed message. A million of these can be in memory, so it is one flat
 * object: the envelope, MAIL parameters and body locations are fields here,
 * not objects of their own (`envelope`, `params` and `chunks` are built on demand).
 */
export class IndexEntry extends ChunkSpans {
  declare held: boolean;
  /** Segments holding any record of this message: it keeps each of them alive. */
  declare segs: Segs;
  /** Segments holding a COMMIT of this id, superseded copies included: what a tombstone must outlive. */
  declare commits: Segs;
  declare readonly id: string;
  declare readonly sender: string;
  declare readonly clientIp: string;
  declare readonly helo: string;
  declare readonly recipients: QueuedRecipient[];
  declare readonly size: number;
  declare private readonly crcBits: number;
  declare private readonly timeHi: number;
  declare private readonly timeLo: number;
  declare private readonly bits: number;
  /** SIZE= parameter, -1 when absent. */
  declare private readonly sizeParam: number;

  private constructor() {
    super();
  }

  /**
   * Made by an object literal, not `new`: V8 tracks where literals are
   * allocated and, once it sees nearly all of this site's objects survive,
   * allocates them straight in the old generation (pretenuring), so replaying
   * a million COMMITs does not copy a million entries through the young one.
   */
  static of(r: CommitRecord, recipients: QueuedRecipient[], body: PendingBody, segs: Segs, commits: Segs): IndexEntry {
    const p = r.params;
    const bits = (p.body !== undefined ? P_BODY : 0) | (p.body === '8BITMIME' ? P_8BIT : 0) | (p.smtputf8 ? P_UTF8 : 0) | (r.prefixed ? P_PREFIXED : 0);
    const hi = Math.floor(r.receivedAt / TIME_SPLIT);
    const entry = {
      __proto__: IndexEntry.prototype,
      chunkCount: body.chunkCount,
      seg0: body.seg0,
      off0: body.off0,
      end0: body.end0,
      more: body.more,
      held: r.snapshot?.held ?? false,
      segs,
      commits,
      id: r.id,
      sender: r.sender,
      clientIp: intern(r.clientIp),
      helo: intern(r.helo),
      recipients,
      size: r.size,
      crcBits: r.bodyCrc | 0, // a signed 32-bit value stays a small integer
      timeHi: hi,
      timeLo: r.receivedAt - hi * TIME_SPLIT,
      bits,
      sizeParam: p.size ?? -1,
    };
    return entry as unknown as IndexEntry;
  }

  get bodyCrc(): number {
    return this.crcBits >>> 0;
  }

  get receivedAt(): number {
    return this.timeHi * TIME_SPLIT + this.timeLo;
  }

  /** The last BODY chunk is header fields delivered first (COMMIT flag 0x40). */
  get prefixed(): boolean {
    return (this.bits & P_PREFIXED) !== 0;
  }

  /** MAIL parameters as received; a fresh object, keys in the order the COMMIT decoder gives them. */
  get params(): Envelope['params'] {
    const smtputf8 = (this.bits & P_UTF8) !== 0;
    const body = this.bits & P_BODY ? (this.bits & P_8BIT ? '8BITMIME' : '7BIT') : undefined;
    const size = this.sizeParam;
    if (size < 0) return body === undefined ? { smtputf8 } : { smtputf8, body };
    return body === undefined ? { smtputf8, size } : { smtputf8, size, body };
  }

  /** The envelope as committed; a fresh object. */
  get envelope(): Envelope {
    const recipients = this.recipients.map((r) => r.address);
    return { sender: this.sender, recipients, params: this.params, clientIp: this.clientIp, helo: this.helo, receivedAt: this.receivedAt, prefixed: this.prefixed };
  }

  /** A copy, for inspection (tests, tools); the reducer works on `segs`. */
  get segments(): ReadonlySet<number> {
    return new Set(segsList(this.segs));
  }

  get commitSegments(): ReadonlySet<number> {
    return new Set(segsList(this.commits));
  }

  /** Does the message have a record in a segment for which `pred` holds? */
  inAnySegment(pred: (segment: number) => boolean): boolean {
    const s = this.segs;
    return s === null ? false : typeof s === 'number' ? pred(s) : s.some(pred);
  }
}

/** Body chunks of a transaction whose COMMIT has not been seen (yet, or ever). */
export class PendingBody extends ChunkSpans {
  size = 0;
  segs: Segs = null;

  add(at: Location, bytes: number): void {
    this.pushChunk(at);
    this.size += bytes;
  }
}

/**
 * Many queued messages come from few relays: one copy of each recent client
 * address and HELO name serves them all (a million messages, two strings each).
 * Bounded, and only ever maps a string to an equal one, so replay stays pure.
 */
const shared = new Map<string, string>();
function intern(s: string): string {
  const hit = shared.get(s);
  if (hit !== undefined) return hit;
  if (shared.size >= 4096) shared.clear();
  shared.set(s, s);
  return s;
}
