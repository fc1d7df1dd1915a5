/**
 * Receiving SMTP peers for the delivery tests, each bound to its own loopback
 * address (127.0.0.2, 127.0.0.3 …) at a shared port, standing for MX hosts.
 *
 * - startSmtpSink: Postfix's real smtp-sink (Debian package postfix), a peer
 *   nobody here wrote. Its -Q/-r/-f options make it answer 421, 4xx or 5xx to
 *   chosen commands; -d dumps each message to a file, read back by messages().
 * - startPeer: a small Node peer for what smtp-sink cannot do: STARTTLS with
 *   our certificate, AUTH PLAIN checked against a user, scripted per-RCPT and
 *   end-of-data replies, a silent greeting, and counting connections.
 * Stopped by their own handles (smtp-sink by its pid), never by name.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket, createSecureContext } from 'node:tls';
import { listening, stopChild } from './child';

export const SMTP_SINK = '/usr/sbin/smtp-sink';

export interface SinkMessage {
  readonly mailArgs: string;
  readonly rcptArgs: readonly string[];
  /** The message as received (headers and body), smtp-sink's own headers removed. */
  readonly text: string;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  messages(): SinkMessage[];
  stop(): Promise<void>;
}

/** Fails with how to install it: a missing peer must fail the tests, not skip them. */
export function smtpSinkBinary(): string {
  if (existsSync(SMTP_SINK)) return SMTP_SINK;
  throw new Error('smtp-sink not found: install the Debian package postfix (apt-get install -y postfix); the delivery tests use it as a real receiver');
}

/**
 * smtp-sink on host:port; `args` such as ['-Q', 'CONNECT'] (421 greeting) or ['-f', '.'] (5xx after the data).
 * dump false: messages are not written to files (benchmarks), and messages() is always empty.
 */
export async function startSmtpSink(host: string, port: number, args: readonly string[] = [], opts: { dump?: boolean } = {}): Promise<SmtpSink> {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-sink-'));
  const uid = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  const dump = opts.dump === false ? [] : ['-d', `${dir}/%M.`];
  const child = spawn(smtpSinkBinary(), [...uid, '-h', `sink-${host}`, ...dump, ...args, `${host}:${port}`, '64'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (b: Buffer) => void (log += b.toString()));
  child.stderr?.on('data', (b: Buffer) => void (log += b.toString()));
  if (!(await listening(host, port, child))) {
    await stopChild(child);
    throw new Error(`smtp-sink did not listen on ${host}:${port}: ${log}`);
  }
  return {
    host,
    port,
    messages: () => readDumps(dir),
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readDumps(dir: string): SinkMessage[] {
  return readdirSync(dir)
    .sort()
    .map((f) => parseDump(readFileSync(join(dir, f), 'latin1')));
}

/** The dump: smtp-sink's X- headers and a three-line Received, then the message, then an empty line. */
function parseDump(dump: string): SinkMessage {
  const lines = dump.split('\n');
  let mailArgs = '';
  const rcptArgs: string[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (l.startsWith('X-Mail-Args: ')) mailArgs = l.slice(13);
    else if (l.startsWith('X-Rcpt-Args: ')) rcptArgs.push(l.slice(13));
    else if (l.startsWith('Received: ')) break;
  }
  i += 1;
  while (i < lines.length && /^\s/.test(lines[i] ?? '')) i++; // the Received continuation lines
  return { mailArgs, rcptArgs, text: lines.slice(i).join('\n') };
}


// ---- the Node peer ----

export interface PeerMessage {
  readonly from: string;
  readonly to: readonly string[];
  readonly data: Buffer;
  readonly tls: boolean;
  readonly authUser: string | null;
  /** The TLS server name the client sent (SNI), or null. */
  readonly sni: string | null;
  /** Which connection (1-based) carried it. */
  readonly connection: number;
}

export interface PeerOptions {
  /** null: accept and never say a word (the timeout case). */
  readonly greeting?: string | null;
  /** Offer STARTTLS with this certificate. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Offer STARTTLS, answer 220, then speak no TLS at all (a broken TLS stack: the handshake fails). */
  readonly brokenTls?: boolean;
  /** Offer AUTH PLAIN (only after TLS) and require it before MAIL. */
  readonly auth?: { readonly user: string; readonly password: string };
  /** The reply to RCPT TO for this address; default 250. */
  readonly rcpt?: (address: string) => string;
  /** The reply after the data; default 250. */
  readonly data?: (m: PeerMessage) => string;
}

export interface Peer {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  readonly messages: PeerMessage[];
  /** Every command line received, in order. */
  readonly commands: string[];
  stop(): Promise<void>;
}

export async function startPeer(host: string, port: number, opts: PeerOptions = {}): Promise<Peer> {
  let count = 0;
  const messages: PeerMessage[] = [];
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    count += 1;
    s.setNoDelay(true); // replies are written line by line: Nagle + delayed ACK would add 40 ms per exchange
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    new PeerSession(s, count, opts, messages, commands);
  });
  await new Promise<void>((res, rej) => server.once('error', rej).listen(port, host, () => res()));
  const bound = server.address();
  return {
    host,
    // port 0: the one the kernel picked
    port: typeof bound === 'object' && bound ? bound.port : port,
    connections: () => count,
    messages,
    commands,
    stop: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

class PeerSession {
  private buf = '';
  private inData = false;
  private data: Buffer[] = [];
  private from = '';
  private to: string[] = [];
  private tls = false;
  private authUser: string | null = null;
  private sni: string | null = null;
  private sock: Socket;

  constructor(
    sock: Socket,
    private readonly n: number,
    private readonly opts: PeerOptions,
    private readonly messages: PeerMessage[],
    private readonly commands: string[],
  ) {
    this.sock = sock;
    sock.on('data', this.onData);
    if (opts.greeting !== null) this.say(opts.greeting ?? '220 peer.test ESMTP test peer');
  }

  private readonly onData = (b: Buffer) => {
    this.buf += b.toString('latin1');
    for (let i = this.buf.indexOf('\r\n'); i >= 0; i = this.buf.indexOf('\r\n')) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      if (this.inData) this.dataLine(line);
      else if (this.command(line) === 'tls') return;
    }
  };

  private say(line: string): void {
    if (!this.sock.destroyed) this.sock.write(`${line}\r\n`);
  }

  private dataLine(line: string): void {
    if (line === '.') {
      this.inData = false;
      const m: PeerMessage = { from: this.from, to: this.to, data: Buffer.concat(this.data), tls: this.tls, authUser: this.authUser, sni: this.sni, connection: this.n };
      const r = this.opts.data?.(m) ?? '250 2.0.0 Ok: queued';
      if (r.startsWith('2')) this.messages.push(m);
      this.say(r);
      return;
    }
    this.data.push(Buffer.from(`${line.startsWith('.') ? line.slice(1) : line}\r\n`, 'latin1'));
  }

  private command(line: string): 'tls' | void {
    this.commands.push(line);
    const verb = line.split(' ')[0]?.toUpperCase() ?? '';
    const arg = /<([^>]*)>/.exec(line)?.[1] ?? '';
    switch (verb) {
      case 'EHLO': return this.ehlo();
      case 'HELO': return this.say('250 peer.test');
      case 'STARTTLS': return this.startTls();
      case 'AUTH': return this.auth(line);
      case 'MAIL':
        if (this.opts.auth && !this.authUser) return this.say('530 5.7.0 Authentication required');
        this.from = arg;
        this.to = [];
        return this.say('250 2.1.0 Ok');
      case 'RCPT': {
        const r = this.opts.rcpt?.(arg) ?? '250 2.1.5 Ok';
        if (r.startsWith('2')) this.to.push(arg);
        return this.say(r);
      }
      case 'DATA':
        if (this.to.length === 0) return this.say('554 5.5.1 No valid recipients');
        this.inData = true;
        this.data = [];
        return this.say('354 End data with <CR><LF>.<CR><LF>');
      case 'RSET': this.to = []; return this.say('250 2.0.0 Ok');
      case 'NOOP': return this.say('250 2.0.0 Ok');
      case 'QUIT': this.say('221 2.0.0 Bye'); this.sock.end(); return;
      default: return this.say('502 5.5.2 Error: command not recognized');
    }
  }

  private ehlo(): void {
    const ext = ['PIPELINING', 'SIZE 10240000', '8BITMIME', 'ENHANCEDSTATUSCODES'];
    if ((this.opts.tls || this.opts.brokenTls) && !this.tls) ext.push('STARTTLS');
    if (this.opts.auth && this.tls) ext.push('AUTH PLAIN LOGIN');
    const lines = ['peer.test', ...ext];
    lines.forEach((l, i) => this.say(`250${i === lines.length - 1 ? ' ' : '-'}${l}`));
  }

  private startTls(): 'tls' | void {
    if (this.opts.brokenTls) {
      this.say('220 2.0.0 Ready to start TLS');
      this.say('this is not a TLS record');
      this.sock.end();
      return 'tls';
    }
    if (!this.opts.tls || this.tls) return this.say('502 5.5.1 STARTTLS not available');
    this.say('220 2.0.0 Ready to start TLS');
    const raw = this.sock;
    raw.removeListener('data', this.onData);
    this.buf = '';
    const ctx = createSecureContext({ cert: readFileSync(this.opts.tls.cert), key: readFileSync(this.opts.tls.key) });
    const t = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    t.on('error', () => undefined);
    t.on('secure', () => {
      this.tls = true;
      this.sni = typeof t.servername === 'string' ? t.servername : null;
      this.sock = t;
      t.on('data', this.onData);
    });
    return 'tls';
  }

  private auth(line: string): void {
    const [, mech = '', initial = ''] = line.split(' ');
    if (!this.opts.auth || !this.tls || mech.toUpperCase() !== 'PLAIN') return this.say('504 5.5.4 Unrecognized authentication type');
    const [, user, password] = Buffer.from(initial, 'base64').toString('utf8').split('\0');
    if (user === this.opts.auth.user && password === this.opts.auth.password) {
      this.authUser = user;
      return this.say('235 2.7.0 Authentication successful');
    }
    this.say('535 5.7.8 Authentication credentials invalid');
  }
}
