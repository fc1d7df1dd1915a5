/**
 * Integration-test helpers: a real PetrelServer started in this process on
 * 127.0.0.1 port 0 (DESIGN.md "Testing": loopback only) with a temp data_dir
 * and captured JSON log lines, and a small raw SMTP client that reads
 * replies by RFC 5321 §4.2 grammar (multi-line replies joined, any chunking).
 *
 *   const ts = await startServer({ trusted: false, limits: { maxErrors: 3 } });
 *   const c = await SmtpTestClient.connect(ts.port);
 *   expect((await c.nextReply())?.code).toBe(220);
 *   await ts.stop();
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplyReader, type WireReply } from '../../spec/dialog/format';
import { defaultConfig, type Config } from '../../src/config';
import { createLogger, type LogLevel } from '../../src/observe/log';
import { parseCidr, type Cidr } from '../../src/policy/cidr';
import { PetrelServer } from '../../src/server/server';
import { makeTestCert } from './certs';

export type { WireReply } from '../../spec/dialog/format';

export interface TestServerOptions {
  /** Greeting/EHLO/Received name. Default petrel.test. */
  hostname?: string;
  /** true (default, like the shipped defaults): 127.0.0.0/8 and ::1 may relay; false: nobody; or a CIDR list. */
  trusted?: boolean | readonly string[];
  /** Default: localhost. */
  localDomains?: readonly string[];
  relayDomains?: readonly string[];
  limits?: Partial<Pick<Config, 'maxMessageSize' | 'maxRecipients' | 'maxErrors' | 'maxConnections' | 'maxConnectionsPerIp' | 'idleTimeout'>>;
  /** STARTTLS certificate: true makes a throw-away self-signed one (certs.ts), or give PEM file paths. */
  tls?: boolean | { cert: string; key: string };
  /** Also listen for implicit TLS (port-465 style, RFC 8314) on 127.0.0.1:0; implies tls: true if unset. */
  smtps?: boolean;
  /** Reuse this data_dir (e.g. restart over an existing queue); it is then never removed. Default: a new temp dir. */
  dataDir?: string;
  /** Default debug, so tests see every line. */
  logLevel?: LogLevel;
  /** Default true (the real durability path). */
  queueFsync?: boolean;
  /** Last word: Config fields spread over everything above, or a function of the config built so far. */
  config?: Partial<Config> | ((built: Config) => Config);
}

/** One parsed log line. */
export type LogRecord = { ts: string; level: string; event: string } & Record<string, unknown>;

export interface TestServer {
  /** The plain SMTP listener's port. */
  readonly port: number;
  /** The implicit-TLS listener's port, when smtps was asked for. */
  readonly smtpsPort: number | null;
  readonly server: PetrelServer;
  readonly config: Config;
  readonly dataDir: string;
  /** Certificate files, when TLS is configured (clients that verify use cert as their CA). */
  readonly cert: { cert: string; key: string } | null;
  /** Every JSON log line, in order, as written. */
  readonly logs: string[];
  /** The log lines parsed; only those of `event` when given. */
  events(event?: string): LogRecord[];
  /** Graceful stop (SIGTERM path), then removes the temp data_dir unless it was given or keepDataDir. */
  stop(opts?: { graceMs?: number; keepDataDir?: boolean }): Promise<void>;
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

export async function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'petrel-server-'));
  const cert = certificate(opts, dataDir);
  const config = buildConfig(opts, dataDir, cert);
  const logs: string[] = [];
  const log = createLogger({ level: opts.logLevel ?? 'debug', write: (line) => logs.push(line) });
  let server: PetrelServer;
  try {
    // Receiving-side tests: accepted mail stays in the queue (no delivery attempts, nothing leaves loopback).
    server = await PetrelServer.start(config, log, { delivery: false });
  } catch (err) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const portOf = (kind: 'smtp' | 'smtps') => server.listening.find((l) => l.kind === kind)?.address.port ?? null;
  const port = portOf('smtp');
  if (port === null) throw new Error('the test server has no plain SMTP listener');
  return {
    port,
    smtpsPort: portOf('smtps'),
    server,
    config,
    dataDir,
    cert,
    logs,
    events: (event) => logs.map((l) => JSON.parse(l) as LogRecord).filter((r) => event === undefined || r.event === event),
    stop: async ({ graceMs = 5_000, keepDataDir = false } = {}) => {
      await server.stop(graceMs);
      if (ownDir && !keepDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function certificate(opts: TestServerOptions, dataDir: string): { cert: string; key: string } | null {
  const tls = opts.tls ?? (opts.smtps ? true : false);
  if (tls === false) return null;
  if (tls !== true) return tls;
  const dir = join(dataDir, 'test-cert');
  mkdirSync(dir, { recursive: true });
  return makeTestCert(dir);
}

function buildConfig(opts: TestServerOptions, dataDir: string, cert: { cert: string; key: string } | null): Config {
  const base = defaultConfig(dataDir);
  const built: Config = {
    ...base,
    ...definedOnly(opts.limits ?? {}),
    hostname: opts.hostname ?? 'petrel.test',
    dataDir,
    usersFile: join(dataDir, 'users'),
    listen: [{ host: '127.0.0.1', port: 0 }],
    listenSmtps: opts.smtps ? [{ host: '127.0.0.1', port: 0 }] : [],
    tlsCert: cert?.cert ?? null,
    tlsKey: cert?.key ?? null,
    localDomains: [...(opts.localDomains ?? base.localDomains)],
    // Every local part of every local domain exists (the in-memory dialogue runner checks no users either);
    // tests of recipient verification set their own catchAll.
    catchAll: (opts.localDomains ?? base.localDomains).map((domain) => ({ domain, user: 'postmaster' })),
    relayDomains: [...(opts.relayDomains ?? base.relayDomains)],
    trustedNetworks: cidrs(opts.trusted === undefined || opts.trusted === true ? LOOPBACK : opts.trusted === false ? [] : opts.trusted),
    logLevel: opts.logLevel ?? 'debug',
    queueFsync: opts.queueFsync ?? true,
    // SPF/DKIM/DMARC checks query DNS: tests of them turn them on with dns_servers pointing at a private dnsmasq.
    authChecks: false,
  };
  if (typeof opts.config === 'function') return opts.config(built);
  return { ...built, ...opts.config };
}

/** Drops keys whose value is undefined, so `{ maxErrors: undefined }` keeps the default. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function cidrs(list: readonly string[]): Cidr[] {
  return list.map((s) => {
    const c = parseCidr(s);
    if (!c) throw new Error(`bad CIDR in test options: ${s}`);
    return c;
  });
}

/** How long a reply may take before the client gives up: a guard against a hung server, not a timing check. */
const HANG_GUARD_MS = 10_000;

/**
 * A raw SMTP client over one TCP connection: writes bytes as given (no CRLF added
 * by write()), hands out complete replies in order, and reports the server's close
 * as a null reply once every reply before it was read.
 */
export class SmtpTestClient {
  private readonly reader = new ReplyReader();
  private readonly replies: WireReply[] = [];
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    // A reset after the server closed is how some closes look; the dialogue's expectations decide.
    socket.on('error', () => this.onEnd());
  }

  static connect(port: number, host = '127.0.0.1'): Promise<SmtpTestClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new SmtpTestClient(socket));
      });
    });
  }

  /** Sends bytes in one write; resolves once handed to the kernel (or at once if the connection is gone). */
  write(data: Buffer | string): Promise<void> {
    if (this.ended || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.socket.write(data, () => resolve()));
  }

  /** Sends one command line (CRLF added) and returns its reply. */
  async command(line: string): Promise<WireReply | null> {
    await this.write(`${line}\r\n`);
    return this.nextReply();
  }

  /** The next complete reply; null once the server closed and every reply before the close was read. */
  async nextReply(): Promise<WireReply | null> {
    for (;;) {
      if (this.failure) throw this.failure;
      const r = this.replies.shift();
      if (r) return r;
      if (this.ended) {
        if (this.reader.rest !== '') throw new Error(`server closed in the middle of a reply: ${JSON.stringify(this.reader.rest)}`);
        return null;
      }
      await this.waitForInput();
    }
  }

  get closed(): boolean {
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }

  private waitForInput(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply from the server within ${HANG_GUARD_MS} ms (is it waiting for input?)`)), HANG_GUARD_MS);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private onData(chunk: Buffer): void {
    try {
      this.replies.push(...this.reader.push(chunk));
    } catch (err) {
      this.failure = err as Error;
    }
    this.notify();
  }

  private onEnd(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
