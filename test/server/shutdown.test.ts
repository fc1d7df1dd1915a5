/**
 * Graceful shutdown of the real bundle (README "Stopping"): on SIGTERM the
 * listeners close, an idle session gets 421 4.3.2 (RFC 5321 §3.8), a session
 * in the middle of DATA may finish its message and gets its 250, the queue
 * log is synced and the process exits 0 — and the message is there after a
 * restart.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, queueList, queueShowText, startPetrel, tempDir } from '../helpers/spawn';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';

afterAll(async () => {
  await cleanup();
});

/** A new connection during shutdown must not get a session: refused outright, or a 421 and close. */
async function newConnectionRefused(port: number): Promise<boolean> {
  let c: RawSmtp;
  try {
    c = await RawSmtp.connect(port);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
  const r = await c.reply();
  c.destroy();
  return r === null || r.code === 421;
}

describe('SIGTERM', () => {
  it('lets a client in the middle of DATA finish and get its 250, refuses new ones, exits 0, keeps the message', async () => {
    const dir = tempDir('petrel-shutdown-');
    const s = await startPetrel({ dir });
    const c = await RawSmtp.connect(s.port);
    expect((await c.reply())?.code).toBe(220);
    await c.command('EHLO client.example.org');
    c.send('MAIL FROM:<drain@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n');
    for (const code of [250, 250, 354]) expect((await c.reply())?.code).toBe(code);
    // Inside DATA (354 read) with half the message sent: the session is mid-transaction.
    c.send('Subject: in flight\r\n\r\nfirst half of the message\r\n');
    s.child.kill('SIGTERM');
    await s.waitForLog((l) => l.event === 'stopping');
    expect(await newConnectionRefused(s.port)).toBe(true);

    c.send(dataBlock('second half of the message\r\n'));
    const ack = await c.reply();
    const id = queuedId(ack);
    expect(ack?.text).toMatch(/^250 /);
    expect(id).not.toBeNull();
    // Its transaction done, the draining session is ended by the server (421) or on our QUIT (221).
    c.send('QUIT\r\n');
    const last = await c.reply();
    expect([221, 421, undefined]).toContain(last?.code);
    await c.closed;

    const exit = await s.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(s.events('stopped')).toHaveLength(1);

    const again = await startPetrel({ dir });
    await again.stop();
    expect((await queueList(again.configFile)).map((m) => m.id)).toEqual([id]);
    const text = await queueShowText(again.configFile, id as string);
    expect(text).toContain('first half of the message\r\nsecond half of the message\r\n');
  });

  it('gives an idle session 421 4.3.2 at once and exits 0', async () => {
    const s = await startPetrel();
    const c = await RawSmtp.connect(s.port);
    expect((await c.reply())?.code).toBe(220);
    await c.command('EHLO client.example.org');
    s.child.kill('SIGTERM');
    expect((await c.reply())?.text).toMatch(/^421 4\.3\.2 /);
    await c.closed;
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  it('with no sessions, stops and exits 0 (SIGINT as well)', async () => {
    const s = await startPetrel();
    s.child.kill('SIGINT');
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.events('stopped')).toHaveLength(1);
  });
});
