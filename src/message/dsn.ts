/**
 * Delivery Status Notifications: the bounce (and delay warning) Petrel sends to
 * the envelope sender, from the null sender, when recipients fail or linger.
 *
 * RFC 3464 §2: message/delivery-status, per-message fields (§2.2: Reporting-MTA,
 *   Arrival-Date, X- extensions) then one block per recipient (§2.3:
 *   Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 *   Last-Attempt-Date, Will-Retry-Until), blocks separated by empty lines.
 * RFC 6522 (was 3462): multipart/report; report-type=delivery-status, with a
 *   human-readable part first, the report second, the original headers third
 *   (text/rfc822-headers).
 * RFC 3834 §5: Auto-Submitted: auto-replied, so that responders do not answer it.
 * RFC 3463: status codes class.subject.detail.
 * RFC 6533 §3: a non-ASCII address is written as address type "utf-8" in the
 *   7-bit utf-8-addr-xtext form, so the report stays message/delivery-status;
 *   8-bit original headers go in message/global-headers.
 * RFC 2046 §5.1.1: the boundary must not occur in any part; RFC 5322 §2.1.1:
 *   lines end in CRLF and are at most 998 octets.
 *
 * Everything that came from the network (remote replies, addresses, host names)
 * is cleaned of CR, LF and other controls and folded or wrapped, and the boundary
 * is checked against every part, so a hostile reply cannot add header fields,
 * recipient blocks or MIME parts.
 */
import { createHash } from 'node:crypto';
import { formatRfc5322Date } from './date';

export interface DsnRecipient {
  address: string;
  action: 'failed' | 'delayed';
  /** RFC 3463 code, e.g. "5.1.1"; see statusFromReply. */
  status: string;
  /** The remote host name, when a host answered. */
  remoteMta?: string;
  /** The remote reply, e.g. "550 5.1.1 <x@y>: user unknown". */
  diagnostic?: string;
  lastAttempt?: Date;
  willRetryUntil?: Date;
}

export interface DsnInput {
  /** Our host name (Reporting-MTA, the From: domain). */
  reportingMta: string;
  queueId: string;
  /** The envelope sender of the original message: the DSN's recipient. Never '' (a bounce is never bounced). */
  sender: string;
  arrivalDate: Date;
  date: Date;
  recipients: DsnRecipient[];
  /** The original header section, bounded by the caller (see header-scan.ts). */
  originalHeaders: Buffer;
  messageIdDomain: string;
  /** Injectable for tests; still changed if it occurs in the content. */
  boundary?: string;
}

/** RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5, one to three digits each. */
const STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})$/;
/** RFC 2046 §5.1.1 bchars, 1 to 70 of them, not ending in a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const CRLF = '\r\n';
/** Remote replies are capped: the log keeps the full text, the DSN stays small. */
const MAX_DIAGNOSTIC = 2000;
const MAX_ADDRESS = 512;
/** RFC 5322 §2.1.1 SHOULD-limit for the lines we lay out. */
const WIDTH = 78;
/** A word longer than this is cut (a fold there adds a space when unfolded): keeps lines under 998. */
const DSN_WORD = 900;

/**
 * C0 and C1 controls, DEL, and U+2028/U+2029: everything some parser treats as a
 * line break (Python's str.splitlines counts \x1c-\x1e, \x85 and U+2028), so a
 * hostile reply cannot start a line of its own anywhere.
 */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

/**
 * The Status for a recipient: the remote enhanced code when the reply carried a
 * valid one of the same class as the reply code (RFC 3463 §2, RFC 2034 §4),
 * else derived from the reply code: 5xx → 5.0.0, anything else → 4.0.0 (a reply
 * that is not a clear permanent failure is never reported as one).
 */
export function statusFromReply(code: number, enhanced?: string): string {
  const cls = code >= 500 && code <= 599 ? '5' : code >= 400 && code <= 499 ? '4' : '';
  const m = enhanced === undefined ? null : STATUS.exec(enhanced.trim());
  if (m && cls !== '' && m[1] === cls) return `${m[1]}.${Number(m[2])}.${Number(m[3])}`;
  return cls === '5' ? '5.0.0' : '4.0.0';
}

/** The whole DSN message, CRLF line ends, ready to be queued from the null sender to input.sender. */
export function buildDsn(input: DsnInput): Buffer {
  if (input.recipients.length === 0) throw new RangeError('buildDsn: no recipients to report');
  if (input.sender === '') throw new RangeError('buildDsn: the null sender never gets a DSN (RFC 3464 §2)');
  const parts = [humanPart(input), reportPart(input), headersPart(input.originalHeaders)];
  const boundary = pickBoundary(input.boundary, parts.map((p) => p.body));
  // utf8: a UTF-8 sender (RFC 6531/6532) appears as is in To:; everything else in the top header is ASCII.
  const chunks: Buffer[] = [Buffer.from(topHeaders(input, boundary, parts.some((p) => p.eightBit)), 'utf8')];
  chunks.push(ascii(`This is a MIME-encapsulated message.${CRLF}`));
  for (const p of parts) {
    chunks.push(ascii(`${CRLF}--${boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}`), p.body);
  }
  chunks.push(ascii(`${CRLF}--${boundary}--${CRLF}`));
  return Buffer.concat(chunks);
}

interface Part {
  headers: string[];
  /** Ends with CRLF (the CRLF before the next delimiter belongs to the delimiter, RFC 2046 §5.1.1). */
  body: Buffer;
  eightBit: boolean;
}

function topHeaders(input: DsnInput, boundary: string, eightBit: boolean): string {
  const failed = input.recipients.some((r) => r.action === 'failed');
  const host = reportHost(input.reportingMta);
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${host}>`,
    `To: <${reportAddress(input.sender)}>`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `Date: ${formatRfc5322Date(input.date)}`,
    `Message-ID: <${messageIdLocal(input, failed)}@${reportHost(input.messageIdDomain)}>`,
    'MIME-Version: 1.0',
    'Auto-Submitted: auto-replied',
    'Content-Type: multipart/report; report-type=delivery-status;',
    `\tboundary="${boundary}"`,
  ];
  if (eightBit) lines.push('Content-Transfer-Encoding: 8bit');
  return lines.join(CRLF) + CRLF + CRLF;
}

/** Unique per DSN: the queue id, the kind and the time (a delay warning and a later bounce differ). */
function messageIdLocal(input: DsnInput, failed: boolean): string {
  const id = input.queueId.replace(/[^A-Za-z0-9]/g, '').slice(0, 64) || 'unknown';
  return `${input.date.getTime().toString(36)}.${id}.${failed ? 'bounce' : 'delay'}`;
}

/** The part a person reads (RFC 6522 §3: first), naming each recipient and what the remote server said. */
function humanPart(input: DsnInput): Part {
  const failed = input.recipients.filter((r) => r.action === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const paras = [`This is the mail delivery system at ${reportHost(input.reportingMta)}.`];
  if (failed.length > 0) {
    paras.push(FAILED_INTRO);
    for (const r of failed) paras.push(recipientText(r));
  }
  if (delayed.length > 0) {
    paras.push(DELAYED_INTRO);
    for (const r of delayed) paras.push(recipientText(r));
  }
  const text = paras.join(CRLF + CRLF) + CRLF;
  return textPart(['Content-Description: Notification'], text, 'text/plain');
}

const FAILED_INTRO = wrapText(
  'Your message could not be delivered to the recipients below. This is a permanent error: ' +
    'the message will not be retried for them. The headers of your message are attached.',
  '',
).join(CRLF);
const DELAYED_INTRO = wrapText(
  'Your message has not been delivered yet to the recipients below. Delivery is still being ' +
    'retried; you do not need to send it again.',
  '',
).join(CRLF);

/** RFC 5321 §4.2: a reply starts with a three-digit code; anything else is Petrel's own account (connect failure, DNS). */
const isSmtpReply = (text: string) => /^\s*[245]\d\d(?:[ -]|$)/.test(text);

function recipientText(r: DsnRecipient): string {
  const lines = [`<${reportAddress(r.address)}>:`];
  const what = r.action === 'delayed' ? 'delivery delayed' : r.status.startsWith('4') ? 'gave up retrying' : 'delivery failed';
  const until = r.action === 'delayed' && r.willRetryUntil ? `, retried until ${formatRfc5322Date(r.willRetryUntil)}` : '';
  lines.push(...wrapText(`${what} (status ${validStatus(r)})${until}.`, '    '));
  const host = r.remoteMta === undefined ? '' : reportHost(r.remoteMta);
  if (r.diagnostic !== undefined) {
    const said = !isSmtpReply(r.diagnostic) ? 'Reason:' : host === '' ? 'The remote server said:' : `The mail server ${host} said:`;
    lines.push(...wrapText(said, '    '));
    lines.push(...wrapText(r.diagnostic, '        '));
  } else if (host !== '') lines.push(...wrapText(`Last tried at ${host}.`, '    '));
  return lines.join(CRLF);
}

/** RFC 3464 §2.1: per-message block, then one block per recipient, each block ending in an empty line but the last. */
function reportPart(input: DsnInput): Part {
  const perMessage = [
    dsnField('Reporting-MTA', `dns; ${reportHost(input.reportingMta)}`),
    dsnField('X-Petrel-Queue-ID', input.queueId),
    dsnField('X-Petrel-Sender', addressField(input.sender)),
    dsnField('Arrival-Date', formatRfc5322Date(input.arrivalDate)),
  ];
  const blocks = [perMessage, ...input.recipients.map(recipientBlock)];
  const text = blocks.map((b) => b.join('')).join(CRLF);
  return { headers: ['Content-Description: Delivery report', 'Content-Type: message/delivery-status'], body: ascii(text), eightBit: false };
}

function recipientBlock(r: DsnRecipient): string[] {
  const fields = [
    dsnField('Final-Recipient', addressField(r.address)),
    dsnField('Action', r.action),
    dsnField('Status', validStatus(r)),
  ];
  if (r.remoteMta !== undefined && reportHost(r.remoteMta) !== '') fields.push(dsnField('Remote-MTA', `dns; ${reportHost(r.remoteMta)}`));
  // RFC 3464 §2.3.6: diagnostic-type "smtp" for a remote reply, an X- type for our own text (as Postfix's "X-Postfix").
  if (r.diagnostic !== undefined) {
    const type = isSmtpReply(r.diagnostic) ? 'smtp' : 'X-Petrel';
    fields.push(dsnField('Diagnostic-Code', `${type}; ${r.diagnostic}`));
  }
  if (r.lastAttempt) fields.push(dsnField('Last-Attempt-Date', formatRfc5322Date(r.lastAttempt)));
  if (r.action === 'delayed' && r.willRetryUntil) fields.push(dsnField('Will-Retry-Until', formatRfc5322Date(r.willRetryUntil)));
  return fields;
}

/**
 * A malformed status (a caller bug, or a code taken from the network unchecked)
 * must not cost the sender the bounce: it is replaced by the generic code of the
 * action's class.
 */
function validStatus(r: DsnRecipient): string {
  const m = STATUS.exec(r.status);
  if (m && m[1] !== '2') return r.status;
  return r.action === 'failed' ? '5.0.0' : '4.0.0';
}

/** RFC 3464 §2.3.2 address-type "rfc822"; RFC 6533 §3 "utf-8" in its 7-bit xtext form for non-ASCII addresses. */
function addressField(address: string): string {
  const a = reportAddress(address);
  // eslint-disable-next-line no-control-regex
  if (/^[\x20-\x7e]*$/.test(a)) return `rfc822; ${a}`;
  return `utf-8; ${utf8AddrXtext(a)}`;
}

/** RFC 6533 §3 utf-8-addr-xtext: QCHAR as is; "+", "=", "\\", space and non-ASCII as \x{HEX}. */
function utf8AddrXtext(a: string): string {
  let out = '';
  for (const ch of a) {
    const cp = ch.codePointAt(0) ?? 0;
    const qchar = cp >= 0x21 && cp <= 0x7e && ch !== '+' && ch !== '=' && ch !== '\\';
    out += qchar ? ch : `\\x{${cp.toString(16).toUpperCase().padStart(2, '0')}}`;
  }
  return out;
}

/** Third part: the original headers, line ends normalised to CRLF, over-long lines folded, cut at an empty line. */
function headersPart(original: Buffer): Part {
  // latin1 maps bytes 1:1, so 8-bit header bytes pass through unchanged.
  // eslint-disable-next-line no-control-regex
  const lines = original.toString('latin1').replace(/\0/g, '').split(/\r\n|\r|\n/);
  const empty = lines.indexOf('');
  const kept = (empty === -1 ? lines : lines.slice(0, empty)).flatMap(splitLong);
  const body = Buffer.from(kept.map((l) => l + CRLF).join(''), 'latin1');
  // eslint-disable-next-line no-control-regex
  const eightBit = /[^\x00-\x7f]/.test(body.toString('latin1'));
  // RFC 6533 §3: message/global-headers carries UTF-8 header fields.
  const type = eightBit ? 'message/global-headers' : 'text/rfc822-headers';
  const headers = ['Content-Description: Undelivered Message Headers', `Content-Type: ${type}`];
  if (eightBit) headers.push('Content-Transfer-Encoding: 8bit');
  return { headers, body, eightBit };
}

/** RFC 5322 §2.1.1: a line over 998 octets becomes several, continued with a leading space (a fold). */
function splitLong(line: string): string[] {
  if (line.length <= 998) return [line];
  const out = [line.slice(0, 990)];
  for (let i = 990; i < line.length; i += 980) out.push(` ${line.slice(i, i + 980)}`);
  return out;
}

function textPart(headers: string[], text: string, type: string): Part {
  const body = Buffer.from(text, 'utf8');
  const eightBit = body.some((b) => b > 0x7f);
  const full = [...headers, `Content-Type: ${type}; charset=${eightBit ? 'utf-8' : 'us-ascii'}`];
  if (eightBit) full.push('Content-Transfer-Encoding: 8bit');
  return { headers: full, body, eightBit };
}

/**
 * RFC 2046 §5.1.1: the boundary must not appear in any encapsulated part. The
 * default is derived from a hash of the parts (pure, and not guessable by
 * whoever wrote the remote reply); either way it is checked, and a suffix is
 * added until no part contains it.
 */
function pickBoundary(requested: string | undefined, bodies: Buffer[]): string {
  if (requested !== undefined && !BOUNDARY.test(requested)) throw new RangeError('buildDsn: invalid MIME boundary');
  const base = requested ?? `=_Petrel_${createHash('sha256').update(Buffer.concat(bodies)).digest('hex').slice(0, 32)}`;
  const occurs = (b: string) => bodies.some((body) => body.includes(b, 0, 'latin1'));
  if (!occurs(base)) return base;
  const stem = base.slice(0, 60).trimEnd();
  for (let n = 1; ; n++) {
    const candidate = `${stem}=${n}`;
    if (!occurs(candidate)) return candidate;
  }
}

function ascii(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/* ---- cleaning and folding of text that came from the network ---- */

/** A host name as Reporting-MTA/Remote-MTA "dns;" names it: host and address-literal characters only. */
function reportHost(name: string): string {
  return name.slice(0, 255).replace(/[^A-Za-z0-9.\-_:[\]]/g, '');
}

/** An envelope address for display and for address fields: no controls, capped. */
function reportAddress(address: string): string {
  return address.replace(CONTROLS, '').slice(0, MAX_ADDRESS);
}

/** Controls become spaces, runs of white space one space, overlong text is cut with a marker. */
function cleanText(text: string): string {
  const flat = text.replace(CONTROLS, ' ').replace(/ +/g, ' ').trim();
  return flat.length <= MAX_DIAGNOSTIC ? flat : `${flat.slice(0, MAX_DIAGNOSTIC)} [truncated]`;
}

/**
 * One RFC 3464 §2.1.2 field ("Name: value" CRLF): the value is US-ASCII text
 * (non-ASCII becomes "?"), folded before spaces at 78 columns.
 */
function dsnField(name: string, value: string): string {
  const text = cleanText(value).replace(/[^\x20-\x7e]/g, '?');
  return wrapWords(text, `${name}: `, ' ', DSN_WORD).join(CRLF) + CRLF;
}

/** Human-readable lines, each led by `indent`, wrapped at 78 columns; long words are cut. */
function wrapText(text: string, indent: string): string[] {
  return wrapWords(cleanText(text), indent, indent, WIDTH - indent.length);
}

/**
 * Greedy word wrap: the first line starts with `first`, the others with `indent`;
 * words longer than `maxWord` code points are cut so no line can exceed 998 octets.
 */
function wrapWords(text: string, first: string, indent: string, maxWord: number): string[] {
  const lines: string[] = [];
  let line = first;
  let fresh = true;
  for (const word of text.split(' ').filter((w) => w !== '')) {
    for (const piece of chop(word, maxWord)) {
      if (fresh) line += piece;
      else if (line.length + 1 + piece.length <= WIDTH) line += ` ${piece}`;
      else {
        lines.push(line);
        line = indent + piece;
      }
      fresh = false;
    }
  }
  lines.push(line.trimEnd());
  return lines;
}

function chop(word: string, max: number): string[] {
  const cps = Array.from(word);
  if (cps.length <= max) return [word];
  const out: string[] = [];
  for (let i = 0; i < cps.length; i += max) out.push(cps.slice(i, i + max).join(''));
  return out;
}
