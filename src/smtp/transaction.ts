/**
 * One mail transaction (RFC 5321 §3.3): the sender, the accepted recipients
 * and the intake of the body, by DATA (dot-stuffed, §4.5.2) or by BDAT
 * chunks (RFC 3030, length-framed).
 *
 * The body is streamed: each decoded slice goes straight out to the queue as
 * a `body` output and nothing is buffered here. Problems found on the way
 * (too big, a bare CR or LF, a mail loop) are recorded and only judged at the
 * end, so the client's remaining bytes are read as data, never as commands.
 */
import { ReceivedCounter } from '../message/received';
import { DataDecoder } from './data-decoder';
import { LIMITS } from './limits';
import { LineEndingChecker } from './line-ending';
import type { MailArgs } from './params';
import { reply, type Reply } from './reply';
import type { Output } from './session-types';

export type Intake = 'DATA' | 'BDAT';

export class MailTransaction {
  readonly recipients: string[] = [];
  /** Queue id, given by the adapter when it accepted MAIL, so every log line of the transaction carries it. */
  id: string | null = null;
  /** The adapter opened the transaction in the queue (DATA or first BDAT): body chunks may flow. */
  opened = false;
  intake: Intake | null = null;
  /** A refusal decided part way through BDAT; later chunks are read and discarded. */
  failed: Reply | null = null;
  private size = 0;
  private decoder: DataDecoder | null = null;
  private readonly endings = new LineEndingChecker();
  private readonly received = new ReceivedCounter();

  constructor(
    readonly sender: string,
    readonly mail: MailArgs,
    private readonly maxSize: number,
  ) {}

  beginData(): void {
    this.intake = 'DATA';
    this.decoder = new DataDecoder(this.maxSize);
  }

  beginBdat(): void {
    this.intake = 'BDAT';
  }

  /** Feeds DATA bytes; returns the index after CRLF.CRLF, or -1 when it needs more. */
  feedData(buf: Buffer, start: number, out: Output[]): number {
    const decoder = this.decoder;
    if (!decoder) throw new Error('feedData before beginData');
    const slices: Buffer[] = [];
    const end = decoder.push(buf, start, slices);
    for (const slice of slices) this.emit(slice, out);
    return end;
  }

  /** Feeds one piece of a BDAT chunk (raw content, no dot-stuffing). */
  feedBdat(piece: Buffer, out: Output[]): void {
    this.size += piece.length;
    this.endings.push(piece);
    if (this.size > this.maxSize) {
      this.failed ??= tooBig();
      return;
    }
    if (this.failed || this.endings.bare) return;
    this.emit(piece, out);
  }

  /** Bytes of body accepted so far. */
  get bodySize(): number {
    return this.decoder ? this.decoder.outcome.size : this.size;
  }

  /** The refusal for a complete body, or null if it may be committed. */
  verdict(): Reply | null {
    if (this.decoder) {
      const o = this.decoder.outcome;
      if (o.tooBig) return tooBig();
      if (o.bareLineEnding) return bareLineEnding();
    } else {
      this.endings.end();
      if (this.failed) return this.failed;
      if (this.endings.bare) return bareLineEnding();
    }
    // RFC 5321 §6.3: a message that has passed through this many relays is looping.
    if (this.received.count > LIMITS.maxReceivedHeaders) {
      return reply(554, '5.4.6', 'Too many Received header fields: mail loop detected');
    }
    return null;
  }

  private emit(slice: Buffer, out: Output[]): void {
    if (slice.length === 0 || !this.opened || this.id === null) return;
    if (this.received.inHeaders) this.received.push(slice);
    out.push({ type: 'body', id: this.id, data: slice });
  }
}

function tooBig(): Reply {
  return reply(552, '5.3.4', 'Message size exceeds fixed maximum message size');
}

/** RFC 5321 §2.3.8: lines end in CRLF only; a bare CR or LF is how SMTP smuggling hides a second message. */
function bareLineEnding(): Reply {
  return reply(550, '5.6.0', 'Message refused: bare CR or LF in message content; lines must end with CRLF');
}
