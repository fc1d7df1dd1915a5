/**
 * Incremental parser of SMTP server replies, for the outbound client
 * (client-session.ts).
 *
 * RFC 5321 §4.2:  Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                              Reply-code [ SP textstring ] CRLF
 * Every line of a multi-line reply carries the same code (§4.2.1 requires it of
 * servers; a client that let the code change mid-reply could be fed one reply
 * that reads as two). RFC 3463 / RFC 2034: an enhanced status code
 * class.subject.detail may open the text; its class must equal the reply's
 * first digit, otherwise it is ordinary text.
 *
 * Bytes go in as they arrive, split anywhere; complete replies come out. The
 * parser holds at most one partial line plus the reply being assembled, all
 * bounded (REPLY_LIMITS): a peer streaming an endless reply gets a protocol
 * error, not our memory. Garbage is a protocol error too, never an exception;
 * after an error the parser stays failed and ignores further input, because a
 * stream that lost its framing cannot be trusted again.
 *
 * Line ends: CRLF, or a bare LF (tolerated, like Go's textproto: replies carry
 * no message content, so leniency here cannot smuggle anything).
 */
import type { Reply } from './reply';

export const REPLY_LIMITS = {
  /** One reply line including its line end; RFC 5321 §4.5.3.1.5 says 512, we allow real-world slack. */
  line: 4096,
  /** Lines in one reply (a long EHLO list is about 20). */
  lines: 100,
  /** Bytes in one reply, line ends included. */
  bytes: 64 * 1024,
} as const;

export type ReplyEvent =
  | { readonly type: 'reply'; readonly reply: Reply }
  | { readonly type: 'error'; readonly reason: string };

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
const text = new TextDecoder('utf-8');
/** RFC 3463 §2: class "." subject (1–3 digits) "." detail (1–3 digits), then SP or the end of the text. */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

export class ReplyParser {
  /** The start of a line whose LF has not arrived yet. */
  private partial: Buffer = EMPTY;
  private code = 0;
  private lines: string[] = [];
  private bytes = 0;
  private failure: string | null = null;

  /** Parses another chunk; returns the replies it completed, or an error (once). */
  push(data: Buffer): ReplyEvent[] {
    const events: ReplyEvent[] = [];
    if (this.failure !== null) return events;
    const buf = this.partial.length > 0 ? Buffer.concat([this.partial, data]) : data;
    let pos = 0;
    for (;;) {
      const lf = buf.indexOf(LF, pos);
      const end = lf < 0 ? buf.length : lf + 1;
      if (end - pos > REPLY_LIMITS.line) return this.fail(events, `reply line longer than ${REPLY_LIMITS.line} octets`);
      if (lf < 0) break;
      const error = this.line(buf.subarray(pos, lf), lf + 1 - pos, events);
      if (error !== null) return this.fail(events, error);
      pos = lf + 1;
    }
    // Copied, so a caller's buffer is never retained beyond this call.
    this.partial = pos < buf.length ? Buffer.from(buf.subarray(pos)) : EMPTY;
    return events;
  }

  /** Whether part of a reply has been received and not yet completed. */
  get midReply(): boolean {
    return this.partial.length > 0 || this.lines.length > 0;
  }

  get failed(): string | null {
    return this.failure;
  }

  /** Forgets everything received so far (RFC 3207 §4.2: nothing from before the TLS handshake counts). */
  reset(): void {
    this.partial = EMPTY;
    this.code = 0;
    this.lines = [];
    this.bytes = 0;
  }

  /** One line without its LF; returns an error reason or null. */
  private line(raw: Buffer, size: number, events: ReplyEvent[]): string | null {
    const body = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    const head = parseHead(body);
    if (head === null) return 'malformed reply line';
    if (this.lines.length > 0 && head.code !== this.code) return 'reply code changed inside a multi-line reply';
    this.code = head.code;
    this.bytes += size;
    this.lines.push(text.decode(body.subarray(4)));
    if (this.lines.length > REPLY_LIMITS.lines) return `reply longer than ${REPLY_LIMITS.lines} lines`;
    if (this.bytes > REPLY_LIMITS.bytes) return `reply longer than ${REPLY_LIMITS.bytes} octets`;
    if (head.more) return null;
    events.push({ type: 'reply', reply: finish(this.code, this.lines) });
    this.code = 0;
    this.lines = [];
    this.bytes = 0;
    return null;
  }

  private fail(events: ReplyEvent[], reason: string): ReplyEvent[] {
    this.failure = reason;
    this.reset();
    events.push({ type: 'error', reason });
    return events;
  }
}

/** Reply-code, then "-" (more lines follow), SP or the end of the line (last line). */
function parseHead(line: Buffer): { code: number; more: boolean } | null {
  if (line.length < 3) return null;
  const [a, b, c] = [line[0] ?? 0, line[1] ?? 0, line[2] ?? 0];
  // §4.2: first digit 2–5 (SMTP has no 1yz replies); the others any digit, read liberally.
  if (a < 0x32 || a > 0x35 || !isDigit(b) || !isDigit(c)) return null;
  const sep = line[3];
  if (sep !== undefined && sep !== 0x20 && sep !== 0x2d) return null;
  return { code: (a - 0x30) * 100 + (b - 0x30) * 10 + (c - 0x30), more: sep === 0x2d };
}

function isDigit(x: number): boolean {
  return x >= 0x30 && x <= 0x39;
}

/** Takes the enhanced code from the first line and strips that same code from every line that repeats it. */
function finish(code: number, lines: string[]): Reply {
  const m = ENHANCED.exec(lines[0] ?? '');
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return { code, lines };
  const enhanced = `${m[1]}.${Number(m[2])}.${Number(m[3])}`;
  const prefix = m[0].trimEnd();
  const stripped = lines.map((l) => (l === prefix ? '' : l.startsWith(`${prefix} `) ? l.slice(prefix.length + 1) : l));
  return { code, enhanced, lines: stripped };
}
