/**
 * LMTP client (RFC 2033): hands a message for local mailboxes to a mail
 * store such as Dovecot's lmtp, over TCP or a Unix socket.
 *
 * LMTP is SMTP without the queue on the far side, so the differences matter:
 * - §4.1: LHLO instead of EHLO/HELO (there is no HELO fallback);
 * - §4.2: after the final "." there is one reply PER ACCEPTED RECIPIENT, in
 *   RCPT order, because each mailbox can succeed or fail on its own
 *   (a full mailbox next to a healthy one);
 * - §5: never on TCP port 25 (config/values.ts refuses it in local_transport).
 * Replies are read with smtp/reply-parser.ts; the body is dot-stuffed and
 * CRLF-normalised by smtp/data-decoder.ts DataEncoder, as for SMTP.
 *
 * Failures that are not a mailbox's (cannot connect, timeout, greeting or
 * LHLO refused, connection lost) are temporary: 451 4.4.x, the queue retries.
 * The server's own replies to MAIL, RCPT and after DATA are passed on as
 * they are: its 5yz is the mailbox's permanent answer and bounces.
 */
import { connect, type Socket } from 'node:net';
import { DataEncoder } from '../smtp/data-decoder';
import { ReplyParser } from '../smtp/reply-parser';
import { reply, type Reply } from '../smtp/reply';
import type { LocalTransportSetting } from '../config/values';

export interface LmtpTarget {
  /** The queue recipient this mailbox belongs to (several targets may share one). */
  readonly index: number;
  /** The mailbox's address, sent in RCPT TO. */
  readonly address: string;
}

export interface LmtpJob {
  /** Envelope sender ('' for the null path). */
  readonly from: string;
  readonly targets: readonly LmtpTarget[];
  /** The message, from the first header byte (called once). */
  readonly body: () => AsyncIterable<Buffer>;
  /** Our name in LHLO. */
  readonly hostname: string;
  /** Connect and per-reply timeout. */
  readonly timeoutMs: number;
}

type LmtpWhere = Exclude<LocalTransportSetting, { kind: 'maildir' }>;

const klass = (r: Reply): number => Math.floor(r.code / 100);
const describe = (r: Reply): string => `${r.code} ${r.enhanced ?? ''} ${r.lines.join(' ')}`.replace(/\s+/g, ' ').trim();

/** One reply per target, in order; never rejects. */
export async function lmtpDeliver(where: LmtpWhere, job: LmtpJob): Promise<Reply[]> {
  const replies: (Reply | null)[] = job.targets.map(() => null);
  let conn: LmtpConnection | null = null;
  try {
    conn = await LmtpConnection.open(where, job.timeoutMs);
    await conversation(conn, job, replies);
  } catch (err) {
    const r = err instanceof LmtpFailure ? err.reply : reply(451, '4.4.1', `LMTP server unreachable: ${err instanceof Error ? err.message : String(err)}`);
    for (let i = 0; i < replies.length; i++) replies[i] ??= r;
  } finally {
    conn?.close();
  }
  return replies.map((r) => r ?? reply(451, '4.4.2', 'No reply from the LMTP server'));
}

async function conversation(c: LmtpConnection, job: LmtpJob, out: (Reply | null)[]): Promise<void> {
  await c.expect(2, 'greeting');
  await c.command(`LHLO ${job.hostname}`, 2, 'LHLO');
  const mail = await c.command(`MAIL FROM:<${job.from}>`);
  if (klass(mail) !== 2) {
    out.fill(mail);
    return c.quit();
  }
  const accepted: number[] = [];
  for (const [k, t] of job.targets.entries()) {
    const r = await c.command(`RCPT TO:<${t.address}>`);
    if (klass(r) === 2) accepted.push(k);
    else out[k] = r;
  }
  if (accepted.length === 0) return c.quit();
  const go = await c.command('DATA');
  if (go.code !== 354) {
    for (const k of accepted) out[k] = go;
    return c.quit();
  }
  await c.sendBody(job.body());
  // RFC 2033 §4.2: one reply for each recipient that RCPT accepted, in that order.
  for (const k of accepted) out[k] = await c.next();
  return c.quit();
}

class LmtpFailure extends Error {
  constructor(readonly reply: Reply) {
    super(describe(reply));
  }
}

/** A socket plus a reply queue: await next() for each reply, in order. */
class LmtpConnection {
  private readonly parser = new ReplyParser();
  private readonly ready: Reply[] = [];
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket, timeoutMs: number) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(new LmtpFailure(reply(451, '4.4.2', `LMTP connection error: ${e.message}`))));
    socket.on('close', () => this.fail(new LmtpFailure(reply(451, '4.4.2', 'LMTP connection closed'))));
    socket.setTimeout(timeoutMs, () => this.fail(new LmtpFailure(reply(451, '4.4.2', 'LMTP server timed out'))));
  }

  static open(where: LmtpWhere, timeoutMs: number): Promise<LmtpConnection> {
    return new Promise((resolve, reject) => {
      const s = where.kind === 'lmtp' ? connect({ host: where.host, port: where.port }) : connect({ path: where.path });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('connect timeout'));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(new LmtpConnection(s, timeoutMs));
      });
    });
  }

  next(): Promise<Reply> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** A reply of the wanted class, else the whole transaction fails temporarily with it. */
  async expect(wanted: number, what: string): Promise<Reply> {
    const r = await this.next();
    if (klass(r) !== wanted) throw new LmtpFailure(reply(451, '4.4.0', `LMTP ${what} refused: ${describe(r)}`));
    return r;
  }

  async command(line: string, wanted?: number, what?: string): Promise<Reply> {
    this.socket.write(`${line.replace(/[\r\n]/g, '')}\r\n`);
    return wanted === undefined ? this.next() : this.expect(wanted, what ?? line);
  }

  async sendBody(body: AsyncIterable<Buffer>): Promise<void> {
    const enc = new DataEncoder();
    const out: Buffer[] = [];
    for await (const chunk of body) {
      enc.push(chunk, out);
      await this.write(out.splice(0));
    }
    enc.end(out);
    await this.write(out);
  }

  async quit(): Promise<void> {
    if (this.failure) return;
    this.socket.write('QUIT\r\n');
    await this.next().catch(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }

  private async write(bufs: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    if (bufs.length === 0) return;
    if (this.socket.write(Buffer.concat(bufs))) return;
    await new Promise<void>((r) => {
      this.socket.once('drain', r);
      this.socket.once('close', r);
    });
  }

  private onData(d: Buffer): void {
    for (const e of this.parser.push(d)) {
      if (e.type === 'error') return this.fail(new LmtpFailure(reply(451, '4.4.2', `bad LMTP reply: ${e.reason}`)));
      this.ready.push(e.reply);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    const r = this.ready.shift();
    if (!w || !r) {
      if (r) this.ready.unshift(r);
      return;
    }
    this.waiting = null;
    w.resolve(r);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiting;
    this.waiting = null;
    if (w && this.ready.length === 0) w.reject(this.failure);
    else this.wake();
  }
}
