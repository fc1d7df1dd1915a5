/**
 * Shared set-up for the delivery tests: a real queue in a temp directory, the
 * delivery engine on it with captured JSON log lines, and small waiting and
 * message helpers. Not a test file itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../../src/config';
import type { MxResolver } from '../../src/dns/resolver';
import { Delivery } from '../../src/delivery/scheduler';
import { createLogger } from '../../src/observe/log';
import { Queue } from '../../src/queue/queue';
import type { Envelope } from '../../src/queue/types';

export type LogRecord = { event: string } & Record<string, unknown>;

export interface Engine {
  readonly queue: Queue;
  readonly delivery: Delivery;
  readonly cfg: Config;
  readonly logs: string[];
  events(event?: string, id?: string): LogRecord[];
  stop(): Promise<void>;
}

export interface EngineOptions {
  readonly config: Partial<Config>;
  readonly resolver?: MxResolver;
  readonly tlsCa?: string | Buffer;
  readonly maxReplyTimeoutMs?: number;
  readonly idleMs?: number;
}

export async function startEngine(opts: EngineOptions): Promise<Engine> {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-delivery-'));
  const queue = await Queue.open(join(dir, 'queue'), { fsync: false });
  const cfg: Config = {
    ...defaultConfig(dir),
    hostname: 'petrel.test',
    localDomains: ['petrel.local'],
    retrySchedule: [1],
    maxQueueLifetime: 3600,
    connectTimeout: 2,
    ...opts.config,
  };
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => logs.push(l) });
  const delivery = Delivery.start({
    cfg, queue, log, resolver: opts.resolver, tlsCa: opts.tlsCa,
    maxReplyTimeoutMs: opts.maxReplyTimeoutMs ?? 2000, idleMs: opts.idleMs ?? 1000, graceMs: 2000,
  });
  const events = (event?: string, id?: string) =>
    logs.map((l) => JSON.parse(l) as LogRecord).filter((r) => (event === undefined || r.event === event) && (id === undefined || r.id === id));
  return {
    queue, delivery, cfg, logs, events,
    stop: async () => {
      await delivery.stop();
      await queue.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function envelope(sender: string, recipients: string[], extra: Partial<Envelope> = {}): Envelope {
  return { sender, recipients, params: { smtputf8: false }, clientIp: '127.0.0.1', helo: 'client.test', receivedAt: Date.now(), ...extra };
}

export function message(subject: string, body = 'Hello.\r\n'): Buffer {
  return Buffer.from(`From: <sender@petrel.local>\r\nTo: <rcpt@example.test>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@petrel.local>\r\n\r\n${body}`);
}

/** Polls `check` until it returns a value other than undefined/false; fails with `what` after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, ms = 10_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A port free on every address we bind (checked on the first one; the /8 shares the port space per address). */
export async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, host, () => res()));
  const addr = s.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

export async function readAll(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}
