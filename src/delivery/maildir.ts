/**
 * Maildir delivery, the Maildir way (D. J. Bernstein's maildir(5), as qmail,
 * Postfix local(8), Dovecot and mutt use it):
 *   1. create Maildir/{tmp,new,cur} on first delivery (0700), fsync the
 *      directories created so the folder survives a crash;
 *   2. open tmp/<unique> exclusively (O_EXCL: never reuse a name), write
 *      the message, fsync, close;
 *   3. rename into new/ (atomic: a reader sees the whole message or none),
 *      then fsync new/ so the rename is on disk before the queue records
 *      the recipient as delivered (DESIGN.md: nothing accepted is lost).
 * A crash in between leaves at most a file in tmp/ (readers ignore tmp/)
 * and the recipient still queued: delivery is at-least-once.
 *
 * Unique names: "<seconds>.M<usec>P<pid>Q<n>R<random>.<host>" (Dovecot's
 * form of the maildir(5) rule), and in new/ ",S=<file size>,W=<size with
 * CRLF>" appended, which Dovecot reads instead of stat()ing for quota.
 *
 * The file is written with LF line ends, the Maildir convention (qmail,
 * Postfix and Dovecot's LDA all store LF; mail readers expect it): each
 * CRLF of the queued message becomes LF, nothing else changes.
 *
 * Return-Path (RFC 5321 §4.4: added by the final delivery agent, from the
 * envelope's reverse-path) and Delivered-To (Postfix/qmail: the recipient
 * this copy was delivered for; also what forwarding-loop detection reads)
 * are prepended.
 *
 * Every file-system failure is temporary (4yz: the operator can fix a full
 * disk or a broken directory, and the queue retries): RFC 3463 4.3.1 storage
 * full, 4.2.2 over quota, 4.2.0 mailbox unavailable, 4.3.0 anything else.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { reply, type Reply } from '../smtp/reply';

export interface MaildirOptions {
  /** Host name in unique names (default: the machine's). */
  readonly hostname?: string;
  /** false only for benchmarks (queue_fsync = no): nothing is then durable. */
  readonly fsync?: boolean;
}

/** Where a mailbox lives: <root>/<domain>/<user>/Maildir (both names made file-system safe). */
export function maildirPath(root: string, mailbox: { user: string; domain: string }): string {
  return join(root, safeName(mailbox.domain), safeName(mailbox.user), 'Maildir');
}

/**
 * A name that is one harmless path component: "/", NUL, "%", control
 * characters and a leading "." (so no "..", no hidden files) are %XX-encoded.
 * A local part like "../../etc" can thus never leave the mail root.
 */
export function safeName(s: string): string {
  // eslint-disable-next-line no-control-regex
  const enc = s.replace(/[%/\\\x00-\x1f\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
  const dotted = enc.startsWith('.') ? `%2E${enc.slice(1)}` : enc;
  return dotted === '' ? '%00' : dotted;
}

/** The trace fields a delivery agent prepends (CR, LF removed: an envelope address can never add a header). */
export function deliveryHeaders(sender: string, recipient: string): Buffer {
  const clean = (s: string) => s.replace(/[\r\n]/g, '');
  return Buffer.from(`Return-Path: <${clean(sender)}>\r\nDelivered-To: ${clean(recipient)}\r\n`);
}

/** Writes `head` then `body` into the Maildir at `maildir`; resolves with the file's path in new/ once durable. */
export async function deliverToMaildir(maildir: string, head: Buffer, body: AsyncIterable<Buffer>, opts: MaildirOptions = {}): Promise<string> {
  const fsync = opts.fsync ?? true;
  await ensureMaildir(maildir, fsync);
  const name = uniqueName(opts.hostname ?? osHostname());
  const tmp = join(maildir, 'tmp', name);
  let size: { bytes: number; lines: number };
  try {
    size = await writeFile(tmp, head, body, fsync);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const final = join(maildir, 'new', `${name},S=${size.bytes},W=${size.bytes + size.lines}`);
  try {
    await rename(tmp, final);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (fsync) await fsyncDir(join(maildir, 'new'));
  return final;
}

let counter = 0;

function uniqueName(host: string): string {
  const now = process.hrtime.bigint();
  const ms = Date.now();
  const usec = Number((now / 1000n) % 1_000_000n);
  counter = (counter + 1) % 1e9;
  // maildir(5): "/" and ":" cannot appear in the host part (":" starts the info suffix in cur/).
  const safeHost = host.replace(/\//g, '\\057').replace(/:/g, '\\072');
  return `${Math.floor(ms / 1000)}.M${usec}P${process.pid}Q${counter}R${randomBytes(8).toString('hex')}.${safeHost}`;
}

async function ensureMaildir(maildir: string, fsync: boolean): Promise<void> {
  let firstCreated: string | undefined;
  for (const sub of ['tmp', 'new', 'cur']) {
    const made = await mkdir(join(maildir, sub), { recursive: true, mode: 0o700 });
    firstCreated ??= made;
  }
  if (firstCreated === undefined || !fsync) return;
  // Every directory from the parent of the first one created down to the Maildir gained an entry.
  const top = dirname(firstCreated);
  const parts = relative(top, maildir).split(sep).filter((p) => p !== '');
  let d = top;
  await fsyncDir(d);
  for (const p of parts) {
    d = join(d, p);
    await fsyncDir(d);
  }
}

/** Streams head + body into a new file with CRLF → LF; returns bytes written and LF count. */
async function writeFile(path: string, head: Buffer, body: AsyncIterable<Buffer>, fsync: boolean): Promise<{ bytes: number; lines: number }> {
  const fh = await open(path, 'wx', 0o600);
  try {
    const lf = new CrlfToLf();
    let bytes = 0;
    let lines = 0;
    const put = async (b: Buffer) => {
      for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      bytes += b.length;
      for (const c of b) if (c === 0x0a) lines += 1;
    };
    await put(lf.push(head));
    for await (const chunk of body) await put(lf.push(chunk));
    await put(lf.end());
    if (fsync) await fh.sync();
    return { bytes, lines };
  } finally {
    await fh.close();
  }
}

/** CRLF → LF across chunk boundaries; a CR not followed by LF is kept as it is. */
export class CrlfToLf {
  private pendingCr = false;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk; // a pending CR still waits to see what comes next
    const out = Buffer.allocUnsafe(chunk.length + 1);
    let n = 0;
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] !== 0x0a) out[n++] = 0x0d;
    }
    for (; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (c !== 0x0d) out[n++] = c;
      else if (i + 1 === chunk.length) this.pendingCr = true;
      else if (chunk[i + 1] !== 0x0a) out[n++] = c;
    }
    return out.subarray(0, n);
  }

  end(): Buffer {
    const rest = this.pendingCr ? Buffer.from('\r') : Buffer.alloc(0);
    this.pendingCr = false;
    return rest;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The reply that stands for a Maildir write failure: always 4yz, the delivery is retried. */
export function maildirFailure(err: unknown): Reply {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const why = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ENOSPC': return reply(452, '4.3.1', `Insufficient system storage: ${why}`);
    case 'EDQUOT': return reply(452, '4.2.2', `Mailbox full: ${why}`);
    case 'ENOTDIR': case 'EEXIST': case 'EISDIR': case 'EACCES': case 'EPERM': case 'ENOENT': case 'ELOOP': case 'EROFS':
      return reply(451, '4.2.0', `Mailbox unavailable: ${why}`);
    default: return reply(451, '4.3.0', `Maildir delivery failed: ${why}`);
  }
}
