/**
 * "An exception in one session is logged and ends that session only"
 * (issue 2): a bug that throws while one client's message is being stored
 * must not disturb another client talking to the server at the same time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTestClient, startServer, type TestServer } from '../helpers/server';

let ts: TestServer | null = null;
afterEach(async () => {
  await ts?.stop();
  ts = null;
});

async function begin(port: number, from: string): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(port);
  await c.nextReply();
  await c.command('EHLO client.test');
  expect((await c.command(`MAIL FROM:<${from}>`))?.code).toBe(250);
  expect((await c.command('RCPT TO:<user@localhost>'))?.code).toBe(250);
  expect((await c.command('DATA'))?.code).toBe(354);
  return c;
}

describe('one session failing cannot hurt another', () => {
  it('an exception while storing one message ends that session with 451; a concurrent session still gets its 250', async () => {
    ts = await startServer();
    const queue = ts.server.queue;
    const original = queue.appendBody.bind(queue);
    // A stand-in for a bug: storing the body of mail from this one sender throws.
    queue.appendBody = (id: string, chunk: Buffer) => {
      if (chunk.includes('X-Boom: yes')) throw new Error('injected failure');
      original(id, chunk);
    };
    const healthy = await begin(ts.port, 'fine@example.org');
    const doomed = await begin(ts.port, 'boom@example.org');

    await doomed.write('X-Boom: yes\r\n\r\nthis one fails\r\n.\r\n');
    const failed = await doomed.nextReply();
    expect(failed?.code).toBe(451);
    expect(await doomed.nextReply()).toBeNull(); // the failing session is closed

    await healthy.write('Subject: still fine\r\n\r\nbody\r\n.\r\n');
    const ok = await healthy.nextReply();
    expect(ok?.code).toBe(250);
    expect((await healthy.command('QUIT'))?.code).toBe(221);

    expect(ts.events('session-error').length).toBe(1);
    expect(queue.list().map((m) => m.sender)).toEqual(['fine@example.org']);
    // The server still takes new connections.
    const later = await begin(ts.port, 'later@example.org');
    await later.write('Subject: later\r\n\r\nbody\r\n.\r\n');
    expect((await later.nextReply())?.code).toBe(250);
    later.close();
  });
});
