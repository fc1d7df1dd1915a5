/**
 * The header section of a stored message, bounded: what a DSN returns to the
 * sender as its text/rfc822-headers part (RFC 3462/6522 §4, RFC 3464 §2 "the
 * headers of the original message"), read from the start of the body chunks
 * without ever holding more than the bound in memory.
 *
 * RFC 5322 §2.1: the header section ends at the first empty line. Stored
 * messages are CRLF-only (the DATA decoder refuses bare CR/LF), but a bare LF is
 * still taken as a line end here so that a locally submitted message cannot make
 * the scan run past its headers.
 *
 * When the headers are longer than the bound, the result is cut before the first
 * field that does not fit (RFC 5322 §2.2: a field is a line plus its WSP-led
 * continuations), so no field is returned half-folded; a single field longer than
 * the bound is cut at its last line end that fits, or at the bound itself.
 */
import { assertNever } from '../smtp/assert-never';

/** 64 KiB: ample for real header sections, small enough that a bounce stays cheap to build and to send. */
export const MAX_HEADER_SECTION = 64 * 1024;

type ScanState =
  | 'lineStart' // at the first byte of a line: decides field start, continuation or the empty line
  | 'lineCr'    // the line so far is a lone CR: LF now makes it the empty line
  | 'inLine'    // inside a line: skip to its LF
  | 'done';     // the empty line, or the bound, was reached

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;

/**
 * Push chunks in order until `done`; then `headers` is the header section (each
 * line ending in its original line end, no empty line) and `truncated` says
 * whether the bound cut it. Memory: at most `max` bytes are kept.
 */
export class HeaderSectionReader {
  private state: ScanState = 'lineStart';
  private readonly kept: Buffer[] = [];
  private offset = 0;
  /** Offset just after the last whole field that fits the bound (a line start not led by WSP). */
  private fieldEnd = 0;
  /** Offset just after the last LF within the bound. */
  private lineEnd = 0;
  private end = -1;
  private cut = false;
  private keptBytes = 0;

  constructor(private readonly max: number = MAX_HEADER_SECTION) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError('HeaderSectionReader: max must be a positive integer');
  }

  /** Feeds the next chunk; returns true once no more input is needed. */
  push(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length && this.state !== 'done') i = this.step(chunk, i);
    this.keep(chunk, i);
    return this.state === 'done';
  }

  /** Call when the input ended (a message with no body and no empty line): everything seen is the header section. */
  finish(): void {
    if (this.state === 'done') return;
    this.end = this.state === 'lineCr' ? this.offset - 1 : this.offset;
    this.state = 'done';
  }

  get done(): boolean {
    return this.state === 'done';
  }

  get truncated(): boolean {
    return this.cut;
  }

  /** The header section; ends with a line end unless empty (a cut inside a line gets CRLF added). */
  get headers(): Buffer {
    const end = this.end >= 0 ? this.end : this.offset;
    const all = Buffer.concat(this.kept).subarray(0, end);
    if (all.length === 0 || all[all.length - 1] === LF) return all;
    return Buffer.concat([all, Buffer.from('\r\n', 'latin1')]);
  }

  /**
   * Consumes one byte at a line start, or a line's run up to its LF; returns the
   * next index. A line start is only ever reached at an offset ≤ max, so the byte
   * there (empty line, continuation or new field) is always seen before cutting.
   */
  private step(chunk: Buffer, i: number): number {
    const s = this.state;
    const b = chunk[i] ?? 0;
    switch (s) {
      case 'lineStart':
        if (b === LF) return this.emptyLine(i);
        if (b === CR) this.state = 'lineCr';
        else {
          if (b !== SP && b !== TAB) this.fieldEnd = this.offset;
          this.state = 'inLine';
        }
        this.offset += 1;
        return i + 1;
      case 'lineCr':
        if (b === LF) return this.emptyLine(i);
        this.state = 'inLine';
        return i;
      case 'inLine':
        return this.skipLine(chunk, i);
      case 'done':
        return chunk.length;
      default:
        return assertNever(s);
    }
  }

  /** The empty line ends the section; its own bytes (and a CR before the LF) are not part of it. */
  private emptyLine(i: number): number {
    this.end = this.state === 'lineCr' ? this.offset - 1 : this.offset;
    this.state = 'done';
    return i + 1;
  }

  /** To the end of the line if it ends within the bound; otherwise the section is cut. */
  private skipLine(chunk: Buffer, i: number): number {
    const room = this.max - this.offset;
    const lf = chunk.indexOf(LF, i);
    const rest = lf === -1 ? chunk.length - i : lf + 1 - i;
    if (rest > room || (lf === -1 && rest === room)) return this.cutAtBound(i);
    this.offset += rest;
    if (lf === -1) return chunk.length;
    this.state = 'lineStart';
    this.lineEnd = this.offset;
    return lf + 1;
  }

  /** This line cannot end within the bound: keep the whole fields before it (else whole lines, else the bound). */
  private cutAtBound(i: number): number {
    const room = Math.max(0, this.max - this.offset);
    this.end = this.fieldEnd > 0 ? this.fieldEnd : this.lineEnd > 0 ? this.lineEnd : this.max;
    this.cut = true;
    this.state = 'done';
    // Consumes (and so keeps) this line's bytes up to the bound, needed when the cut falls inside it.
    return i + room;
  }

  /** Keeps the consumed bytes of this chunk, never more than the bound in total. */
  private keep(chunk: Buffer, upTo: number): void {
    const take = Math.min(upTo, this.max - this.keptBytes);
    if (take <= 0) return;
    this.kept.push(Buffer.from(chunk.subarray(0, take)));
    this.keptBytes += take;
  }
}

/** The header section at the start of a whole message in memory. */
export function headerSection(message: Buffer, max: number = MAX_HEADER_SECTION): Buffer {
  const r = new HeaderSectionReader(max);
  if (!r.push(message)) r.finish();
  return r.headers;
}

/** The header section from a stream of body chunks (e.g. the queue's readEntryBody), reading no further than needed. */
export async function readHeaderSection(chunks: AsyncIterable<Buffer>, max: number = MAX_HEADER_SECTION): Promise<Buffer> {
  const r = new HeaderSectionReader(max);
  for await (const chunk of chunks) if (r.push(chunk)) return r.headers;
  r.finish();
  return r.headers;
}
