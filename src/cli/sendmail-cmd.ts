/**
 * `petrel sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]`: the interface
 * cron, PHP's mail() and git send-email expect of /usr/sbin/sendmail. Reads
 * the message from stdin, completes its header and hands it to the running
 * server over the control socket ("submit"); with no server running it opens
 * the queue itself (under the LOCK) and submits durably, and the server
 * delivers it when it starts. Prints nothing on success (the queue id with -v).
 *
 * Flags:
 *   -t          recipients also from To, Cc and Bcc (added to those given as
 *               arguments, as Postfix does)
 *   -i, -oi     a line with a single "." is not the end of input (without
 *               them it is, as in classic sendmail; no other dot handling)
 *   -f ADDR, -r ADDR   envelope sender ("<>" for the null sender)
 *   -F NAME     full name for a From: field that Petrel adds
 *   -v          print the queue id
 *   --          end of flags
 * Accepted and ignored (their job is done otherwise or not applicable):
 *   -bm (the default mode), -m, -n, -U, -G, -Am, -Ac, -od* (delivery mode),
 *   -oe* (error mode: errors are always the exit status and stderr), -om,
 *   -oo, -os, -ob*, -o anything else, -B TYPE, -C FILE, -h N, -L TAG, -N DSN,
 *   -O OPT=VAL, -R RET, -V ENVID, -X LOG.
 * Other modes (-bs, -bp, -bt, -bv, -bd, -q ...) are refused with EX_USAGE.
 *
 * The message: line ends become CRLF (a bare CR or LF alike); every Bcc:
 * field is removed (RFC 5322 §3.6.3); From: (from -F and the sender), Date:
 * and Message-ID: are added when missing (RFC 5322 §3.6 requires From and
 * Date, and SHOULD a Message-ID); a Received: field records the local
 * submission (RFC 5321 §4.4). Addresses without a domain are completed:
 * the sender with the hostname, recipients with the first local domain, so
 * that `To: root` from cron stays local.
 *
 * Exit status, sysexits(3): 64 usage, 65 bad message (too big, header too
 * large), 67 bad or no valid recipient, 75 temporary failure (queue or
 * server unavailable): the caller keeps the message and may retry.
 */
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Config } from '../config';
import { parseAddressList } from '../message/address-list';
import { formatRfc5322Date } from '../message/date';
import { DefectList, HeaderParser, MAX_HEADER_BYTES, type HeaderField } from '../message/header';
import { BAD_MESSAGE, BAD_RECIPIENT, parseSubmit, type SubmitRequest } from '../server/control';
import { parsePath } from '../smtp/path';
import { requestOrDirect } from './control-client';
import { loadSigningKeys } from '../auth/load-keys';
import { signingQueue } from '../server/message-auth';

type Print = (s: string) => void;

export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOUSER = 67;
export const EX_TEMPFAIL = 75;

export const SENDMAIL_USAGE = 'usage: petrel sendmail [-t] [-i] [-v] [-f FROM] [-F NAME] [RCPT...] < message\n';

export interface SendmailOptions {
  extract: boolean;
  ignoreDots: boolean;
  verbose: boolean;
  sender: string | null;
  fullName: string | null;
  recipients: string[];
}

/** Who runs the command and when (tests pass their own). */
export interface Invoker {
  user: string;
  now: Date;
}

class Exit extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function sendmailCommand(args: string[], cfg: Config, stdin: AsyncIterable<Buffer>, out: Print, err: Print, who?: Invoker): Promise<number> {
  try {
    const opts = parseSendmailArgs(args);
    const input = await normalizeInput(stdin, { ignoreDots: opts.ignoreDots, maxBytes: cfg.maxMessageSize });
    if (input === 'too-big') throw new Exit(EX_DATAERR, `message larger than max_message_size (${cfg.maxMessageSize} bytes)`);
    const req = prepare(input, opts, cfg, who ?? { user: currentUser(), now: new Date() });
    const checked = parseSubmit(req, cfg.maxMessageSize);
    if (typeof checked === 'string') throw new Exit(statusOf(checked), checked);
    // With no server, sign here as the server would (message-auth.ts): the same keys, the same fields.
    const sent = await requestOrDirect(cfg.dataDir, checked, async (queue) => signingQueue(queue, await loadSigningKeys(cfg.dkimSign), null));
    if ('unavailable' in sent) throw new Exit(EX_TEMPFAIL, sent.unavailable);
    if (!sent.res.ok) throw new Exit(statusOf(sent.res.error), sent.res.error);
    if (opts.verbose) out(`${sent.res.id ?? ''}${sent.direct ? ' (server not running: queued directly)' : ''}\n`);
    return 0;
  } catch (e) {
    if (e instanceof Exit) {
      err(`petrel sendmail: ${e.message}\n`);
      if (e.status === EX_USAGE) err(SENDMAIL_USAGE);
      return e.status;
    }
    err(`petrel sendmail: ${e instanceof Error ? e.message : String(e)}\n`);
    return EX_TEMPFAIL; // an I/O or queue failure: the caller keeps the message and retries
  }
}

function statusOf(error: string): number {
  if (error.startsWith(BAD_RECIPIENT)) return EX_NOUSER;
  if (error.startsWith(BAD_MESSAGE)) return EX_DATAERR;
  return EX_TEMPFAIL;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'nobody';
  }
}

/** Flags taking a value, attached ("-fme@x") or as the next argument ("-f me@x"). */
const WITH_VALUE = new Set(['f', 'r', 'F', 'B', 'C', 'h', 'L', 'N', 'O', 'R', 'V', 'X']);
const IGNORED = new Set(['bm', 'm', 'n', 'U', 'G', 'Am', 'Ac', 'oi']);

export function parseSendmailArgs(args: readonly string[]): SendmailOptions {
  const o: SendmailOptions = { extract: false, ignoreDots: false, verbose: false, sender: null, fullName: null, recipients: [] };
  for (let k = 0; k < args.length; k++) {
    const a = args[k] as string;
    if (a === '--') {
      o.recipients.push(...args.slice(k + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      o.recipients.push(a);
      continue;
    }
    const flag = a[1] as string;
    if (WITH_VALUE.has(flag)) {
      const value = a.length > 2 ? a.slice(2) : args[++k];
      if (value === undefined) throw new Exit(EX_USAGE, `option -${flag} needs a value`);
      if (flag === 'f' || flag === 'r') o.sender = value;
      if (flag === 'F') o.fullName = value;
      continue;
    }
    applyFlag(a.slice(1), o);
  }
  return o;
}

function applyFlag(f: string, o: SendmailOptions): void {
  if (f === 't') o.extract = true;
  else if (f === 'i' || f === 'oi') o.ignoreDots = true;
  else if (f === 'v') o.verbose = true;
  else if (IGNORED.has(f) || (f.startsWith('o') && f !== 'o')) return;
  else if (f.startsWith('b') || f.startsWith('q') || f === 'I') throw new Exit(EX_USAGE, `mode -${f} is not supported (only -bm, the default)`);
  else throw new Exit(EX_USAGE, `unknown option -${f}`);
}

/** The submit request: envelope from the flags (and the header with -t), the message completed. */
export function prepare(message: Buffer, opts: SendmailOptions, cfg: Config, who: Invoker): SubmitRequest {
  const p = new HeaderParser({ maxBytes: MAX_HEADER_BYTES, maxFields: 10_000 });
  const fields = [...p.push(message), ...p.end()];
  if (p.defects.items.some((d) => d.code === 'header-too-large' || d.code === 'too-many-fields')) {
    throw new Exit(EX_DATAERR, `${BAD_MESSAGE}: header section over ${MAX_HEADER_BYTES} bytes or too many fields`);
  }
  const localDomain = cfg.localDomains[0] ?? 'localhost';
  const sender = envelopeSender(opts.sender, who.user, cfg.hostname);
  const recipients = collectRecipients(opts, fields, localDomain);
  const fromAddress = sender === '' ? `${who.user}@${cfg.hostname}` : sender;
  const added = missingFields(fields, { ...opts, fromAddress, hostname: cfg.hostname, now: who.now });
  const kept = fields.filter((f) => f.name.toLowerCase() !== 'bcc').map((f) => message.subarray(f.start, f.end));
  const body = message.subarray(Math.min(p.bodyOffset < 0 ? message.length : p.bodyOffset, message.length));
  const received = `Received: by ${cfg.hostname} (Petrel sendmail, from user ${headerSafe(who.user)});\r\n\t${formatRfc5322Date(who.now)}\r\n`;
  const header = Buffer.concat([Buffer.from(received), ...kept.map(endWithCrlf), Buffer.from(added.join(''))]);
  const full = Buffer.concat([header, Buffer.from('\r\n'), body]);
  return { op: 'submit', sender, recipients, body: full.toString('base64') };
}

function endWithCrlf(raw: Buffer): Buffer {
  return raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a ? raw : Buffer.concat([raw, Buffer.from('\r\n')]);
}

/** -f/-r, "<>" for the null sender; else the invoking user at the hostname. */
function envelopeSender(given: string | null, user: string, hostname: string): string {
  if (given === null) return checkedAddress(`${user}@${hostname}`, EX_USAGE, 'sender');
  const trimmed = given.trim();
  if (trimmed === '<>' || trimmed === '') return '';
  const [box] = parseAddressList(trimmed, new DefectList());
  if (!box) throw new Exit(EX_USAGE, `-f ${JSON.stringify(given)} is not an address`);
  return checkedAddress(qualify(box.address, hostname), EX_USAGE, `-f ${JSON.stringify(given)}`);
}

function collectRecipients(opts: SendmailOptions, fields: readonly HeaderField[], localDomain: string): string[] {
  const defects = new DefectList();
  const texts = [...opts.recipients];
  if (opts.extract) texts.push(...fields.filter((f) => /^(to|cc|bcc)$/i.test(f.name)).map((f) => f.value));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const text of texts) {
    const boxes = parseAddressList(text, defects);
    if (boxes.length === 0 && text.trim() !== '' && !text.includes(':')) throw new Exit(EX_NOUSER, `${BAD_RECIPIENT}: ${JSON.stringify(text)}`);
    for (const b of boxes) {
      const addr = checkedAddress(qualify(b.address, localDomain), EX_NOUSER, 'recipient');
      const key = addr.replace(/@[^@]*$/, (d) => d.toLowerCase());
      if (!seen.has(key)) out.push(addr);
      seen.add(key);
    }
  }
  if (defects.items.some((d) => d.code === 'invalid-address')) throw new Exit(EX_NOUSER, `${BAD_RECIPIENT}: ${defects.items[0]?.detail}`);
  if (out.length === 0) throw new Exit(EX_USAGE, opts.extract ? 'no recipients in the arguments or in To, Cc, Bcc' : 'no recipients given (or use -t)');
  return out;
}

function qualify(address: string, domain: string): string {
  return address.includes('@') ? address : `${address}@${domain}`;
}

function checkedAddress(address: string, status: number, what: string): string {
  if (!parsePath(`<${address}>`, { smtputf8: true, allowNull: false, allowBarePostmaster: false }).ok) {
    throw new Exit(status, `${status === EX_NOUSER ? `${BAD_RECIPIENT}: ` : ''}${what} ${JSON.stringify(address)} is not a valid address`);
  }
  return address;
}

interface Completion {
  fullName: string | null;
  fromAddress: string;
  hostname: string;
  now: Date;
}

/** RFC 5322 §3.6: From and Date are required, Message-ID SHOULD be there. */
function missingFields(fields: readonly HeaderField[], c: Completion): string[] {
  const has = (n: string): boolean => fields.some((f) => f.name.toLowerCase() === n);
  const added: string[] = [];
  if (!has('from')) added.push(`From: ${c.fullName ? `${displayName(c.fullName)} <${c.fromAddress}>` : c.fromAddress}\r\n`);
  if (!has('date')) added.push(`Date: ${formatRfc5322Date(c.now)}\r\n`);
  if (!has('message-id')) added.push(`Message-ID: <${c.now.getTime().toString(36)}.${randomBytes(8).toString('hex')}@${c.hostname}>\r\n`);
  return added;
}

/** A phrase as written (atoms), quoted (RFC 5322 §3.2.4) or, if not ASCII, an RFC 2047 B word. */
export function displayName(name: string): string {
  const clean = headerSafe(name);
  if (/[^\x20-\x7e]/.test(clean)) return `=?UTF-8?B?${Buffer.from(clean, 'utf8').toString('base64')}?=`;
  if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+$/.test(clean) && clean.trim() === clean) return clean;
  return `"${clean.replace(/(["\\])/g, '\\$1')}"`;
}

/** Text from the command line or the system put in a header: no control characters (no CRLF injection). */
function headerSafe(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200);
}

type LineState =
  | 'lineStart' // at the first byte of a line
  | 'dot' // the line so far is one "." (held back: it may be the end of input)
  | 'inLine'; // inside a line

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * stdin to a CRLF message: CRLF, a bare LF and a bare CR all end a line;
 * without -i a line holding just "." ends the input (classic sendmail; no
 * other dot handling, no unstuffing); a last line without a line end gets one.
 */
export class InputNormalizer {
  private state: LineState = 'lineStart';
  /** The previous byte was a CR that ended a line: an LF now is part of that line end. */
  private afterCr = false;
  ended = false;

  constructor(private readonly ignoreDots: boolean) {}

  push(chunk: Uint8Array): Buffer {
    const out = Buffer.alloc(chunk.length * 2 + 3); // each byte gives at most 2, plus a held-back "."
    let n = 0;
    for (let i = 0; i < chunk.length && !this.ended; i++) {
      const b = chunk[i] as number;
      if (this.afterCr) {
        this.afterCr = false;
        if (b === LF) continue;
      }
      if (b === CR || b === LF) {
        n = this.lineEnd(out, n);
        this.afterCr = b === CR;
      } else if (this.state === 'lineStart' && b === DOT) this.state = 'dot';
      else {
        if (this.state === 'dot') out[n++] = DOT;
        this.state = 'inLine';
        out[n++] = b;
      }
    }
    return out.subarray(0, n);
  }

  /** End of input: completes the last line (a lone "." there ends the input like one with a newline). */
  end(): Buffer {
    const out = Buffer.alloc(3);
    return this.ended || this.state === 'lineStart' ? out.subarray(0, 0) : out.subarray(0, this.lineEnd(out, 0));
  }

  private lineEnd(out: Buffer, n: number): number {
    if (this.state === 'dot' && !this.ignoreDots) {
      this.ended = true;
      return n;
    }
    if (this.state === 'dot') out[n++] = DOT;
    out[n++] = CR;
    out[n++] = LF;
    this.state = 'lineStart';
    return n;
  }
}

/** Reads stdin through InputNormalizer; stops reading past `maxBytes`, so memory stays bounded. */
export async function normalizeInput(stdin: AsyncIterable<Uint8Array>, o: { ignoreDots: boolean; maxBytes: number }): Promise<Buffer | 'too-big'> {
  const norm = new InputNormalizer(o.ignoreDots);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = norm.push(chunk);
    parts.push(b);
    size += b.length;
    if (size > o.maxBytes) return 'too-big';
    if (norm.ended) break;
  }
  const last = norm.end();
  if (size + last.length > o.maxBytes) return 'too-big';
  return Buffer.concat([...parts, last]);
}

