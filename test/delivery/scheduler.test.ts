/**
 * The scheduler against a small in-memory queue implementing the delivery
 * contract (attempt.ts DeliveryQueue) and a fixed resolver: one attempt of a
 * message at a time however often it is woken, per-tick bounds, and stop()
 * letting an in-flight delivery finish and record its outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, type Config } from '../../src/config';
import type { MxResolver } from '../../src/dns/resolver';
import type { DeliveryQueue } from '../../src/delivery/attempt';
import type { RcptOutcome } from '../../src/delivery/outcome';
import { Delivery } from '../../src/delivery/scheduler';
import { createLogger } from '../../src/observe/log';
import type { Envelope, QueuedMessage } from '../../src/queue/types';
import { startPeer, type Peer } from '../helpers/sink';
import { freePort, waitFor } from './harness';

class FakeQueue implements DeliveryQueue {
  readonly msgs = new Map<string, QueuedMessage>();
  readonly records: { id: string; outcomes: { index: number; outcome: RcptOutcome }[] }[] = [];
  readonly finished: string[] = [];
  dueCalls = 0;
  private cbs: ((id: string) => void)[] = [];

  add(id: string, to: string[]): void {
    const recipients = to.map((address) => ({ address, state: 'queued' as const, attempts: 0, nextAttempt: null, lastReply: null }));
    this.msgs.set(id, { id, sender: 's@petrel.local', size: 10, arrived: Date.now(), held: false, recipients, clientIp: '127.0.0.1', helo: 'x' });
    for (const cb of this.cbs) cb(id);
  }
  due(now: number): QueuedMessage[] {
    this.dueCalls += 1;
    return [...this.msgs.values()].filter((m) => m.recipients.some((r) => r.state === 'queued' || (r.state === 'deferred' && (r.nextAttempt ?? 0) <= now)));
  }
  nextWake(): number | null {
    return null;
  }
  async recordOutcomes(id: string, outcomes: { index: number; outcome: RcptOutcome }[]): Promise<void> {
    this.records.push({ id, outcomes });
    const m = this.msgs.get(id);
    for (const { index, outcome } of outcomes) {
      const r = m?.recipients[index];
      if (r) Object.assign(r, { state: outcome.kind, attempts: r.attempts + 1, lastReply: outcome.reply, nextAttempt: outcome.kind === 'deferred' ? outcome.nextAt : null });
    }
  }
  async finish(id: string, _bounce?: { envelope: Envelope; body: Buffer }): Promise<string | null> {
    this.msgs.delete(id);
    this.finished.push(id);
    return null;
  }
  onAvailable(cb: (id: string) => void): void {
    this.cbs.push(cb);
  }
  async *readBody(_id: string): AsyncIterable<Buffer> {
    yield Buffer.from('Subject: t\r\n\r\nbody\r\n');
  }
  get(id: string): QueuedMessage | undefined {
    return this.msgs.get(id);
  }
  list(): QueuedMessage[] {
    return [...this.msgs.values()];
  }
}

let peer: Peer;
let release: (() => void) | null = null;
let port: number;

beforeAll(async () => {
  port = await freePort('127.0.0.12');
  peer = await startPeer('127.0.0.12', port);
});
afterAll(async () => {
  await peer?.stop();
});

const resolver: MxResolver = {
  resolveRoute: async () => ({ kind: 'hosts', hosts: [{ name: 'mx.fake.test', preference: 0, addresses: ['127.0.0.12'] }], implicit: false }),
  resolveAddresses: async () => ({ kind: 'no-such-domain' }),
};

function start(q: FakeQueue, over: Partial<Config> = {}, slowBody = false): Delivery {
  const cfg: Config = { ...defaultConfig('/tmp'), hostname: 'petrel.test', localDomains: ['petrel.local'], outboundPort: port, retrySchedule: [60], ...over };
  // The body read waits for the test's release(): the delivery stays in flight (after 354) meanwhile.
  if (slowBody) {
    const orig = q.readBody.bind(q);
    q.readBody = async function* (id: string) {
      await new Promise<void>((r) => (release = r));
      yield* orig(id);
    };
  }
  return Delivery.start({ cfg, queue: q, log: createLogger({ write: () => undefined }), resolver, idleMs: 200, graceMs: 3000 });
}

describe('scheduler', () => {
  it('on start, finishes a message left with every recipient final (crash before its DONE), bounce included', async () => {
    const q = new FakeQueue();
    q.add('S1', ['x@fake.test', 'y@fake.test']);
    const [x, y] = q.msgs.get('S1')!.recipients;
    Object.assign(x!, { state: 'delivered', attempts: 1, lastReply: '250 ok' });
    Object.assign(y!, { state: 'failed', attempts: 1, lastReply: '550 5.1.1 no such user' });
    let bounced: { envelope: Envelope; body: Buffer } | undefined;
    const finish = q.finish.bind(q);
    q.finish = async (id, bounce) => ((bounced = bounce), finish(id, bounce));
    const d = start(q);
    await waitFor('finished', () => q.finished.includes('S1'));
    expect(q.records).toHaveLength(0); // nothing delivered again
    expect(bounced?.envelope.sender).toBe('');
    expect(bounced?.envelope.recipients).toEqual(['s@petrel.local']);
    expect(bounced?.body.toString()).toContain('550 5.1.1 no such user');
    await d.stop();
  });

  it('never runs two attempts of the same message, however often it is woken', async () => {
    const q = new FakeQueue();
    const d = start(q, {}, true);
    q.add('M1', ['a@fake.test']);
    await waitFor('in flight', () => release !== null);
    for (let i = 0; i < 20; i++) {
      d.wake();
      await new Promise((r) => setImmediate(r));
    }
    expect(d.active).toBe(1);
    release?.();
    await waitFor('finished', () => q.finished.includes('M1'));
    expect(q.records.filter((r) => r.id === 'M1')).toHaveLength(1);
    expect(peer.messages.filter((m) => m.to.includes('a@fake.test'))).toHaveLength(1);
    await d.stop();
    release = null;
  });

  it('stop() lets an in-flight delivery finish and record its outcome', async () => {
    const q = new FakeQueue();
    const d = start(q, {}, true);
    q.add('M2', ['b@fake.test']);
    await waitFor('in flight', () => release !== null);
    const stopped = d.stop();
    release?.();
    await stopped;
    expect(q.records.map((r) => [r.id, r.outcomes[0]?.outcome.kind])).toEqual([['M2', 'delivered']]);
    q.add('M3', ['c@fake.test']); // after stop: not attempted
    await new Promise((r) => setTimeout(r, 100));
    expect(q.records).toHaveLength(1);
    release = null;
  });

  it('a message with only local recipients is skipped, not spun on', async () => {
    const q = new FakeQueue();
    const d = start(q);
    q.add('M4', ['me@petrel.local']);
    await new Promise((r) => setTimeout(r, 300));
    expect(q.records).toHaveLength(0);
    expect(q.dueCalls).toBeLessThan(5); // woken once by onAvailable; nextWake null: no polling
    await d.stop();
  });

  it('bounded work per tick: many due messages are all delivered, over limited connections', async () => {
    const q = new FakeQueue();
    const d = start(q, { destinationConcurrency: 2, maxDeliveryConcurrency: 2 });
    const before = peer.connections();
    for (let i = 0; i < 30; i++) q.add(`N${i}`, [`n${i}@fake.test`]);
    await waitFor('all finished', () => q.finished.length === 30);
    expect(peer.connections() - before).toBeLessThanOrEqual(2);
    await d.stop();
  });
});
