/**
 * Interop with swaks, a real SMTP client nobody here wrote, against the real
 * bundle: plain ESMTP (RFC 5321), PIPELINING (RFC 2920), STARTTLS (RFC 3207),
 * implicit TLS (RFC 8314), SIZE refusal (RFC 1870: 552) and relay refusal
 * (RFC 5321 §3.6: 554 5.7.1) — each message then checked in `queue list --json`.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, setUser } from '../../src/policy/users';
import { makeTestCert, type TestCert } from '../helpers/certs';
import { cleanup, queueList, queueShowText, runProgram, startPetrel, tempDir, type CliResult, type PetrelProcess } from '../helpers/spawn';

let cert: TestCert;
let server: PetrelProcess;

const help = execFileSync('swaks', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
/** swaks gained CHUNKING only after 20201014 (Debian 12's); find its option rather than guess. */
const bdatFlag = /(--[\w-]*bdat[\w-]*)/i.exec(help)?.[1] ?? null;

beforeAll(async () => {
  const dir = tempDir('petrel-swaks-');
  cert = makeTestCert(dir);
  // listen_smtps requires AUTH (DESIGN.md): one user for the implicit-TLS case.
  await setUser(join(dir, 'users'), { name: 'sender@example.org', hash: await hashPassword('pw', { ln: 4, r: 8, p: 1 }), senders: [] });
  server = await startPetrel({ dir, settings: { tls_cert: cert.cert, tls_key: cert.key, listen_smtps: '127.0.0.1:0', users_file: join(dir, 'users') } });
});

afterAll(async () => {
  await server?.stop();
  await cleanup();
});

function swaks(port: number, args: string[]): Promise<CliResult> {
  return runProgram('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'sender@example.org', '--helo', 'client.example.org', ...args]);
}

/** swaks prints the server's lines as "<-  250 …" (or "<** 5xx …" for failures). */
function serverLines(r: CliResult): string[] {
  return r.stdout.split('\n').filter((l) => /^<[-~*]{1,2}\s/.test(l)).map((l) => l.replace(/^<[-~*]+\s+/, ''));
}

function queuedIdOf(r: CliResult): string {
  const id = /queued as (\S+)/.exec(r.stdout)?.[1];
  if (!id) throw new Error(`no "queued as" in swaks output (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return id;
}

async function queued(id: string) {
  const entry = (await queueList(server.configFile)).find((m) => m.id === id);
  if (!entry) throw new Error(`message ${id} not in queue list`);
  return entry;
}

describe('swaks against petrel serve', () => {
  it('delivers a plain message that queue list --json then shows in the documented shape', async () => {
    const r = await swaks(server.port, ['--to', 'user@example.test', '--header', 'Subject: plain swaks', '--body', 'Hello from swaks']);
    expect(r.status).toBe(0);
    const id = queuedIdOf(r);
    const m = await queued(id);
    expect(Object.keys(m).sort()).toEqual(['arrived', 'held', 'id', 'recipients', 'sender', 'size']);
    expect(m).toMatchObject({ id, sender: 'sender@example.org', held: false });
    expect(m.size).toBeGreaterThan('Hello from swaks'.length);
    expect(m.arrived).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(m.recipients).toEqual([{ address: 'user@example.test', state: 'queued', attempts: 0, next_attempt: null, last_reply: null }]);
    const text = await queueShowText(server.configFile, id);
    expect(text).toMatch(/^Received: from client\.example\.org/);
    expect(text).toContain('Subject: plain swaks');
    expect(text).toContain('Hello from swaks');
  });

  it('pipelines MAIL, RCPT and DATA (--pipeline) for several recipients', async () => {
    const r = await swaks(server.port, ['--pipeline', '--to', 'a@example.test,b@example.test,c@example.test']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^<-\s+250-PIPELINING/m);
    // Pipelined: every command up to DATA is written before the first reply to them is read.
    const out = r.stdout.split('\n');
    const dataAt = out.findIndex((l) => /^ -> DATA/.test(l));
    const firstMailReply = out.findIndex((l) => /^<-\s+250 2\.1\.0/.test(l));
    expect(dataAt).toBeGreaterThan(0);
    expect(firstMailReply).toBeGreaterThan(dataAt);
    const m = await queued(queuedIdOf(r));
    expect(m.recipients.map((x) => x.address)).toEqual(['a@example.test', 'b@example.test', 'c@example.test']);
  });

  it('upgrades with STARTTLS (-tls) using a certificate made by openssl', async () => {
    const r = await swaks(server.port, ['-tls', '--to', 'tls@example.test']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^<-\s+250[- ]STARTTLS/m);
    expect(r.stdout).toMatch(/TLS started/);
    const id = queuedIdOf(r);
    expect((await queued(id)).recipients[0]?.address).toBe('tls@example.test');
    // RFC 3848: the trace field records that the message came over TLS.
    expect(await queueShowText(server.configFile, id)).toMatch(/with ESMTPS id /);
  });

  it('speaks implicit TLS (--tls-on-connect) on a listen_smtps port', async () => {
    const r = await swaks(server.portOf('smtps'), ['--tls-on-connect', '--auth', 'PLAIN', '--auth-user', 'sender@example.org', '--auth-password', 'pw', '--to', 'smtps@example.test']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/TLS started/);
    // STARTTLS makes no sense inside TLS, so it is not offered there.
    expect(r.stdout).not.toMatch(/^<~?\s+250[- ]STARTTLS/m);
    expect((await queued(queuedIdOf(r))).recipients[0]?.address).toBe('smtps@example.test');
  });

  it.skipIf(bdatFlag === null)('sends with BDAT (CHUNKING, RFC 3030)', async () => {
    const r = await swaks(server.port, [bdatFlag as string, '--to', 'bdat@example.test']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ -> BDAT/m);
    expect((await queued(queuedIdOf(r))).recipients[0]?.address).toBe('bdat@example.test');
  });
  if (bdatFlag === null) console.log(`swaks BDAT case skipped: this swaks (${/version (\S+)/.exec(execFileSync('swaks', ['--version'], { encoding: 'utf8' }))?.[1]}) has no BDAT/CHUNKING option`);
});

describe('swaks against a server with limits', () => {
  let small: PetrelProcess;
  beforeAll(async () => {
    small = await startPetrel({ settings: { max_message_size: '10K', trusted_networks: '192.0.2.0/24' } });
  });
  afterAll(async () => {
    await small?.stop();
  });

  it('refuses a message over max_message_size with 552 and queues nothing', async () => {
    const file = join(small.dir, 'big.eml');
    writeFileSync(file, `Subject: big\r\n\r\n${'x'.repeat(70).concat('\r\n').repeat(300)}`);
    const r = await swaks(small.port, ['--to', 'user@example.test', '--data', file]);
    expect(r.status).not.toBe(0);
    expect(serverLines(r).some((l) => /^552 5\.3\.4 /.test(l))).toBe(true);
    expect(r.stdout).not.toMatch(/queued as/);
    expect(await queueList(small.configFile)).toEqual([]);
  });

  it('denies relaying for an untrusted client with 554 5.7.1, but takes local mail', async () => {
    const denied = await swaks(small.port, ['--to', 'someone@elsewhere.example']);
    expect(denied.status).not.toBe(0);
    expect(serverLines(denied).some((l) => /^554 5\.7\.1 /.test(l))).toBe(true);
    const local = await swaks(small.port, ['--to', 'user@example.test']);
    expect(local.status).toBe(0);
    const ids = (await queueList(small.configFile)).map((m) => m.id);
    expect(ids).toEqual([queuedIdOf(local)]);
  });
});
