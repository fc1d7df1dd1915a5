/**
 * Trace information: the Received: field Petrel prepends to every message it
 * accepts, and the counter that spots mail loops by counting those fields.
 *
 * RFC 5321 §4.4: Stamp = From-domain By-domain Opt-info [CFWS] ";" FWS date-time,
 *   From-domain = "FROM" FWS Extended-Domain, TCP-info carries the client's
 *   address literal, Opt-info = [Via] [With] [ID] [For].
 * RFC 3848: the "with" protocol keywords (ESMTP, ESMTPS, ESMTPA, ESMTPSA);
 * RFC 6531 §3.7.3: their UTF8SMTP counterparts.
 * RFC 5321 §6.3 / §4.4: a server counts Received: fields to detect loops.
 * RFC 5322 §2.1.1 / §2.2.3: lines folded at 78 characters where possible by
 *   inserting CRLF before whitespace.
 *
 * The HELO name is the client's free text: it is reduced to domain and
 * address-literal characters and capped, so it can neither end the field (CR, LF),
 * close the comment, fake the date (";"), nor add clauses (space).
 */
import { assertNever } from '../smtp/assert-never';
import { formatRfc5322Date } from './date';

export interface ReceivedInfo {
  /** What the client said in EHLO/HELO. */
  heloName: string;
  /** "192.0.2.1" or "2001:db8::1" (IPv4-mapped IPv6 is written as IPv4). */
  clientIp: string;
  /** Our hostname. */
  byHost: string;
  protocol: 'SMTP' | 'ESMTP' | 'ESMTPS' | 'ESMTPA' | 'ESMTPSA' | 'UTF8SMTP' | 'UTF8SMTPS' | 'UTF8SMTPA' | 'UTF8SMTPSA';
  queueId: string;
  /** Written as "for <x@y>"; the caller gives it only when there is exactly one recipient. */
  recipient?: string;
  /** Written as the comment "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)". */
  tls?: { version: string; cipher: string };
  date: Date;
}

/** RFC 5321 §4.5.3.1.2: a domain is at most 255 octets; a longer HELO name is cut. */
const MAX_HELO = 255;
const MAX_RECIPIENT = 256;
const FOLD_AT = 78;

/** A complete "Received: ..." field ending in CRLF; every continuation line starts with a tab. */
export function buildReceived(info: ReceivedInfo): Buffer {
  const clauses = [fromClause(info)];
  if (info.tls) {
    clauses.push(['(using', token(info.tls.version), 'with', 'cipher', `${token(info.tls.cipher)})`]);
  }
  const by = ['by', hostToken(info.byHost) || 'localhost', '(Petrel)', 'with', info.protocol, 'id', token(info.queueId)];
  clauses.push(by);
  const date = formatRfc5322Date(info.date);
  const recipient = info.recipient === undefined ? '' : cleanRecipient(info.recipient);
  if (recipient) clauses.push(['for', `<${recipient}>;`, date]);
  else by.push(`${by.pop() ?? ''};`, date);
  return Buffer.from(fold(clauses), 'utf8');
}

function fromClause(info: ReceivedInfo): string[] {
  const ip = addressLiteral(info.clientIp);
  const helo = hostToken(info.heloName);
  // Extended-Domain = Domain FWS "(" TCP-info ")"; with no usable HELO the
  // address literal stands in for the domain.
  return ['Received:', 'from', helo || ip, `(${ip})`];
}

/** Lays each clause on its own line when it fits, folding inside a clause only when it does not. */
function fold(clauses: string[][]): string {
  const lines: string[] = [];
  for (const clause of clauses) {
    let line = lines.length === 0 ? '' : '\t';
    for (const atom of clause) {
      if (line === '' || line === '\t') line += atom;
      else if (line.length + 1 + atom.length <= FOLD_AT) line += ` ${atom}`;
      else {
        lines.push(line);
        line = `\t${atom}`;
      }
    }
    lines.push(line);
  }
  return lines.join('\r\n') + '\r\n';
}

/** A HELO name or hostname: domain and address-literal characters only, capped; '' when empty. */
function hostToken(name: string): string {
  return name.slice(0, MAX_HELO).replace(/[^A-Za-z0-9.\-_:[\]]/g, '?');
}

/** Queue ids and TLS names: one atom of safe characters. */
function token(s: string): string {
  const cleaned = s.slice(0, 64).replace(/[^A-Za-z0-9.\-_+/]/g, '?');
  return cleaned === '' ? 'unknown' : cleaned;
}

/** RFC 5321 §4.1.3 address literal; IPv6 gets its "IPv6:" tag, a zone id is dropped. */
function addressLiteral(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  const bare = (mapped?.[1] ?? ip).replace(/%.*$/s, '').replace(/[^0-9A-Fa-f:.]/g, '');
  if (bare === '') return '[unknown]';
  return bare.includes(':') ? `[IPv6:${bare}]` : `[${bare}]`;
}

/**
 * The recipient as the client wrote it (UTF-8 allowed, RFC 6531), reduced to one
 * atom inside "<...>": no controls, space, brackets, ";" (which would fake the
 * date's position), parentheses (comments) or quoting characters (which could
 * leave a quoted-string open across the rest of the field).
 */
function cleanRecipient(addr: string): string {
  // eslint-disable-next-line no-control-regex
  return addr.slice(0, MAX_RECIPIENT).replace(/[\x00-\x20\x7f<>;()"\\]/g, '');
}

type CounterState =
  | 'name'      // within the first 9 octets of a header line: still comparing with "received:"
  | 'rest'      // past the part of the line that decides anything: skip to its LF
  | 'emptyCr'   // the line so far is a lone CR: LF now ends the header section
  | 'body';     // the empty line was seen: the header section is over

const NAME = Buffer.from('received:', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

/**
 * Counts Received: fields (RFC 5321 §6.3 loop detection) in the header section of
 * a streamed message, across any chunk boundaries. The field name is matched
 * case-insensitively (RFC 5322 §1.2.2); continuation lines begin with WSP and never
 * match. Keeps only a column and a match flag: O(1) memory, never a line.
 */
export class ReceivedCounter {
  private state: CounterState = 'name';
  private col = 0;
  private matching = true;
  private n = 0;

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      const s = this.state;
      switch (s) {
        case 'name':
          i = this.nameByte(chunk[i] ?? 0, i);
          break;
        case 'rest':
          i = this.skipLine(chunk, i);
          break;
        case 'emptyCr':
          // "\r\n" alone ends the headers; "\r" + anything else is a (malformed) non-empty line.
          if (chunk[i] === LF) this.state = 'body';
          else this.state = 'rest';
          break;
        case 'body':
          return;
        default:
          assertNever(s);
      }
    }
  }

  get count(): number {
    return this.n;
  }

  /** True until the empty line that ends the header section (RFC 5322 §2.1). */
  get inHeaders(): boolean {
    return this.state !== 'body';
  }

  private nameByte(b: number, i: number): number {
    if (b === LF) {
      this.state = this.col === 0 ? 'body' : 'name';
      this.newLine();
      return i + 1;
    }
    if (b === CR && this.col === 0) {
      this.state = 'emptyCr';
      return i + 1;
    }
    const lower = b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
    this.matching &&= lower === NAME[this.col];
    this.col += 1;
    if (this.col === NAME.length) {
      if (this.matching) this.n += 1;
      this.state = 'rest';
    } else if (!this.matching) this.state = 'rest';
    return i + 1;
  }

  private skipLine(chunk: Buffer, i: number): number {
    const lf = chunk.indexOf(LF, i);
    if (lf === -1) return chunk.length;
    this.state = 'name';
    this.newLine();
    return lf + 1;
  }

  private newLine(): void {
    this.col = 0;
    this.matching = true;
  }
}
