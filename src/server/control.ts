/**
 * The control socket: how `petrel queue hold|release|delete|flush` reach a
 * running server (DESIGN.md "Interfaces": the queue commands reach a running
 * server through a control socket under data_dir). The server owns the
 * queue's LOCK, so an operator action must go through the process that
 * holds it; a second writer would corrupt the log.
 *
 * Wire format: one JSON object per line each way (newline-delimited JSON),
 *   {"op":"hold","id":"…"}  → {"ok":true} | {"ok":false,"error":"no such message"}
 *   {"op":"flush"}          → {"ok":true,"flushed":N}   (every message with a deferred recipient)
 *   {"op":"list"}           → {"ok":true,"messages":[…]} (the `queue list --json` shape)
 *   {"op":"submit","sender":"a@b","recipients":["c@d"],"body":"<base64>"}
 *                           → {"ok":true,"id":"…"} once the message is durable in the queue
 *     (`petrel sendmail`). The body is the message with CRLF line ends, at
 *     most max_message_size bytes; a submit line may be that long (in base64)
 *     only if it starts with exactly `{"op":"submit"`, so every other request
 *     keeps the MAX_REQUEST_LINE bound.
 * Requests on one connection are answered in order, one at a time.
 *
 * Access control is the file system: a Unix domain socket of mode 0600 in
 * data_dir, so only the server's user (and root) may connect; there is no
 * network listener. Everything a client can make us hold is bounded: the
 * request line, the number of control connections, and their idle time.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../observe/log';
import type { Envelope, QueuedMessage } from '../queue/queue';
import { isValidId } from '../queue/records';
import { assertNever } from '../smtp/assert-never';
import { LIMITS } from '../smtp/limits';
import { parsePath } from '../smtp/path';

/** A request line longer than this is refused (the longest legitimate one is ~300 bytes). */
export const MAX_REQUEST_LINE = 4096;
/** Control connections served at once; more are answered with an error and closed. */
export const MAX_CONTROL_CONNECTIONS = 16;
/** A control connection silent for this long is closed. */
export const CONTROL_IDLE_MS = 10_000;
/** How long stop() lets clients read their last answer before cutting them off. */
const STOP_GRACE_MS = 1000;
/** sockaddr_un.sun_path is 108 bytes on Linux (104 on the BSDs), NUL included. */
const MAX_SOCKET_PATH = 103;

export type ControlOp = 'hold' | 'release' | 'delete' | 'flush';

/** What the control server needs from the queue (class Queue implements it). */
export interface ControlQueue {
  /** Durable once resolved; false: no such message. */
  operate(id: string, op: ControlOp): Promise<boolean>;
  list(): QueuedMessage[];
  /** Enqueues a locally made message; resolves with its id once durable. */
  submit?(envelope: Envelope, body: Buffer): Promise<string>;
}

/** A request that changes the queue (and that the CLI sends). */
export type OpRequest = { op: 'flush'; id?: string } | { op: 'hold' | 'release' | 'delete'; id: string };
/** `petrel sendmail`: key order matters on the wire (op first, see above); body is base64. */
export interface SubmitRequest {
  op: 'submit';
  sender: string;
  recipients: string[];
  body: string;
}
export type ControlRequest = { op: 'list' } | OpRequest | SubmitRequest;

export type ControlResponse =
  | { ok: true; flushed?: number; messages?: MessageJson[]; id?: string }
  | { ok: false; error: string };

/** How a submit line starts; only such a line may exceed MAX_REQUEST_LINE. */
export const SUBMIT_PREFIX = '{"op":"submit"';
/** Recipients one submission may carry (Postfix's sendmail has no limit; this only stops a runaway). */
export const MAX_SUBMIT_RECIPIENTS = 1000;
/** Errors about the submitted message itself, not about the server: sendmail exits EX_DATAERR / EX_NOUSER. */
export const BAD_MESSAGE = 'bad message';
export const BAD_RECIPIENT = 'bad recipient';

export const NO_SUCH_MESSAGE = 'no such message';

export interface ControlOptions {
  dataDir: string;
  queue: ControlQueue;
  log: Logger;
  /** Called after every successful flush, to wake the delivery scheduler. */
  onFlush?: () => void;
  /** Largest message a submit may carry (config max_message_size; default LIMITS.maxMessageSize). */
  maxMessageSize?: number;
  /** Overrides of the bounds above (tests). */
  maxConnections?: number;
  idleMs?: number;
}

/** The longest submit line for a message bound: the base64 body plus room for the envelope. */
export function maxSubmitLine(maxMessageSize: number): number {
  return Math.ceil(maxMessageSize / 3) * 4 + 64 * 1024 + MAX_SUBMIT_RECIPIENTS * 300;
}

export function controlSocketPath(dataDir: string): string {
  return join(dataDir, 'control.sock');
}

export class ControlServer {
  private readonly sockets = new Set<Socket>();
  /** Connections being served (sockets also holds the ones refused and closing). */
  private served = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private stopping: Promise<void> | null = null;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly opts: ControlOptions,
  ) {}

  /** Replaces a stale socket left by a crash, listens with mode 0600; rejects if another server answers on it. */
  static async start(opts: ControlOptions): Promise<ControlServer> {
    const file = controlSocketPath(opts.dataDir);
    if (Buffer.byteLength(file) > MAX_SOCKET_PATH) {
      throw new Error(`control socket path too long for a Unix socket (${Buffer.byteLength(file)} > ${MAX_SOCKET_PATH} bytes): ${file}`);
    }
    await removeStale(file);
    const server = createServer({ allowHalfOpen: true }); // a client may shut down its side once it has sent
    const control = new ControlServer(server, file, opts);
    server.on('connection', (s) => control.admit(s));
    await listenPrivate(server, file);
    server.on('error', (err) => opts.log.error('control-error', { error: err }));
    opts.log.info('control-listening', { path: file });
    return control;
  }

  /** Stops accepting, lets requests in progress finish (their queue writes complete), removes the socket. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    await Promise.allSettled([...this.inFlight]); // an operation the queue has begun is finished and answered
    const gone = [...this.sockets].map((s) => new Promise((r) => s.once('close', r).end()));
    await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    for (const s of this.sockets) s.destroy();
    await closed;
    await unlink(this.path).catch(() => undefined); // libuv usually unlinks it already
  }

  private admit(socket: Socket): void {
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.setTimeout(this.opts.idleMs ?? CONTROL_IDLE_MS, () => socket.destroy());
    const max = this.opts.maxConnections ?? MAX_CONTROL_CONNECTIONS;
    if (this.stopping || this.served >= max) {
      // read and drop the rest: only reading sees the client's EOF, which lets the socket close
      socket.resume().end(line({ ok: false, error: this.stopping ? 'server is stopping' : 'too many control connections' }));
      return;
    }
    this.served++;
    socket.once('close', () => this.served--);
    const maxSize = this.opts.maxMessageSize ?? LIMITS.maxMessageSize;
    new LineReader(socket, maxSubmitLine(maxSize), (text) => this.track(this.answer(socket, text)));
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private async answer(socket: Socket, text: string): Promise<void> {
    // once stopping, the queue may be closing under us
    const parsed = this.stopping ? 'server is stopping' : parseRequest(text, this.opts.maxMessageSize);
    const res = typeof parsed === 'string' ? { ok: false as const, error: parsed } : await this.perform(parsed);
    if (socket.writable) socket.write(line(res));
  }

  private async perform(req: ControlRequest): Promise<ControlResponse> {
    const { queue, log, onFlush } = this.opts;
    try {
      const res = await performRequest(queue, req);
      if (res.ok && req.op === 'submit') log.info('queued', { id: res.id, from: req.sender, to: req.recipients, client: 'sendmail' });
      else if (res.ok && req.op !== 'list' && req.op !== 'submit') log.info('control', { op: req.op, id: req.id, flushed: res.flushed }); // undefined fields are left out
      if (res.ok && req.op === 'flush') onFlush?.();
      return res;
    } catch (err) {
      // a poisoned or closed queue: the operator hears why, the server keeps running
      log.error('control-failed', { op: req.op, error: err });
      return { ok: false, error: `queue error: ${err instanceof Error ? err.message : String(err)}` };
    }
  }
}

/**
 * Newline framing with the length bound, one request at a time: the socket
 * is paused while a request runs, so a client that pipelines requests
 * waits in its own socket buffer instead of in our memory. Chunks are kept
 * in a list and joined once per line, so a long submit line costs linear time.
 */
class LineReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private hasNewline = false;
  private busy = false;
  private ended = false;

  constructor(
    private readonly socket: Socket,
    private readonly maxSubmit: number,
    private readonly handle: (line: string) => Promise<void>,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      this.hasNewline ||= chunk.includes(0x0a);
      void this.drain();
    });
    socket.on('end', () => {
      this.ended = true;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let text = this.next(); text !== null && !this.socket.destroyed; text = this.next()) {
        this.socket.pause();
        await this.handle(text);
        this.socket.resume();
      }
    } finally {
      this.busy = false;
    }
    if (this.ended && this.socket.writable) this.socket.end(); // a partial last line without "\n" is dropped
  }

  /** The bound for the line being read: a submit line may carry a whole message. */
  private limit(): number {
    const first = this.chunks[0];
    const head = first && first.length >= SUBMIT_PREFIX.length ? first : Buffer.concat(this.chunks.slice(0, 16));
    return head.subarray(0, SUBMIT_PREFIX.length).toString('latin1') === SUBMIT_PREFIX ? Math.max(this.maxSubmit, MAX_REQUEST_LINE) : MAX_REQUEST_LINE;
  }

  /** The next complete line, or null; an over-long one is answered once and the connection closed. */
  private next(): string | null {
    const limit = this.limit();
    if (!this.hasNewline) {
      if (this.size > limit) this.refuse(limit);
      return null;
    }
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const nl = all.indexOf(0x0a);
    if (nl > limit) {
      this.refuse(limit);
      return null;
    }
    const rest = all.subarray(nl + 1);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    this.hasNewline = rest.includes(0x0a);
    return all.subarray(0, nl).toString('utf8');
  }

  /** No request boundary we could trust follows: answer once and hang up. */
  private refuse(limit: number): void {
    this.chunks = [];
    this.size = 0;
    this.hasNewline = false;
    this.socket.end(line({ ok: false, error: `request line longer than ${limit} bytes` }));
  }
}

/**
 * One request against a queue: shared by the server and by the CLI's
 * fallback when no server runs, so both give the same answers.
 * `flush` without an id is postqueue -f: every message with a deferred recipient.
 */
export async function performRequest(queue: ControlQueue, req: ControlRequest): Promise<ControlResponse> {
  switch (req.op) {
    case 'list':
      return { ok: true, messages: queue.list().map(messageJson) };
    case 'flush': {
      if (req.id !== undefined) return (await queue.operate(req.id, 'flush')) ? { ok: true, flushed: 1 } : notFound();
      let flushed = 0;
      for (const m of queue.list()) {
        if (m.recipients.some((r) => r.state === 'deferred') && (await queue.operate(m.id, 'flush'))) flushed++;
      }
      return { ok: true, flushed };
    }
    case 'hold':
    case 'release':
    case 'delete':
      return (await queue.operate(req.id, req.op)) ? { ok: true } : notFound();
    case 'submit': {
      if (!queue.submit) return { ok: false, error: 'this queue takes no submissions' };
      const body = Buffer.from(req.body, 'base64');
      return { ok: true, id: await queue.submit(submitEnvelope(req, body), body) };
    }
    default:
      return assertNever(req);
  }
}

/**
 * The envelope of a locally submitted message, as a bounce's is made
 * (client 127.0.0.1): BODY=8BITMIME when the body has 8-bit bytes (RFC 6152),
 * SMTPUTF8 when an address is not ASCII (RFC 6531), so that delivery offers
 * the next hop what it needs.
 */
export function submitEnvelope(req: SubmitRequest, body: Buffer, now: number = Date.now()): Envelope {
  const utf8 = [req.sender, ...req.recipients].some((a) => /[^\x00-\x7f]/.test(a));
  const eightBit = /[^\x00-\x7f]/.test(body.toString('latin1'));
  return {
    sender: req.sender,
    recipients: [...req.recipients],
    params: eightBit ? { body: '8BITMIME', smtputf8: utf8 } : { smtputf8: utf8 },
    clientIp: '127.0.0.1',
    helo: 'localhost',
    receivedAt: now,
  };
}

/** A submit request's envelope and body, checked (by the server, and by sendmail before it opens the queue itself); the error text otherwise. */
export function parseSubmit(v: { sender?: unknown; recipients?: unknown; body?: unknown }, maxMessageSize: number): SubmitRequest | string {
  const { sender, recipients, body } = v;
  if (typeof sender !== 'string' || (sender !== '' && !isMailbox(sender))) return `${BAD_MESSAGE}: "sender" is not an address`;
  if (!Array.isArray(recipients) || recipients.length === 0) return `${BAD_RECIPIENT}: no recipients`;
  if (recipients.length > MAX_SUBMIT_RECIPIENTS) return `${BAD_RECIPIENT}: more than ${MAX_SUBMIT_RECIPIENTS} recipients`;
  const bad = recipients.find((r) => typeof r !== 'string' || !isMailbox(r));
  if (bad !== undefined) return `${BAD_RECIPIENT}: ${JSON.stringify(bad).slice(0, 300)}`;
  if (typeof body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) return `${BAD_MESSAGE}: "body" is not base64`;
  const size = (body.length / 4) * 3 - (body.endsWith('==') ? 2 : body.endsWith('=') ? 1 : 0);
  if (size > maxMessageSize) return `${BAD_MESSAGE}: larger than max_message_size (${maxMessageSize} bytes)`;
  // stored messages are CRLF-only: delivery and the DSN code rely on it
  if (/\r(?!\n)|(?<!\r)\n/.test(Buffer.from(body, 'base64').toString('latin1'))) return `${BAD_MESSAGE}: line ends must be CRLF`;
  return { op: 'submit', sender, recipients: recipients as string[], body };
}

/** An RFC 5321 Mailbox (UTF-8 allowed: SMTPUTF8 is then asked of the next hop). */
function isMailbox(address: string): boolean {
  return parsePath(`<${address}>`, { smtputf8: true, allowNull: false, allowBarePostmaster: false }).ok;
}

function notFound(): ControlResponse {
  return { ok: false, error: NO_SUCH_MESSAGE };
}

/** A request object, or the error text for the client. Never throws. */
export function parseRequest(text: string, maxMessageSize: number = LIMITS.maxMessageSize): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'malformed request: not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'malformed request: not a JSON object';
  const { op, id } = v as { op?: unknown; id?: unknown };
  if (id !== undefined && (typeof id !== 'string' || !isValidId(id))) return 'malformed request: "id" is not a queue id';
  switch (op) {
    case 'list':
      return { op };
    case 'flush':
      return id === undefined ? { op } : { op, id };
    case 'hold':
    case 'release':
    case 'delete':
      return id === undefined ? `malformed request: "${op}" needs an "id"` : { op, id };
    case 'submit':
      return parseSubmit(v as Record<string, unknown>, maxMessageSize);
    default:
      return `unknown op: ${JSON.stringify(op ?? null).slice(0, 40)}`;
  }
}

/** The `queue list --json` shape of DESIGN.md: snake_case, times ISO 8601 UTC or null. */
export interface MessageJson {
  id: string;
  sender: string;
  size: number;
  arrived: string;
  held: boolean;
  recipients: { address: string; state: string; attempts: number; next_attempt: string | null; last_reply: string | null }[];
}

export function messageJson(m: QueuedMessage): MessageJson {
  return {
    id: m.id,
    sender: m.sender,
    size: m.size,
    arrived: isoTime(m.arrived),
    held: m.held,
    recipients: m.recipients.map((r) => ({
      address: r.address,
      state: r.state,
      attempts: r.attempts,
      next_attempt: r.nextAttempt === null ? null : isoTime(r.nextAttempt),
      last_reply: r.lastReply,
    })),
  };
}

/** RFC 3339 / ISO 8601 in UTC to the second. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function line(res: ControlResponse): string {
  return `${JSON.stringify(res)}\n`;
}

/**
 * A socket file left by a server that crashed refuses connections: remove it.
 * One that accepts belongs to a live server (the queue LOCK should already
 * have stopped us); anything that is not a socket is not ours to delete.
 */
async function removeStale(file: string): Promise<void> {
  const st = await lstat(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${file} exists and is not a socket; remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false)); // ECONNREFUSED: nobody listens
  });
  if (live) throw new Error(`another server answers on ${file}`);
  await unlink(file);
}

/**
 * bind(2) creates the socket file with mode 0777 & ~umask. Were it chmod'ed
 * only after listen, a local user could connect in between (connect(2) checks
 * permission once, so that connection would outlive the chmod) and hold
 * the queue. So the umask is 0177 for the synchronous bind inside listen(),
 * and the chmod afterwards is a second guard (umask cannot be set in worker threads).
 */
function listenPrivate(server: Server, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const old = setUmask(0o177);
    try {
      server.listen({ path: file, backlog: 64 }, () => {
        server.removeListener('error', reject);
        chmod(file, 0o600).then(resolve, (e: unknown) => server.close(() => reject(e)));
      });
    } finally {
      if (old !== null) setUmask(old);
    }
  });
}

function setUmask(mask: number): number | null {
  try {
    return process.umask(mask);
  } catch {
    return null;
  }
}
