/**
 * The client side of the control socket (src/server/control.ts): sends one
 * newline-terminated JSON request to the running server and reads its one
 * JSON line back. Tells "no server is running" (no socket file, or a stale
 * one that refuses: the server died) apart from "a server may be running but
 * does not answer", because only in the first case may the caller open the
 * queue itself.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { Queue } from '../queue/queue';
import { controlSocketPath, performRequest, type ControlQueue, type ControlRequest, type ControlResponse } from '../server/control';

/** How long the CLI waits for the server's answer. */
export const CONTROL_CLIENT_TIMEOUT_MS = 15_000;
/** A `list` answer carries the whole queue; this only stops a runaway peer. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** no-server: nothing listens on the socket (ENOENT, ECONNREFUSED); unreachable: anything else. */
export type ControlFailure = 'no-server' | 'unreachable';

export class ControlUnavailable extends Error {
  constructor(
    readonly failure: ControlFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ControlUnavailable';
  }
}

/** Resolves with the server's answer; rejects with ControlUnavailable when there is none. */
export function controlRequest(dataDir: string, req: ControlRequest, timeoutMs = CONTROL_CLIENT_TIMEOUT_MS): Promise<ControlResponse> {
  const file = controlSocketPath(dataDir);
  return new Promise((resolve, reject) => {
    const socket = connect(file);
    const chunks: Buffer[] = [];
    let size = 0;
    let connected = false;
    let settled = false;
    const settle = (f: () => void): void => {
      socket.destroy();
      if (!settled) f();
      settled = true;
    };
    const fail = (failure: ControlFailure, why: string): void =>
      settle(() => reject(new ControlUnavailable(failure, `control socket ${file}: ${why}`)));
    socket.setTimeout(timeoutMs, () => fail('unreachable', `no answer within ${timeoutMs} ms`));
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(req)}\n`);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      const gone = !connected && (e.code === 'ENOENT' || e.code === 'ECONNREFUSED');
      fail(gone ? 'no-server' : 'unreachable', e.code ?? e.message);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (chunk.includes(0x0a)) finish();
      else if (size > MAX_RESPONSE_BYTES) fail('unreachable', 'answer too long');
    });
    socket.once('end', () => finish());
    const finish = (): void => {
      const all = Buffer.concat(chunks).toString('utf8');
      const nl = all.indexOf('\n');
      const res = nl < 0 ? null : parseResponse(all.slice(0, nl));
      if (res) settle(() => resolve(res));
      else fail('unreachable', nl < 0 ? 'closed without an answer' : 'malformed answer');
    };
  });
}

function parseResponse(text: string): ControlResponse | null {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || typeof (v as { ok?: unknown }).ok !== 'boolean') return null;
    const r = v as ControlResponse;
    return r.ok || typeof r.error === 'string' ? r : null;
  } catch {
    return null;
  }
}

export type Sent = { res: ControlResponse; direct: boolean } | { unavailable: string };

/**
 * Sends `req` to the running server; when none runs (no socket, or a stale
 * one that refuses), applies it to the queue directly under the LOCK, with
 * the server's own performRequest. Failing to get the LOCK means a server
 * holds the queue after all (starting, or its socket removed): never write
 * beside it. The same fallback as `petrel queue hold|release|...`.
 */
export async function requestOrDirect(dataDir: string, req: ControlRequest, direct: (queue: Queue) => ControlQueue | Promise<ControlQueue> = (q) => q): Promise<Sent> {
  try {
    return { res: await controlRequest(dataDir, req), direct: false };
  } catch (e) {
    if (!(e instanceof ControlUnavailable)) throw e;
    if (e.failure === 'unreachable') return { unavailable: `the server is running but its control socket is unreachable: ${e.message}` };
    let queue: Queue;
    try {
      queue = await Queue.open(join(dataDir, 'queue'));
    } catch (e2) {
      if (e2 instanceof Error && /in use by process/.test(e2.message)) return { unavailable: `the server is running but its control socket is unreachable: ${e.message}; ${e2.message}` };
      throw e2;
    }
    try {
      return { res: await performRequest(await direct(queue), req), direct: true };
    } finally {
      await queue.close();
    }
  }
}
