/**
 * Final-250 latency under load, for bench/run.ts: while smtp-source runs, one
 * extra client of our own sends a message at a time (EHLO, MAIL, RCPT, DATA,
 * the payload, QUIT; no pipelining) and times the span from writing the
 * end-of-data "<CRLF>.<CRLF>" to reading the reply (RFC 5321 §4.1.1.4, §4.2):
 * for an MTA that is the time it takes to make the message durable. The
 * probe runs inside the harness process, so event-loop delay there (small:
 * the harness mostly waits) adds to each sample; it is one more session at a
 * trickle, and its messages count at the sink like the load's.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface ProbeResult {
  /** Messages that got a 2xx after the data (each also reaches the sink). */
  readonly accepted: number;
  readonly latenciesMs: number[];
  readonly errors: number;
  readonly firstError: string | null;
}

/** A connection that hands out one complete reply (possibly multi-line) at a time. */
class ReplyReader {
  private buf = '';
  private waiting: ((reply: string) => void) | null = null;
  private readonly replies: string[] = [];

  constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1').on('data', (s: string) => this.take(s));
  }

  next(timeoutMs: number): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply in ${timeoutMs} ms`)), timeoutMs);
      this.sock.once('close', () => reject(new Error('connection closed')));
      this.waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
    });
  }

  private take(s: string): void {
    this.buf += s;
    // RFC 5321 §4.2.1: the last line of a reply has a space after the code
    for (let m = /^\d{3} .*\r\n/m.exec(this.buf); m; m = /^\d{3} .*\r\n/m.exec(this.buf)) {
      const end = m.index + m[0].length;
      const reply = this.buf.slice(0, end);
      this.buf = this.buf.slice(end);
      const w = this.waiting;
      this.waiting = null;
      if (w) w(reply);
      else this.replies.push(reply);
    }
  }
}

export function probeBody(size: number): string {
  const line = `${'x'.repeat(78)}\r\n`;
  return `Subject: latency probe\r\n\r\n${line.repeat(Math.max(1, Math.round(size / line.length)))}`;
}

async function expect(r: ReplyReader, code: string, timeoutMs: number): Promise<void> {
  const reply = await r.next(timeoutMs);
  if (!reply.startsWith(code)) throw new Error(`expected ${code}, got ${reply.trim().slice(0, 200)}`);
}

/** One message; resolves with the end-of-data → 250 time in ms. */
async function sendOne(host: string, port: number, body: string, timeoutMs: number): Promise<number> {
  const sock = connect({ host, port, noDelay: true });
  sock.on('error', () => undefined); // surfaces as 'close' in the reader
  const r = new ReplyReader(sock);
  try {
    await expect(r, '220', timeoutMs);
    for (const [cmd, code] of [['EHLO probe.bench', '250'], ['MAIL FROM:<probe@source.bench>', '250'], ['RCPT TO:<probe@sink.bench>', '250'], ['DATA', '354']] as const) {
      sock.write(`${cmd}\r\n`);
      await expect(r, code, timeoutMs);
    }
    // the clock starts once the payload is in the kernel, and no Nagle delay holds back the short terminator
    await new Promise<void>((resolve, reject) => sock.write(body, (e) => (e ? reject(e) : resolve())));
    const t0 = performance.now();
    sock.write('.\r\n');
    await expect(r, '250', timeoutMs);
    const ms = performance.now() - t0;
    sock.write('QUIT\r\n');
    return ms;
  } finally {
    sock.end();
    sock.destroy();
  }
}

/** Sends probes one after another, gapMs apart, until stop() (which waits for the one in flight). */
export function startProbe(host: string, port: number, size: number, gapMs = 50, timeoutMs = 30_000): { stop(): Promise<ProbeResult> } {
  const body = probeBody(size);
  const result = { accepted: 0, latenciesMs: [] as number[], errors: 0, firstError: null as string | null };
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        result.latenciesMs.push(await sendOne(host, port, body, timeoutMs));
        result.accepted += 1;
      } catch (e) {
        result.errors += 1;
        result.firstError ??= (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return result;
    },
  };
}

/** The q-quantile (0..1) by nearest rank, or null for no samples. */
export function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}
