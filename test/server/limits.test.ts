/**
 * Connection and session limits of the real bundle over real sockets:
 * max_connections_per_ip and max_connections (421 4.7.0 before any session,
 * RFC 5321 §3.8), idle_timeout (421 4.4.2, §4.5.3.2 lets a server time out
 * a silent client), max_errors (421 4.7.0), and many idle connections not
 * starving a real client.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanup, queueList, startPetrel, type PetrelProcess, type Settings } from '../helpers/spawn';
import { dataBlock, queuedId, RawSmtp } from '../helpers/smtp-raw';

const servers: PetrelProcess[] = [];
let open: RawSmtp[] = [];

async function serve(settings: Settings): Promise<PetrelProcess> {
  const s = await startPetrel({ settings });
  servers.push(s);
  return s;
}

async function connect(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  open.push(c);
  return c;
}

afterEach(() => {
  for (const c of open) c.destroy();
  open = [];
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await cleanup();
});

/** Sends one message on a fresh connection; returns its queue id. */
async function sendOne(port: number, to = 'user@example.test'): Promise<string | null> {
  const c = await connect(port);
  expect((await c.reply())?.code).toBe(220);
  await c.command('EHLO client.example.org');
  c.send(`MAIL FROM:<limits@example.org>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
  for (const code of [250, 250, 354]) expect((await c.reply())?.code).toBe(code);
  c.send(dataBlock('Subject: limits\r\n\r\nstill served\r\n'));
  const id = queuedId(await c.reply());
  await c.quit();
  return id;
}

describe('connection limits', () => {
  it('max_connections_per_ip: the connection over the limit gets 421 4.7.0 and is closed; a freed slot is reusable', async () => {
    const s = await serve({ max_connections_per_ip: 3 });
    const admitted = await Promise.all([1, 2, 3].map(() => connect(s.port)));
    for (const c of admitted) expect((await c.reply())?.code).toBe(220);
    const extra = await connect(s.port);
    expect((await extra.reply())?.text).toMatch(/^421 4\.7\.0 /);
    await extra.closed;
    expect(await extra.reply()).toBeNull();
    await admitted[0]?.quit();
    // The slot is released when the server sees the close; retry until it has (bounded, no timing asserted).
    let code = 0;
    for (let i = 0; i < 100 && code !== 220; i++) {
      const again = await connect(s.port);
      code = (await again.reply())?.code ?? 0;
      if (code !== 220) await new Promise((r) => setTimeout(r, 20));
    }
    expect(code).toBe(220);
  });

  it('max_connections: the connection over the total gets 421 4.7.0', async () => {
    const s = await serve({ max_connections: 2, max_connections_per_ip: 50 });
    const admitted = await Promise.all([1, 2].map(() => connect(s.port)));
    for (const c of admitted) expect((await c.reply())?.code).toBe(220);
    const extra = await connect(s.port);
    expect((await extra.reply())?.text).toMatch(/^421 4\.7\.0 /);
    await extra.closed;
  });

  it('300 concurrent idle connections: a real client still gets its message queued and the server lives on', async () => {
    const s = await serve({ max_connections_per_ip: 400 });
    const idle = await Promise.all(Array.from({ length: 300 }, () => connect(s.port)));
    const greetings = await Promise.all(idle.map((c) => c.reply()));
    expect(greetings.filter((g) => g?.code === 220)).toHaveLength(300);
    const id = await sendOne(s.port);
    expect(id).not.toBeNull();
    expect(s.events('refused')).toEqual([]);
    for (const c of idle) c.destroy();
    expect(s.alive).toBe(true);
    expect(await sendOne(s.port, 'after@example.test')).not.toBeNull();
    expect((await queueList(s.configFile)).map((m) => m.id)).toContain(id);
  });
});

describe('session limits', () => {
  it('idle_timeout: a silent client gets 421 4.4.2 and the connection is closed', async () => {
    const s = await serve({ idle_timeout: '1s' });
    const c = await connect(s.port);
    expect((await c.reply())?.code).toBe(220);
    expect((await c.reply(15_000))?.text).toMatch(/^421 4\.4\.2 /);
    await c.closed;
  });

  it('idle_timeout inside a transaction: 421 4.4.2 and nothing is queued', async () => {
    const s = await serve({ idle_timeout: '1s' });
    const c = await connect(s.port);
    await c.reply();
    await c.command('EHLO client.example.org');
    c.send('MAIL FROM:<slow@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n');
    for (const code of [250, 250, 354]) expect((await c.reply())?.code).toBe(code);
    c.send('Subject: never finished\r\n\r\nhalf a mess');
    expect((await c.reply(15_000))?.text).toMatch(/^421 4\.4\.2 /);
    await c.closed;
    expect(await queueList(s.configFile)).toEqual([]);
  });

  it('max_errors: after that many errors the session ends with 421 4.7.0', async () => {
    const s = await serve({ max_errors: 3 });
    const c = await connect(s.port);
    await c.reply();
    c.send('BOGUS\r\nBOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n');
    const seen: string[] = [];
    for (let r = await c.reply(); r; r = await c.reply()) seen.push(r.text);
    expect(seen.slice(0, 3).every((t) => t.startsWith('500 5.5.2 '))).toBe(true);
    expect(seen[3]).toMatch(/^421 4\.7\.0 /);
    expect(seen).toHaveLength(4);
  });
});
