/**
 * Throughput of the delivery engine through ONE connection-reusing
 * destination: N queued messages relayed to a single receiver over a single
 * SMTP connection (destination_concurrency = 1), as the issue asks. The
 * receiver is Postfix's smtp-sink (a fast C peer, so the figure is Petrel's
 * side) on 127.0.0.13, or the Node peer when smtp-sink is missing. The queue
 * is a real one (fsync on by default: every outcome record is durable before
 * the next step; pass --no-fsync for the CPU-only figure).
 *
 *   npx tsx bench/delivery-reuse.ts [--messages 2000] [--size 2048] [--no-fsync] [--node-peer]
 *
 * Prints messages/s and connections used; asserts nothing.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultConfig, type Config } from '../src/config';
import type { MxResolver } from '../src/dns/resolver';
import { Delivery } from '../src/delivery/scheduler';
import { createLogger } from '../src/observe/log';
import { Queue } from '../src/queue/queue';
import { SMTP_SINK, startPeer, startSmtpSink } from '../test/helpers/sink';
import { envelope, freePort } from '../test/delivery/harness';

const HOST = '127.0.0.13';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function main(): Promise<void> {
  const n = arg('messages', 2000);
  const size = arg('size', 2048);
  const fsync = !process.argv.includes('--no-fsync');
  const port = await freePort(HOST);
  const useSink = existsSync(SMTP_SINK) && !process.argv.includes('--node-peer');
  const peer = useSink ? await startSmtpSink(HOST, port, [], { dump: false }) : await startPeer(HOST, port);
  const dir = mkdtempSync(join(tmpdir(), 'petrel-bench-delivery-'));
  const queue = await Queue.open(join(dir, 'queue'), { fsync });
  const cfg: Config = { ...defaultConfig(dir), hostname: 'petrel.bench', localDomains: ['petrel.local'], outboundPort: port, destinationConcurrency: 1 };
  const resolver: MxResolver = {
    resolveRoute: async () => ({ kind: 'hosts', hosts: [{ name: 'mx.bench.test', preference: 0, addresses: [HOST] }], implicit: false }),
    resolveAddresses: async () => ({ kind: 'no-such-domain' }),
  };
  const body = Buffer.from(`Subject: bench\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(Math.max(1, Math.round(size / 80))));
  // Fill the queue first, then start delivery: the figure is pure relaying.
  const ids = await Promise.all(Array.from({ length: n }, (_, i) => queue.submit(envelope('bench@petrel.local', [`r${i}@bench.test`]), body)));
  let finished = 0;
  const delivery = Delivery.start({ cfg, queue, resolver, log: createLogger({ level: 'warn', write: () => undefined }), idleMs: 2000 });
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      finished = ids.filter((id) => queue.get(id) === undefined).length;
      if (finished === n) {
        clearInterval(poll);
        resolve();
      }
    }, 5);
  });
  const secs = (performance.now() - t0) / 1000;
  console.log(`delivery-reuse: ${n} messages of ${body.length} bytes to one destination (${useSink ? 'smtp-sink' : 'node peer'}), fsync ${fsync ? 'on' : 'off'}`);
  console.log(`  ${(n / secs).toFixed(0)} messages/s (${secs.toFixed(2)} s), connections opened: ${delivery.connectionsOpened}`);
  await delivery.stop();
  await queue.close();
  await peer.stop();
  rmSync(dir, { recursive: true, force: true });
}

void main();
