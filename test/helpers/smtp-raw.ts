/**
 * A deliberately dumb SMTP client over node:net / node:tls for the
 * integration tests: it writes exactly the bytes a test gives it (so a test
 * can pipeline or inject, RFC 2920 / CVE-2011-0411) and parses replies per
 * RFC 5321 §4.2 (multi-line "250-" … "250 "). It never interprets them.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface SmtpReply {
  readonly code: number;
  /** Text of each line after "NNN-" / "NNN ". */
  readonly lines: string[];
  /** All lines joined with "\n", with their codes: for messages and regexes. */
  readonly text: string;
}

export class RawSmtp {
  private buf = '';
  private lineBuf: string[] = [];
  private readonly replies: SmtpReply[] = [];
  private waiter: (() => void) | null = null;
  private isClosed = false;
  /** Resolves when the socket is closed (by either side). */
  closed!: Promise<void>;
  private readonly onData = (s: string): void => this.feed(s);

  private constructor(private sock: Socket) {
    this.attach(sock);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    return new Promise((res, rej) => {
      const s = netConnect({ port, host });
      s.once('error', rej);
      s.once('connect', () => {
        s.removeListener('error', rej);
        res(new RawSmtp(s));
      });
    });
  }

  /** Implicit TLS (RFC 8314); the test certificate is self-signed, so no verification. */
  static connectTls(port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    return new Promise((res, rej) => {
      const s = tlsConnect({ port, host, rejectUnauthorized: false });
      s.once('error', rej);
      s.once('secureConnect', () => {
        s.removeListener('error', rej);
        res(new RawSmtp(s));
      });
    });
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  get socket(): Socket {
    return this.sock;
  }

  send(text: string | Buffer): void {
    if (!this.sock.destroyed) this.sock.write(text);
  }

  /** The next complete reply; null if the connection closes first. */
  async reply(timeoutMs = 10_000): Promise<SmtpReply | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0 && !this.isClosed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SMTP reply within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buf)})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = null;
    }
    return this.replies.shift() ?? null;
  }

  /** Sends one command line and returns its reply (throws if the connection closed instead). */
  async command(line: string, timeoutMs?: number): Promise<SmtpReply> {
    this.send(`${line}\r\n`);
    const r = await this.reply(timeoutMs);
    if (!r) throw new Error(`connection closed instead of a reply to ${line}`);
    return r;
  }

  /** Replies already received and not read, plus any partial line (for "nothing more was sent" checks). */
  pending(): { replies: SmtpReply[]; partial: string } {
    return { replies: [...this.replies], partial: this.buf };
  }

  /**
   * RFC 3207 upgrade after the client has read the 220: hands the plain
   * socket to a TLS client. Whatever plaintext arrived after the 220 is
   * returned, since a correct server sends nothing there.
   */
  async startTls(): Promise<{ leftover: string }> {
    const plain = this.sock;
    const leftover = this.buf + this.replies.map((r) => r.text).join('\n');
    this.buf = '';
    this.replies.length = 0;
    plain.removeListener('data', this.onData);
    const secure: TLSSocket = await new Promise((res, rej) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: 'localhost' });
      s.once('error', rej);
      s.once('secureConnect', () => {
        s.removeListener('error', rej);
        res(s);
      });
    });
    this.sock = secure;
    this.attach(secure);
    return { leftover };
  }

  /** Sends QUIT if still open and closes; never throws. */
  async quit(): Promise<void> {
    if (this.isClosed) return;
    this.send('QUIT\r\n');
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    this.destroy();
  }

  destroy(): void {
    this.sock.destroy();
  }

  private attach(s: Socket): void {
    s.setEncoding('utf8');
    s.on('data', this.onData);
    s.on('error', () => {});
    this.closed = new Promise((r) =>
      s.once('close', () => {
        this.isClosed = true;
        this.waiter?.();
        r();
      }),
    );
  }

  private feed(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\r\n')) >= 0) {
      this.lineBuf.push(this.buf.slice(0, nl));
      this.buf = this.buf.slice(nl + 2);
      const last = this.lineBuf[this.lineBuf.length - 1] ?? '';
      if (/^\d{3}( |$)/.test(last)) this.finishReply();
    }
    this.waiter?.();
  }

  private finishReply(): void {
    const lines = this.lineBuf;
    this.lineBuf = [];
    const code = Number(lines[lines.length - 1]?.slice(0, 3));
    this.replies.push({ code, lines: lines.map((l) => l.slice(4)), text: lines.join('\n') });
  }
}

/** "250 2.0.0 Ok: queued as ID" → ID, else null. */
export function queuedId(r: SmtpReply | null): string | null {
  if (!r || r.code !== 250) return null;
  return /queued as (\S+)/.exec(r.text)?.[1] ?? null;
}

/** A whole DATA body with dot-stuffing (RFC 5321 §4.5.2) and the final "." line. */
export function dataBlock(message: string): string {
  const crlf = message.replace(/\r?\n/g, '\r\n');
  const body = crlf.endsWith('\r\n') ? crlf : `${crlf}\r\n`;
  return `${body.replace(/^\./gm, '..')}.\r\n`;
}
