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
import type { QueuedMessage } from '../queue/queue';
import { isValidId } from '../queue/records';
import { assertNever } from '../smtp/assert-never';

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
}

/** A request that changes the queue (and that the CLI sends). */
export type OpRequest = { op: 'flush'; id?: string } | { op: 'hold' | 'release' | 'delete'; id: string };
export type ControlRequest = { op: 'list' } | OpRequest;

export type ControlResponse =
  | { ok: true; flushed?: number; messages?: MessageJson[] }
  | { ok: false; error: string };

export const NO_SUCH_MESSAGE = 'no such message';

export interface ControlOptions {
  dataDir: string;
  queue: ControlQueue;
  log: Logger;
  /** Called after every successful flush, to wake the delivery scheduler. */
  onFlush?: () => void;
  /** Overrides of the bounds above (tests). */
  maxConnections?: number;
  idleMs?: number;
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
    new LineReader(socket, (text) => this.track(this.answer(socket, text)));
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private async answer(socket: Socket, text: string): Promise<void> {
    // once stopping, the queue may be closing under us
    const parsed = this.stopping ? 'server is stopping' : parseRequest(text);
    const res = typeof parsed === 'string' ? { ok: false as const, error: parsed } : await this.perform(parsed);
    if (socket.writable) socket.write(line(res));
  }

  private async perform(req: ControlRequest): Promise<ControlResponse> {
    const { queue, log, onFlush } = this.opts;
    try {
      const res = await performRequest(queue, req);
      if (res.ok && req.op !== 'list') log.info('control', { op: req.op, id: req.id, flushed: res.flushed }); // undefined fields are left out
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
 * waits in its own socket buffer instead of in our memory.
 */
class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private busy = false;
  private ended = false;

  constructor(
    private readonly socket: Socket,
    private readonly handle: (line: string) => Promise<void>,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
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

  /** The next complete line, or null; an over-long one is answered once and the connection closed. */
  private next(): string | null {
    const nl = this.buf.indexOf(0x0a);
    if (nl < 0 ? this.buf.length > MAX_REQUEST_LINE : nl > MAX_REQUEST_LINE) {
      // no request boundary we could trust follows: answer once and hang up
      this.buf = Buffer.alloc(0);
      this.socket.end(line({ ok: false, error: `request line longer than ${MAX_REQUEST_LINE} bytes` }));
      return null;
    }
    if (nl < 0) return null;
    const text = this.buf.subarray(0, nl).toString('utf8');
    this.buf = this.buf.subarray(nl + 1);
    return text;
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
    default:
      return assertNever(req);
  }
}

function notFound(): ControlResponse {
  return { ok: false, error: NO_SUCH_MESSAGE };
}

/** A request object, or the error text for the client. Never throws. */
export function parseRequest(text: string): ControlRequest | string {
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
