/**
 * Interop with Python's smtplib (test/interop/py/smtplib_client.py) against
 * the real bundle: EHLO (RFC 5321 §4.1.1.1), several recipients with one
 * refused (§4.1.1.3, §3.3), send_message, STARTTLS with a verified
 * certificate (RFC 3207) and SMTPUTF8 (RFC 6531). smtplib has no BDAT, so
 * CHUNKING is not exercised here.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCert, type TestCert } from '../helpers/certs';
import { cleanup, queueList, queueShowText, REPO, runProgram, startPetrel, tempDir, type PetrelProcess } from '../helpers/spawn';

const SCRIPT = join(REPO, 'test', 'interop', 'py', 'smtplib_client.py');

let cert: TestCert;
let server: PetrelProcess;

beforeAll(async () => {
  const dir = tempDir('petrel-smtplib-');
  cert = makeTestCert(dir);
  server = await startPetrel({ dir, settings: { tls_cert: cert.cert, tls_key: cert.key } });
});

afterAll(async () => {
  await server?.stop();
  await cleanup();
});

type Result = Record<string, unknown> & { error?: string; data_reply?: [number, string] | null };

async function py(kase: string): Promise<Result> {
  const args = ['-B', SCRIPT, kase, '127.0.0.1', String(server.port), cert.cert];
  const r = await runProgram('python3', args);
  const out = JSON.parse(r.stdout.trim() || '{}') as Result;
  if (r.status !== 0 || out.error) throw new Error(`smtplib ${kase} failed (${r.status}): ${out.error ?? ''} ${r.stderr}`);
  return out;
}

function idOf(r: Result): string {
  const reply = r.data_reply;
  expect(reply?.[0]).toBe(250);
  const id = /queued as (\S+)/.exec(reply?.[1] ?? '')?.[1];
  if (!id) throw new Error(`no queue id in ${JSON.stringify(reply)}`);
  return id;
}

async function entry(id: string) {
  const m = (await queueList(server.configFile)).find((x) => x.id === id);
  if (!m) throw new Error(`${id} not in queue list`);
  return m;
}

describe('Python smtplib against petrel serve', () => {
  it('ehlo_or_helo_if_needed: ESMTP with the extensions petrel documents', async () => {
    const r = await py('ehlo');
    expect(r.esmtp).toBe(true);
    expect(r.features).toEqual(expect.arrayContaining(['pipelining', 'size', '8bitmime', 'smtputf8', 'enhancedstatuscodes', 'chunking', 'starttls']));
    expect(r.helo_resp).toMatch(/^mx\.petrel\.test/);
    expect(r.quit).toBe(221);
  });

  it('sendmail to several recipients: the malformed one is refused, the rest queued on one message', async () => {
    const r = await py('sendmail_many');
    const refused = r.refused as Record<string, [number, string]>;
    expect(Object.keys(refused)).toEqual(['bad@@example.test']);
    expect(refused['bad@@example.test']?.[0]).toBeGreaterThanOrEqual(500);
    const m = await entry(idOf(r));
    expect(m.sender).toBe('py@example.org');
    expect(m.recipients.map((x) => x.address)).toEqual(['one@example.test', 'two@example.test', 'three@example.test']);
  });

  it('send_message: To and Cc become the envelope, a leading-dot line survives dot-stuffing', async () => {
    const r = await py('send_message');
    expect(r.pipelining).toBe(true);
    expect(r.refused).toEqual({});
    const id = idOf(r);
    const m = await entry(id);
    expect(m.sender).toBe('pysender@example.org');
    expect(m.recipients.map((x) => x.address).sort()).toEqual(['first@example.test', 'second@example.test', 'third@example.test']);
    const text = await queueShowText(server.configFile, id);
    expect(text).toMatch(/\r?\n\.leading dot line\r?\n/);
    expect(text).not.toContain('..leading');
  });

  it('starttls() with a context that trusts the test certificate, then sends', async () => {
    const r = await py('starttls');
    expect(r).toMatchObject({ offered_before: true, offered_after: false });
    expect(r.version).toMatch(/^TLSv1\.[23]$/);
    const m = await entry(idOf(r));
    expect(m.recipients[0]?.address).toBe('secure@example.test');
  });

  it('SMTPUTF8: non-ASCII sender and recipient are queued as UTF-8', async () => {
    const r = await py('smtputf8');
    expect(r.smtputf8).toBe(true);
    const id = idOf(r);
    const m = await entry(id);
    expect(m.sender).toBe('jörg@example.org');
    expect(m.recipients.map((x) => x.address)).toEqual(['üser@example.test']);
    expect(await queueShowText(server.configFile, id)).toContain('Schöne Grüße ✉');
  });
});
