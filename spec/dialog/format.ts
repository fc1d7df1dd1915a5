/**
 * SMTP dialogues as test data (STYLE.md §3 rule 9): the parser of the
 * spec/dialogs/*.smtp format and its meaning, shared by the in-memory runner
 * (spec/dialog/run-memory.ts) and the socket runner (test/server/dialogs.test.ts),
 * so one file is one set of expectations for the pure session and the real server.
 *
 * The format, one item per line:
 *
 *   # comment                  whole-line comment; blank lines are ignored
 *   ! key = value              an option; only before the first step (see DialogOptions)
 *   C: EHLO client.example     a command line, sent as UTF-8 with CRLF appended, taken verbatim
 *   R: DATA body\r\n.\r\n      raw bytes, NO CRLF appended; escapes \r \n \t \0 \xHH \\
 *   S: 250 2.1.5               the next reply has this code, and the rest of the line (if any)
 *                              is a prefix of the text of its LAST line (text = what follows
 *                              "250 ", so it starts with the enhanced code when there is one)
 *   S: 250-PIPELINING          a line of a multi-line reply: some line's text starts with this;
 *   S: 250-!STARTTLS           … or, after "!", no line's text starts with this. A run of
 *                              "S: ddd-" lines belongs to the "S: ddd " line that follows it.
 *   Q: Subject: x\r\n\r\nhi\r\n  the message just acknowledged ("queued as ID") is stored as
 *                              exactly these bytes (escapes as in R:) after the Received:
 *                              field Petrel prepends (RFC 5321 §4.4), which must carry its id
 *   E: <from@x> <to@y> …       that message's envelope: reverse-path, then forward-paths
 *   X: close                   the server closes the connection, with no reply beyond those
 *                              expected above
 *
 * Options (all optional): trusted, tls, hostname, max_message_size, max_recipients,
 * max_errors, local_domains, relay_domains (see DialogOptions), and for SMTP AUTH:
 *
 *   ! listener = smtps                   which listener the client talks to: smtp (default),
 *                                        submission (plain until STARTTLS, AUTH required) or
 *                                        smtps (TLS from the first byte, AUTH required); a
 *                                        dialogue cannot run a TLS handshake itself, so AUTH
 *                                        success is only reachable on smtps
 *   ! users = alice@localhost:secret, bob@localhost:pw:sales@localhost;help@localhost
 *                                        the users file: name:password[:senders, ";"-separated]
 *   ! auth_max_failures = 2              failed AUTHs from the client's address before 421
 *
 * Consecutive C: and R: lines are sent in ONE write (a PIPELINING group, RFC 2920);
 * any other line ends the group. Inline "# comment" is allowed on !, S:, E: and X:
 * lines only (C:, R: and Q: are data). Every dialogue ends with "X: close", so a
 * runner can prove there was no stray reply; every message the server queues must
 * be checked by a Q: line.
 */
import { assertNever } from '../../src/smtp/assert-never';

export interface DialogOptions {
  /** The client is in trusted_networks (may relay). Default no. */
  readonly trusted: boolean;
  /** Greeting and EHLO name. Default petrel.test. */
  readonly hostname: string;
  readonly maxMessageSize?: number;
  readonly maxRecipients?: number;
  readonly maxErrors?: number;
  /** Default: localhost. */
  readonly localDomains: readonly string[];
  readonly relayDomains: readonly string[];
  /** A certificate is configured, so STARTTLS is offered. Default no (but see `listener`). */
  readonly tls: boolean;
  /** The listener the client connects to; submission and smtps imply a certificate. Default smtp. */
  readonly listener: DialogListener;
  /** AUTH users with their passwords in clear (the runners hash them). Default none. */
  readonly users: readonly DialogUser[];
  readonly authMaxFailures?: number;
}

export type DialogListener = 'smtp' | 'submission' | 'smtps';

export interface DialogUser {
  readonly name: string;
  readonly password: string;
  readonly senders: readonly string[];
}

/** Whether the server under test has a certificate: asked for, or needed by the listener. */
export function hasCertificate(o: DialogOptions): boolean {
  return o.tls || o.listener !== 'smtp';
}

/** What an "S:" group expects of one reply. */
export interface ReplyExpect {
  readonly code: number;
  /** Prefix of the last line's text ('' matches any). */
  readonly text: string;
  readonly has: readonly string[];
  readonly lacks: readonly string[];
}

export type Step =
  | { readonly kind: 'write'; readonly line: number; readonly bytes: Buffer }
  | { readonly kind: 'expect'; readonly line: number; readonly expect: ReplyExpect }
  | { readonly kind: 'queued'; readonly line: number; readonly body: Buffer }
  | { readonly kind: 'envelope'; readonly line: number; readonly sender: string; readonly recipients: readonly string[] }
  | { readonly kind: 'close'; readonly line: number };

export interface Dialog {
  /** File name, for messages ("rset.smtp"). */
  readonly name: string;
  readonly options: DialogOptions;
  readonly steps: readonly Step[];
}

export const DEFAULT_OPTIONS: DialogOptions = {
  trusted: false,
  hostname: 'petrel.test',
  localDomains: ['localhost'],
  relayDomains: [],
  tls: false,
  listener: 'smtp',
  users: [],
};

export class DialogSyntaxError extends Error {
  override name = 'DialogSyntaxError';
}

// ---- parsing ----

interface ParseState {
  readonly name: string;
  options: DialogOptions;
  steps: Step[];
  /** "S: ddd-" lines waiting for their final line. */
  partial: { line: number; code: number; has: string[]; lacks: string[] } | null;
}

export function parseDialog(name: string, text: string): Dialog {
  const st: ParseState = { name, options: DEFAULT_OPTIONS, steps: [], partial: null };
  const lines = text.split('\n');
  lines.forEach((raw, i) => parseLine(st, raw.endsWith('\r') ? raw.slice(0, -1) : raw, i + 1));
  if (st.partial) fail(st, st.partial.line, `"S: ${st.partial.code}-" lines need a final "S: ${st.partial.code} ..." line`);
  const last = st.steps[st.steps.length - 1];
  if (last?.kind !== 'close') fail(st, lines.length, 'a dialogue must end with "X: close"');
  return { name, options: st.options, steps: st.steps };
}

function parseLine(st: ParseState, line: string, n: number): void {
  if (line.trim() === '' || line.startsWith('#')) return;
  const tag = line.slice(0, 2);
  const body = line.slice(2).startsWith(' ') ? line.slice(3) : line.slice(2);
  if (st.partial && tag !== 'S:') fail(st, n, `"S: ${st.partial.code}-" lines need a final "S: ${st.partial.code} ..." line`);
  switch (tag) {
    case '! ':
      return option(st, stripComment(line.slice(2)), n);
    case 'C:':
      return write(st, Buffer.from(`${body}\r\n`, 'utf8'), n);
    case 'R:':
      return write(st, unescape(st, body, n), n);
    case 'S:':
      return expectLine(st, stripComment(body), n);
    case 'Q:':
      return void st.steps.push({ kind: 'queued', line: n, body: unescape(st, body, n) });
    case 'E:':
      return envelope(st, stripComment(body), n);
    case 'X:':
      if (stripComment(body) !== 'close') fail(st, n, 'the only X: line is "X: close"');
      return void st.steps.push({ kind: 'close', line: n });
    default:
      fail(st, n, `unknown line type ${JSON.stringify(tag)} (expected #, !, C:, R:, S:, Q:, E: or X:)`);
  }
}

function stripComment(s: string): string {
  const m = /\s#/.exec(s);
  return (m ? s.slice(0, m.index) : s).trim();
}

function write(st: ParseState, bytes: Buffer, n: number): void {
  const prev = st.steps[st.steps.length - 1];
  if (prev?.kind === 'write') st.steps[st.steps.length - 1] = { ...prev, bytes: Buffer.concat([prev.bytes, bytes]) };
  else st.steps.push({ kind: 'write', line: n, bytes });
}

function option(st: ParseState, text: string, n: number): void {
  if (st.steps.length > 0) fail(st, n, 'options must come before the first step');
  const m = /^([a-z_]+)\s*=\s*(.*)$/.exec(text);
  if (!m) fail(st, n, 'an option is "! key = value"');
  const [, key = '', value = ''] = m;
  const list = () => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const int = () => (/^\d+$/.test(value) ? Number(value) : fail(st, n, `${key} needs a whole number`));
  const yes = () => (value === 'yes' ? true : value === 'no' ? false : fail(st, n, `${key} is yes or no`));
  const o = st.options;
  const set: Record<string, () => DialogOptions> = {
    trusted: () => ({ ...o, trusted: yes() }),
    tls: () => ({ ...o, tls: yes() }),
    hostname: () => ({ ...o, hostname: value }),
    max_message_size: () => ({ ...o, maxMessageSize: int() }),
    max_recipients: () => ({ ...o, maxRecipients: int() }),
    max_errors: () => ({ ...o, maxErrors: int() }),
    local_domains: () => ({ ...o, localDomains: list() }),
    relay_domains: () => ({ ...o, relayDomains: list() }),
    listener: () => ({ ...o, listener: listenerOption(st, value, n) }),
    users: () => ({ ...o, users: list().map((u) => userOption(st, u, n)) }),
    auth_max_failures: () => ({ ...o, authMaxFailures: int() }),
  };
  const apply = set[key];
  if (!apply) fail(st, n, `unknown option ${key} (known: ${Object.keys(set).join(', ')})`);
  st.options = apply();
}

function listenerOption(st: ParseState, value: string, n: number): DialogListener {
  if (value === 'smtp' || value === 'submission' || value === 'smtps') return value;
  return fail(st, n, 'listener is smtp, submission or smtps');
}

function userOption(st: ParseState, text: string, n: number): DialogUser {
  const [name = '', password = '', senders = '', ...rest] = text.split(':');
  if (!name.includes('@') || password === '' || rest.length > 0) fail(st, n, 'a user is name@domain:password[:sender;sender]');
  return { name, password, senders: senders === '' ? [] : senders.split(';') };
}

function expectLine(st: ParseState, text: string, n: number): void {
  const m = /^(\d{3})([ -]?)(.*)$/.exec(text);
  if (!m) fail(st, n, 'an S: line is "S: ddd [text]" or "S: ddd-text"');
  const code = Number(m[1]);
  const rest = m[3] ?? '';
  const p = st.partial;
  if (p && p.code !== code) fail(st, n, `a multi-line reply keeps its code (${p.code}, not ${code})`);
  if (m[2] === '-') {
    const part = p ?? { line: n, code, has: [], lacks: [] };
    if (rest.startsWith('!')) part.lacks.push(rest.slice(1));
    else part.has.push(rest);
    st.partial = part;
    return;
  }
  st.partial = null;
  st.steps.push({ kind: 'expect', line: p?.line ?? n, expect: { code, text: rest, has: p?.has ?? [], lacks: p?.lacks ?? [] } });
}

function envelope(st: ParseState, text: string, n: number): void {
  const paths = text.match(/<[^>]*>/g) ?? [];
  if (paths.length < 2 || paths.join(' ') !== text.replace(/\s+/g, ' ')) fail(st, n, 'an E: line is "E: <sender> <rcpt> [<rcpt>...]"');
  const bare = paths.map((p) => p.slice(1, -1));
  st.steps.push({ kind: 'envelope', line: n, sender: bare[0] ?? '', recipients: bare.slice(1) });
}

/** The escapes of R: and Q: lines; anything else is UTF-8 text. */
export function unescape(st: { name: string }, s: string, n: number): Buffer {
  const parts: Buffer[] = [];
  let text = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '\\') {
      text += ch;
      continue;
    }
    const e = s[i + 1];
    const simple: Record<string, string> = { r: '\r', n: '\n', t: '\t', '0': '\0', '\\': '\\' };
    if (e !== undefined && simple[e] !== undefined) {
      text += simple[e];
      i += 1;
    } else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
      parts.push(Buffer.from(text, 'utf8'), Buffer.from([parseInt(s.slice(i + 2, i + 4), 16)]));
      text = '';
      i += 3;
    } else fail(st, n, `bad escape at column ${i + 1} (known: \\r \\n \\t \\0 \\xHH \\\\)`);
  }
  parts.push(Buffer.from(text, 'utf8'));
  return Buffer.concat(parts);
}

/** Makes raw bytes printable in the same escape syntax, for failure messages. */
export function escapeBytes(b: Buffer): string {
  let out = '';
  for (const byte of b) {
    if (byte === 0x0d) out += '\\r';
    else if (byte === 0x0a) out += '\\n';
    else if (byte === 0x5c) out += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

function fail(st: { name: string }, n: number, why: string): never {
  throw new DialogSyntaxError(`${st.name}:${n}: ${why}`);
}

// ---- replies on the wire (RFC 5321 §4.2) ----

export interface WireReply {
  readonly code: number;
  /** The text of each line, after "ddd-" or "ddd ". */
  readonly lines: readonly string[];
}

/**
 * Splits the server's byte stream into complete replies, across any chunking.
 * Anything outside RFC 5321's reply grammar (ddd, "-" or " ", text, CRLF; one
 * code per reply) is an error, so both runners also check the wire form.
 */
export class ReplyReader {
  /** Kept as bytes so a UTF-8 character split between two chunks is decoded whole. */
  private pending: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private code = 0;

  push(data: Buffer | string): WireReply[] {
    this.pending = Buffer.concat([this.pending, typeof data === 'string' ? Buffer.from(data, 'utf8') : data]);
    const out: WireReply[] = [];
    for (let crlf = this.pending.indexOf('\r\n'); crlf >= 0; crlf = this.pending.indexOf('\r\n')) {
      const line = this.pending.subarray(0, crlf).toString('utf8');
      this.pending = this.pending.subarray(crlf + 2);
      const r = this.line(line);
      if (r) out.push(r);
    }
    return out;
  }

  /** Bytes after the last complete line (a reply cut short when the server closed). */
  get rest(): string {
    return this.pending.toString('utf8');
  }

  private line(line: string): WireReply | null {
    const m = /^([2-5]\d\d)(?:([ -])(.*))?$/s.exec(line);
    if (!m || /[\r\n]/.test(line)) throw new Error(`reply line outside RFC 5321 grammar: ${JSON.stringify(line)}`);
    const code = Number(m[1]);
    if (this.lines.length > 0 && code !== this.code) throw new Error(`multi-line reply changed its code: ${this.code} then ${code}`);
    this.code = code;
    this.lines.push(m[3] ?? '');
    if (m[2] === '-') return null;
    const r = { code, lines: this.lines };
    this.lines = [];
    return r;
  }
}

export function renderExpect(e: ReplyExpect): string {
  const has = e.has.map((h) => `${e.code}-${h}\n`).join('') + e.lacks.map((h) => `${e.code}-!${h}\n`).join('');
  return `${has}${e.code} ${e.text}`.trimEnd();
}

export function renderWire(r: WireReply): string {
  return r.lines.map((l, i) => `${r.code}${i === r.lines.length - 1 ? ' ' : '-'}${l}`).join('\n');
}

/** Why a reply does not meet an expectation, or null when it does. */
export function mismatch(e: ReplyExpect, r: WireReply): string | null {
  if (r.code !== e.code) return `code ${r.code}, expected ${e.code}`;
  const last = r.lines[r.lines.length - 1] ?? '';
  if (!last.startsWith(e.text)) return `last line ${JSON.stringify(last)} does not start with ${JSON.stringify(e.text)}`;
  for (const h of e.has) if (!r.lines.some((l) => l.startsWith(h))) return `no line starts with ${JSON.stringify(h)}`;
  for (const h of e.lacks) if (r.lines.some((l) => l.startsWith(h))) return `a line starts with ${JSON.stringify(h)}, which must be absent`;
  return null;
}


// ---- playing a dialogue against a server ----

/** A queued message as stored: Petrel's Received: field, then the body; and its envelope. */
export interface StoredView {
  readonly content: Buffer;
  readonly sender: string;
  readonly recipients: readonly string[];
}

/** The server under test, in memory or over a socket. */
export interface DialogPeer {
  write(bytes: Buffer): Promise<void>;
  /** The next complete reply; null once the server has closed and no reply is left. */
  nextReply(): Promise<WireReply | null>;
  stored(id: string): Promise<StoredView | undefined>;
}

export interface PlayResult {
  /** Queue ids from the "queued as ID" replies, in order. */
  readonly queued: readonly string[];
}

/** Runs every step; throws "file:line: why" with the transcript's tail on the first unmet expectation. */
export async function playDialog(d: Dialog, peer: DialogPeer): Promise<PlayResult> {
  const p = new Player(d, peer);
  for (const step of d.steps) await p.step(step);
  const last = d.steps[d.steps.length - 1]?.line ?? 0;
  if (p.unchecked.size > 0) p.fail(last, `queued but checked by no Q: line: ${[...p.unchecked].join(', ')}`);
  return { queued: p.queued };
}

class Player {
  readonly queued: string[] = [];
  readonly unchecked = new Set<string>();
  private readonly transcript: string[] = [];

  constructor(
    private readonly d: Dialog,
    private readonly peer: DialogPeer,
  ) {}

  async step(step: Step): Promise<void> {
    switch (step.kind) {
      case 'write':
        this.transcript.push(`C: ${escapeBytes(step.bytes)}`);
        return this.peer.write(step.bytes);
      case 'expect':
        return this.expect(step.line, step.expect);
      case 'queued':
      case 'envelope':
        return this.stored(step);
      case 'close': {
        const r = await this.peer.nextReply();
        if (r) this.fail(step.line, `expected the server to close the connection, got:\n${renderWire(r)}`);
        this.transcript.push('X: closed');
        return;
      }
      default:
        assertNever(step);
    }
  }

  fail(line: number, why: string): never {
    throw new Error(`${this.d.name}:${line}: ${why}\n--- transcript (last lines) ---\n${this.transcript.slice(-40).join('\n')}`);
  }

  private async expect(line: number, e: ReplyExpect): Promise<void> {
    const r = await this.peer.nextReply();
    if (!r) return this.fail(line, `expected ${renderExpect(e)}, but the server closed the connection`);
    this.transcript.push(renderWire(r).replace(/^/gm, 'S: '));
    const why = mismatch(e, r);
    if (why) this.fail(line, `expected ${renderExpect(e)}: ${why}`);
    const id = queuedId(r);
    if (id) {
      this.queued.push(id);
      this.unchecked.add(id);
    }
  }

  /** Q: and E: lines check the message acknowledged last. */
  private async stored(step: Step & { kind: 'queued' | 'envelope' }): Promise<void> {
    const id = this.queued[this.queued.length - 1];
    if (id === undefined) return this.fail(step.line, 'no message was queued before this line');
    const why = checkStored(step, id, await this.peer.stored(id));
    if (why) this.fail(step.line, why);
    if (step.kind === 'queued') this.unchecked.delete(id);
  }
}

function queuedId(r: WireReply): string | null {
  if (r.code !== 250) return null;
  return /queued as (\S+)/i.exec(r.lines[r.lines.length - 1] ?? '')?.[1] ?? null;
}

function checkStored(step: Step & { kind: 'queued' | 'envelope' }, id: string, m: StoredView | undefined): string | null {
  if (!m) return `message ${id} was acknowledged but is not in the queue`;
  if (step.kind === 'envelope') {
    const want = [step.sender, ...step.recipients].map((p) => `<${p}>`).join(' ');
    const got = [m.sender, ...m.recipients].map((p) => `<${p}>`).join(' ');
    return want === got ? null : `envelope of ${id} is ${got}, expected ${want}`;
  }
  const split = splitReceived(m.content);
  if (!split) return `message ${id} does not start with a Received: field: ${escapeBytes(m.content.subarray(0, 200))}`;
  if (!new RegExp(`\\sid ${id}[;\\s]`).test(split.field)) return `the Received: field does not carry id ${id}: ${split.field}`;
  if (!split.rest.equals(step.body)) return `message ${id} holds\n  ${escapeBytes(split.rest)}\nafter its Received: field, expected\n  ${escapeBytes(step.body)}`;
  return null;
}

/** The first header field (with its folded continuation lines) and what follows it. */
export function splitReceived(content: Buffer): { field: string; rest: Buffer } | null {
  if (content.subarray(0, 9).toString('latin1') !== 'Received:') return null;
  for (let i = 0; ; ) {
    const crlf = content.indexOf('\r\n', i);
    if (crlf < 0) return null;
    const next = content[crlf + 2];
    if (next === 0x20 || next === 0x09) i = crlf + 2;
    else return { field: content.subarray(0, crlf + 2).toString('utf8'), rest: content.subarray(crlf + 2) };
  }
}
