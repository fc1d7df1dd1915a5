/**
 * SMTP replies: the one place that renders reply lines.
 *
 * RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                              Reply-code [ SP textstring ] CRLF
 * RFC 2034 §4 / RFC 3463: with ENHANCEDSTATUSCODES every line of a 2xx/4xx/5xx
 * reply carries the enhanced code (class.subject.detail) before its text, and
 * the class digit equals the first digit of the reply code.
 */

export interface Reply {
  /** Three-digit reply code, 200–599 (RFC 5321 §4.2.1). */
  readonly code: number;
  /** Enhanced status code such as "5.1.1" (RFC 3463); absent for 220/221/354/334. */
  readonly enhanced?: string;
  /** One or more text lines; never contain CR or LF. */
  readonly lines: readonly string[];
}

export function reply(code: number, enhanced: string | undefined, ...lines: string[]): Reply {
  return { code, enhanced, lines: lines.length > 0 ? lines : [''] };
}

/** True for the codes a server uses to tell the client the session ends (421) or has ended (221). */
export function closesSession(r: Reply): boolean {
  return r.code === 421 || r.code === 221;
}

/** Octets left for the text after "ddd-" and before CRLF in a 512-octet reply line. */
const MAX_TEXT = 512 - 4 - 2;

/** Renders a reply to wire form; any CR, LF or NUL in the text is replaced so a reply can never split. */
export function renderReply(r: Reply): string {
  const prefix = r.enhanced ? `${r.enhanced} ` : '';
  const last = r.lines.length - 1;
  let out = '';
  for (let i = 0; i <= last; i++) {
    // RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF.
    const text = sanitize(r.lines[i] ?? '').slice(0, MAX_TEXT - prefix.length);
    const sep = i === last ? ' ' : '-';
    out += `${r.code}${sep}${prefix}${text}`.trimEnd() + '\r\n';
  }
  return out;
}

/** RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126). CR and LF become spaces (a reply can never split), anything else outside it "?". */
function sanitize(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\t\x20-\x7e]/.test(text)) return text;
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\r\n]/g, ' ').replace(/[^\t\x20-\x7e]/g, '?');
}

/** Replies Petrel sends often, named by code and meaning (after aiosmtpd's S250_OK style). */
export const R = {
  ok: (text = 'OK') => reply(250, '2.0.0', text),
  okSender: () => reply(250, '2.1.0', 'Sender OK'),
  okRecipient: () => reply(250, '2.1.5', 'Recipient OK'),
  reset: () => reply(250, '2.0.0', 'Reset OK'),
  noop: () => reply(250, '2.0.0', 'OK'),
  bye: (host: string) => reply(221, '2.0.0', `${host} closing connection`),
  startData: () => reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'),
  readyTls: () => reply(220, '2.0.0', 'Ready to start TLS'),
  vrfy: () => reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
  badSequence: (text = 'Bad sequence of commands') => reply(503, '5.5.1', text),
  unknownCommand: () => reply(500, '5.5.2', 'Command not recognized'),
  lineTooLong: () => reply(500, '5.5.2', 'Line too long'),
  nulInCommand: () => reply(500, '5.5.2', 'NUL character not allowed in commands'),
  bareLfCommand: () => reply(500, '5.5.2', 'Command lines must end with <CR><LF>'),
  syntax: (text = 'Syntax error in parameters or arguments') => reply(501, '5.5.4', text),
  notImplemented: (text = 'Command not implemented') => reply(502, '5.5.1', text),
  tooManyErrors: (host: string) => reply(421, '4.7.0', `${host} too many errors, closing connection`),
  timeout: (host: string) => reply(421, '4.4.2', `${host} idle timeout, closing connection`),
  shuttingDown: (host: string) => reply(421, '4.3.2', `${host} shutting down, try again later`),
  localError: () => reply(451, '4.3.0', 'Local error in processing, try again later'),
  storageError: () => reply(452, '4.3.1', 'Insufficient system storage, try again later'),
} as const;
