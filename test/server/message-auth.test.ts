/**
 * The server's sender-authentication adapter (src/server/message-auth.ts):
 * who is signed and who is checked, the one deadline over a check whose DNS
 * never answers, and a header section too large to check (not a way around
 * DMARC: quarantined unless enforcement is off).
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { SigningKey } from '../../src/auth/dkim/keys';
import type { InboundDns } from '../../src/auth/inbound';
import { MessageAuth, type MessageAuthConfig } from '../../src/server/message-auth';

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
const silentDns: InboundDns = { txt: never, txtJoined: never, a: never, aaaa: never, mx: never, ptr: never, dkimKey: never };
const nxDns: InboundDns = {
  txt: async () => ({ error: 'nxdomain' }),
  txtJoined: async () => ({ error: 'nxdomain' }),
  a: async () => ({ error: 'nxdomain' }),
  aaaa: async () => ({ error: 'nxdomain' }),
  mx: async () => ({ error: 'nxdomain' }),
  ptr: async () => ({ error: 'nxdomain' }),
  dkimKey: async () => null,
};

const key: SigningKey = {
  domain: 'example.org', selector: 's', privateKey: generateKeyPairSync('ed25519').privateKey,
  algorithm: 'ed25519-sha256', bits: 256, keyFile: '/dev/null',
};

function auth(over: Partial<MessageAuthConfig> = {}): MessageAuth {
  return new MessageAuth({ authservId: 'mx.test', keys: [key], checks: true, enforcement: 'quarantine', dns: nxDns, now: () => 1_764_316_800_000, ...over });
}

const MSG = Buffer.from('From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n');
const facts = { clientIp: '192.0.2.7', helo: 'client.example', mailFrom: 'a@example.org' };

/** Pushes the message through a begun observer the way the connection does; returns what would be stored. */
function run(a: MessageAuth, client: { trusted: boolean; authenticated: boolean }, message = MSG) {
  const observer = a.begin(client);
  if (!observer) return null;
  const stored = [...observer.push(message), ...observer.end()];
  return { observer, stored: Buffer.concat(stored) };
}

describe('MessageAuth', () => {
  it('signs for trusted and authenticated clients, checks everyone else, and does neither when off', async () => {
    const a = auth();
    const signed = run(a, { trusted: true, authenticated: false });
    expect(signed).not.toBeNull();
    const s = await a.finish(signed!.observer, facts);
    expect(s.kind === 'accept' && s.prefix?.toString()).toMatch(/^DKIM-Signature: v=1; a=ed25519-sha256;/);

    const checked = run(a, { trusted: false, authenticated: false });
    const c = await a.finish(checked!.observer, facts);
    expect(c.kind === 'accept' && c.prefix?.toString()).toMatch(/^Authentication-Results: mx\.test;/);

    expect(run(auth({ checks: false }), { trusted: false, authenticated: false })).toBeNull();
    expect(run(auth({ keys: [] }), { trusted: false, authenticated: true })).toBeNull();
  });

  it('a DNS that never answers ends at the deadline with temperror, and the message is accepted', async () => {
    const a = auth({ dns: silentDns, deadlineMs: 200 });
    const r = run(a, { trusted: false, authenticated: false });
    const end = await a.finish(r!.observer, facts); // without the deadline this never resolves (the test times out)
    expect(end.kind).toBe('accept');
    const text = end.kind === 'accept' ? end.prefix?.toString() ?? '' : '';
    expect(text).toMatch(/spf=temperror/);
    expect(text).toMatch(/dkim=temperror/);
  });

  it('a header section too large to check is quarantined, or only recorded when enforcement is none', async () => {
    const huge = Buffer.concat([Buffer.from(`X-Pad: ${'x'.repeat(200 * 1024)}\r\n`), MSG]);
    const q = auth();
    const r = run(q, { trusted: false, authenticated: false }, huge);
    expect(r!.stored.equals(huge)).toBe(true); // passed through unchanged
    const end = await q.finish(r!.observer, facts);
    expect(end.kind === 'accept' && end.prefix?.toString()).toMatch(/X-Spam-Flag: YES\r\nX-Petrel-Quarantine: header-too-large\r\n$/);

    const off = auth({ enforcement: 'none' });
    const r2 = run(off, { trusted: false, authenticated: false }, huge);
    const end2 = await off.finish(r2!.observer, facts);
    expect(end2.kind === 'accept' && end2.prefix?.toString()).not.toMatch(/X-Spam-Flag/);
  });

  it('a forged Authentication-Results with our name is not stored', () => {
    const forged = Buffer.concat([Buffer.from('Authentication-Results: MX.TEST; dmarc=pass\r\n'), MSG]);
    const r = run(auth(), { trusted: false, authenticated: false }, forged);
    expect(r!.stored.equals(MSG)).toBe(true);
  });
});
