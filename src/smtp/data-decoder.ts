/**
 * Streaming DATA content: the decoder the server runs after its 354 reply, and
 * the encoder the outbound client uses.
 *
 * RFC 5321 §4.1.1.4: the data ends with CRLF "." CRLF, and nothing else ends it.
 * RFC 5321 §4.5.2: a line beginning with "." carries one extra "." (dot-stuffing).
 * RFC 5321 §2.3.8: lines end in CRLF; a bare CR or bare LF is not a line ending.
 *
 * SMTP smuggling (CVE-2023-51764 Postfix, CVE-2023-51765 Sendmail, CVE-2023-51766
 * Exim): when two MTAs disagree on where the data ends ("\n.\n", "\r.\r",
 * "\r\n.\n" …), a sender can hide a second message inside the first. This decoder
 * ends the data only at CRLF "." CRLF and flags every bare CR or LF so the session
 * can refuse the message; the encoder never lets a bare CR or LF out.
 *
 * Design: a byte-level state machine whose state survives any chunk boundary;
 * runs of text between line-start dots are found with Buffer.indexOf (native
 * memchr) and emitted as one subarray each, so the hot path copies nothing and
 * the decoder never holds more than a few scalars (STYLE §3 rules 4 and 5).
 */
import { assertNever } from './assert-never';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n', 'latin1');
const DOT_CRLF = Buffer.from('.\r\n', 'latin1');

export interface DataOutcome {
  /** Decoded octets seen (counted even past the limit); excludes stuffing dots and the terminator. */
  readonly size: number;
  /** size > maxSize (RFC 1870 SIZE / max_message_size). */
  readonly tooBig: boolean;
  /** A CR not followed by LF, or an LF not preceded by CR, anywhere before the terminator. */
  readonly bareLineEnding: boolean;
}

type DecoderState =
  | 'lineStart' // the previous two bytes were CRLF (or nothing read yet): a "." here is stuffing or the terminator
  | 'text'      // inside a line and the previous byte was not a CR
  | 'cr'        // inside a line right after a CR (already counted); only LF makes it a line ending
  | 'dot'       // a line-start "." was read and dropped; a CR next may begin the terminator
  | 'dotCr'     // line-start "." CR read; LF ends the data, anything else makes that CR bare content
  | 'done';     // CRLF "." CRLF consumed; the decoder accepts no more bytes

export class DataDecoder {
  private state: DecoderState = 'lineStart';
  private size = 0;
  private tooBig = false;
  private bare = false;
  /** First CR at or after the scan position in the current buffer; -1 none left, -2 not yet searched. */
  private crPos = -2;

  constructor(private readonly maxSize: number) {}

  /**
   * Decodes buf[start..]; pushes decoded body slices (subarrays of buf) onto `out`.
   * Returns the index just past the terminating CRLF "." CRLF, or -1 when every byte
   * was consumed and more are needed. Bytes after the returned index are untouched:
   * they are the client's next pipelined commands.
   */
  push(buf: Buffer, start: number, out: Buffer[]): number {
    if (this.state === 'done') throw new Error('DataDecoder: push after the terminator');
    this.crPos = -2;
    const end = buf.length;
    let i = start;
    while (i < end) {
      i = this.step(buf, i, out);
      if (this.finished()) return i;
    }
    return -1;
  }

  private finished(): boolean {
    return this.state === 'done';
  }

  get outcome(): DataOutcome {
    return { size: this.size, tooBig: this.tooBig, bareLineEnding: this.bare };
  }

  /** Consumes at least one byte from buf[i] according to the state; returns the new position. */
  private step(buf: Buffer, i: number, out: Buffer[]): number {
    const s = this.state;
    switch (s) {
      case 'lineStart':
        if (buf[i] === DOT) {
          this.state = 'dot';
          return i + 1;
        }
        return this.scanText(buf, i, out);
      case 'text':
        return this.scanText(buf, i, out);
      case 'cr':
        return this.afterCr(buf, i, out);
      case 'dot':
        return this.afterDot(buf, i, out);
      case 'dotCr':
        return this.afterDotCr(buf, i, out);
      case 'done':
        return i;
      default:
        return assertNever(s);
    }
  }

  /** A CR ended the previous buffer: its LF may start this one. */
  private afterCr(buf: Buffer, i: number, out: Buffer[]): number {
    if (buf[i] === LF) {
      this.emit(buf, i, i + 1, out);
      this.state = 'lineStart';
      return i + 1;
    }
    this.bare = true;
    this.state = 'text';
    return this.scanText(buf, i, out);
  }

  /** After a dropped line-start dot: CR may begin the terminator; anything else is the line's content. */
  private afterDot(buf: Buffer, i: number, out: Buffer[]): number {
    if (buf[i] === CR) {
      this.state = 'dotCr';
      return i + 1;
    }
    // "\r\n.\n" is the classic smuggling terminator: content here, with a bare LF.
    this.state = 'text';
    return this.scanText(buf, i, out);
  }

  /** After line-start "." CR: only LF completes CRLF "." CRLF. */
  private afterDotCr(buf: Buffer, i: number, out: Buffer[]): number {
    if (buf[i] === LF) {
      this.state = 'done';
      return i + 1;
    }
    // "\r\n.\r" + X: the CR is content and bare. It lived in an earlier byte we did not
    // keep, but nothing more is emitted once the message is doomed, so only count it.
    this.bare = true;
    this.size += 1;
    if (this.size > this.maxSize) this.tooBig = true;
    this.state = 'text';
    return this.scanText(buf, i, out);
  }

  /**
   * Scans from i (inside a line, previous byte not a CR, buf[i] not a stuffing dot)
   * across as many lines as possible, stopping at a line-start dot or the end of buf.
   * Emits the whole stretch as one slice.
   */
  private scanText(buf: Buffer, from: number, out: Buffer[]): number {
    const end = buf.length;
    let i = from;
    for (;;) {
      const lf = buf.indexOf(LF, i);
      const cr = this.nextCr(buf, i);
      if (lf === -1) {
        if (cr !== -1 && cr < end - 1) this.bare = true;
        this.state = buf[end - 1] === CR ? 'cr' : 'text';
        this.emit(buf, from, end, out);
        return end;
      }
      const crlf = lf > from && buf[lf - 1] === CR;
      if (!crlf || (cr !== -1 && cr < lf - 1)) this.bare = true;
      i = lf + 1;
      if (!crlf) continue; // after a bare LF no line starts: the only line ending is CRLF
      if (i === end) {
        this.state = 'lineStart';
        this.emit(buf, from, end, out);
        return end;
      }
      if (buf[i] === DOT) {
        this.state = 'dot';
        this.emit(buf, from, i, out);
        return i + 1;
      }
    }
  }

  private nextCr(buf: Buffer, i: number): number {
    if (this.crPos !== -1 && this.crPos < i) this.crPos = buf.indexOf(CR, i);
    return this.crPos;
  }

  /** Counts buf[from..to) and hands it on unless the message is already doomed. */
  private emit(buf: Buffer, from: number, to: number, out: Buffer[]): void {
    const n = to - from;
    if (n === 0) return;
    const before = this.size;
    this.size += n;
    // tooBig depends only on the total, never on where the chunks were cut or what was seen first.
    const over = this.size > this.maxSize;
    if (this.bare || this.tooBig) {
      if (over) this.tooBig = true;
      return;
    }
    if (over) {
      this.tooBig = true;
      const keep = this.maxSize - before;
      if (keep > 0) out.push(buf.subarray(from, from + keep));
      return;
    }
    out.push(buf.subarray(from, to));
  }
}

type EncoderState =
  | 'lineStart' // at the start of a line: a "." here must be doubled
  | 'text'      // inside a line
  | 'cr';       // the previous chunk ended in a CR not yet written: CRLF, or a bare CR, both written as CRLF

const DOT_BUF = Buffer.from('.', 'latin1');

/**
 * The outbound direction: dot-stuffs content (RFC 5321 §4.5.2) and normalises every
 * bare CR and bare LF to CRLF, so no peer, however lenient, can read an early end
 * of data into what we send. end() closes an unterminated last line (§4.1.1.4)
 * and adds ".\r\n". Clean runs of lines go out as one subarray each.
 */
export class DataEncoder {
  private state: EncoderState = 'lineStart';
  private crPos = -2;
  private lfPos = -2;

  push(chunk: Buffer, out: Buffer[]): void {
    const end = chunk.length;
    let i = 0;
    if (this.state === 'cr' && end > 0) {
      out.push(CRLF);
      if (chunk[0] === LF) i = 1;
      this.state = 'lineStart';
    }
    this.crPos = this.lfPos = -2;
    let from = i;
    while (i < end) {
      if (this.state === 'lineStart' && chunk[i] === DOT) {
        flush(chunk, from, i, out);
        out.push(DOT_BUF);
        from = i;
      }
      this.state = 'text';
      const j = this.nextBreak(chunk, i);
      if (j === -1) break;
      if (chunk[j] === CR && chunk[j + 1] === LF) {
        i = j + 2;
        this.state = 'lineStart';
        continue;
      }
      flush(chunk, from, j, out);
      i = from = j + 1;
      if (chunk[j] === CR && i === end) {
        this.state = 'cr';
        break;
      }
      out.push(CRLF);
      this.state = 'lineStart';
    }
    flush(chunk, from, end, out);
  }

  end(out: Buffer[]): void {
    if (this.state !== 'lineStart') out.push(CRLF);
    out.push(DOT_CRLF);
  }

  /** First CR or LF at or after i; both positions cached so a chunk is scanned once. */
  private nextBreak(chunk: Buffer, i: number): number {
    if (this.crPos !== -1 && this.crPos < i) this.crPos = chunk.indexOf(CR, i);
    if (this.lfPos !== -1 && this.lfPos < i) this.lfPos = chunk.indexOf(LF, i);
    if (this.crPos === -1) return this.lfPos;
    if (this.lfPos === -1) return this.crPos;
    return Math.min(this.crPos, this.lfPos);
  }
}

function flush(chunk: Buffer, from: number, to: number, out: Buffer[]): void {
  if (to > from) out.push(chunk.subarray(from, to));
}

/** Encodes a whole body for DATA: dot-stuffed, CRLF-normalised, terminated. */
export function encodeData(body: Buffer): Buffer {
  const out: Buffer[] = [];
  const enc = new DataEncoder();
  enc.push(body, out);
  enc.end(out);
  return Buffer.concat(out);
}
