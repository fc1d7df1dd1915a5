/**
 * Inbound evaluation (src/auth/inbound.ts) over a fake DNS: SPF (RFC 7208
 * §2.4, the HELO identity for <>), DKIM (RFC 6376 §6.1), DMARC (RFC 7489
 * §6.6; zero or several From domains → permerror, §6.6.1), the action per
 * enforcement level, and hostile DNS: huge TXT, non-DKIM TXT, methods that
 * throw, reject or answer nonsense. Nothing throws; a DNS failure never
 * rejects. (A DNS promise that never settles is the adapter's to bound: it
 * has deadlines; it is not simulated here.)
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyHash, rawFields } from '../src/auth/dkim/canon';
import type { SigningKey } from '../src/auth/dkim/keys';
import { signMessage } from '../src/auth/dkim/sign';
import type { KeyAnswer } from '../src/auth/dkim/verify';
import { evaluateInbound, rejectReply, type Enforcement, type InboundDns, type InboundFacts } from '../src/auth/inbound';
import { MessageObserver, type ObservedMessage } from '../src/auth/message-observer';
import { signObserved } from '../src/auth/outbound-sign';

const NOW = 1_767_225_600;
const OURS = 'mx.petrel.test';
const ed = generateKeyPairSync('ed25519').privateKey;
const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const KEYS: SigningKey[] = [
  { domain: 'example.org', selector: 'ed', privateKey: ed, algorithm: 'ed25519-sha256', bits: 256, keyFile: 'ed.pem' },
  { domain: 'relay.example', selector: 'rsa', privateKey: rsa, algorithm: 'rsa-sha256', bits: 1024, keyFile: 'rsa.pem' },
];

function recordFor(priv: KeyObject): string {
  const pub = createPublicKey(priv);
  if (pub.asymmetricKeyType === 'ed25519') return `v=DKIM1; k=ed25519; p=${pub.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
  return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
}

type Behaviour<T> = T | 'throw' | 'reject' | 'garbage';
interface Zone {
  readonly txt?: Readonly<Record<string, Behaviour<readonly string[] | { error: 'nxdomain' | 'nodata' | 'temp' }>>>;
  readonly key?: Readonly<Record<string, Behaviour<KeyAnswer>>>;
}

const NX = { error: 'nxdomain' } as const;

/** `throw` throws from the method itself (not from a promise), `reject` rejects, `garbage` resolves to a number. */
function answer<T>(b: Behaviour<T> | undefined, dflt: T): Promise<T> {
  if (b === 'throw') throw new Error('dns method threw');
  if (b === 'reject') return Promise.reject(new Error('dns promise rejected'));
  if (b === 'garbage') return Promise.resolve(42 as unknown as T);
  return Promise.resolve(b === undefined ? dflt : b);
}

function fakeDns(zone: Zone): InboundDns & { asked: string[] } {
  const asked: string[] = [];
  const txt = (n: string) => (asked.push(`txt ${n}`), answer(zone.txt?.[n], NX));
  return {
    asked,
    txt,
    txtJoined: txt,
    dkimKey: (n) => (asked.push(`key ${n}`), answer(zone.key?.[n], null)),
    a: () => Promise.resolve(NX),
    aaaa: () => Promise.resolve(NX),
    mx: () => Promise.resolve(NX),
    ptr: () => Promise.resolve(NX),
  };
}

const GOOD: Zone = {
  txt: {
    'example.org': ['v=spf1 ip4:192.0.2.1 -all'],
    'mail.example.org': ['v=spf1 ip4:192.0.2.1 -all'],
    'evil.example': ['v=spf1 ip4:203.0.113.9 -all'],
    '_dmarc.example.org': ['v=DMARC1; p=reject'],
    '_dmarc.quarantined.example': ['v=DMARC1; p=quarantine'],
    'quarantined.example': ['v=spf1 -all'],
  },
  key: { 'ed._domainkey.example.org': recordFor(ed), 'rsa._domainkey.relay.example': recordFor(rsa) },
};

const FACTS: InboundFacts = { clientIp: '192.0.2.1', helo: 'mail.example.org', mailFrom: 'alice@example.org', authservId: OURS, now: NOW };
const SPOOF: InboundFacts = { ...FACTS, clientIp: '203.0.113.9', helo: 'evil.example', mailFrom: 'x@evil.example' };

function observe(text: string | Buffer, sign = false): ObservedMessage {
  const o = new MessageObserver({ authservId: OURS, verify: !sign, sign });
  o.push(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  o.end();
  if (o.observed === null) throw new Error('not observed');
  return o.observed;
}

/** The message as delivered by a signer holding `keys`. */
function signedBy(text: string, keys: readonly SigningKey[] = KEYS): Buffer {
  const out = signObserved(observe(text, true), keys, NOW - 60);
  if ('skip' in out) throw new Error(out.skip);
  return Buffer.concat([out.field, Buffer.from(text, 'latin1')]);
}

const PLAIN = 'From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello\r\n';
const run = (observed: ObservedMessage | null, facts: InboundFacts, zone: Zone, enforcement: Enforcement = 'reject', random?: () => number) =>
  evaluateInbound(observed, facts, fakeDns(zone), random === undefined ? { enforcement } : { enforcement, random });

describe('results', () => {
  it('no DMARC record (NXDOMAIN, NODATA) is dmarc=none, not temperror', async () => {
    const nobody = 'From: someone@nodmarc.example\r\nSubject: x\r\n\r\nbody\r\n';
    const facts = { ...FACTS, mailFrom: 'someone@nodmarc.example' };
    expect((await run(observe(nobody), facts, GOOD)).dmarc?.result).toBe('none');
    const nodata: Zone = { txt: { '_dmarc.nodmarc.example': { error: 'nodata' } } };
    expect((await run(observe(nobody), facts, nodata)).dmarc?.result).toBe('none');
    const temp: Zone = { txt: { '_dmarc.nodmarc.example': { error: 'temp' } } };
    expect((await run(observe(nobody), facts, temp)).dmarc?.result).toBe('temperror');
  });

  it('spf, dkim and dmarc pass', async () => {
    const v = await run(observe(signedBy(PLAIN)), FACTS, GOOD);
    expect([v.spf.result, v.dkim.map((r) => r.result), v.dmarc?.result, v.action]).toEqual(['pass', ['pass'], 'pass', 'accept']);
    const h = v.header.toString('latin1');
    expect(h).toMatch(/^Authentication-Results: mx\.petrel\.test;\r\n\tspf=pass smtp\.mailfrom=alice@example\.org;/);
    expect(h).toMatch(/dkim=pass header\.d=example\.org header\.s=ed header\.b=\S{8};/);
    expect(h).toMatch(/dmarc=pass \(p=reject\) header\.from=example\.org\r\n$/);
    expect(v.logFields).toEqual({ spf: 'pass', spf_domain: 'example.org', dkim: [{ d: 'example.org', result: 'pass' }], dmarc: 'pass', dmarc_applied: 'none', action: 'accept' });
  });

  it('an unsigned message: dkim=none; dmarc passes on aligned SPF', async () => {
    const v = await run(observe(PLAIN), FACTS, GOOD);
    expect(v.header.toString()).toMatch(/dkim=none/);
    expect([v.dkim.length, v.dmarc?.result, v.dmarc?.spfAligned]).toEqual([0, 'pass', true]);
  });

  it('a tampered body: dkim=fail with a reason', async () => {
    const signed = signedBy(PLAIN).toString('latin1').replace('Hello', 'Hullo');
    const v = await run(observe(signed), FACTS, GOOD);
    expect(v.dkim[0]?.result).toBe('fail');
    expect(v.header.toString()).toMatch(/dkim=fail reason="body hash does not match bh="/);
  });

  it('a passing third-party signature (RSA-1024) does not align, so a spoof still fails DMARC', async () => {
    const text = Buffer.from(PLAIN, 'latin1');
    const { fields, bodyOffset } = rawFields(text);
    const field = signMessage(fields, bodyHash(text.subarray(bodyOffset), 'relaxed', 'sha256'), { domain: 'relay.example', selector: 'rsa', privateKey: rsa, timestamp: NOW });
    const v = await run(observe(field + PLAIN), SPOOF, GOOD);
    expect([v.dkim[0]?.result, v.dmarc?.result, v.dmarc?.dkimAligned, v.action]).toEqual(['pass', 'fail', false, 'reject']);
    expect(v.header.toString()).toMatch(/dkim=pass header\.d=relay\.example/);
  });

  it('the null sender: SPF checks postmaster@HELO (RFC 7208 §2.3, §2.4)', async () => {
    const dns = fakeDns(GOOD);
    const v = await evaluateInbound(observe(PLAIN), { ...FACTS, mailFrom: '' }, dns, { enforcement: 'reject' });
    expect(v.spf.result).toBe('pass');
    expect(dns.asked).toContain('txt mail.example.org');
    expect(dns.asked).not.toContain('txt example.org');
    expect(v.header.toString()).toMatch(/spf=pass smtp\.helo=mail\.example\.org/);
  });
});

describe('action per enforcement', () => {
  const spoofed = observe('From: Bank <alerts@example.org>\r\nSubject: pay\r\n\r\nx\r\n');
  it.each([
    ['reject', 'reject'],
    ['quarantine', 'quarantine'],
    ['none', 'accept'],
  ] as const)('p=reject, enforcement %s → %s', async (enforcement, action) => {
    const v = await run(spoofed, SPOOF, GOOD, enforcement);
    expect([v.spf.result, v.dmarc?.result, v.dmarc?.applied, v.action]).toEqual(['pass', 'fail', 'reject', action]);
  });

  it('p=quarantine gives quarantine, even under reject', async () => {
    const v = await run(observe('From: q@quarantined.example\r\n\r\nx'), SPOOF, GOOD, 'reject');
    expect(v.action).toBe('quarantine');
  });

  it('pct sampling uses the injected random source (RFC 7489 §6.6.4)', async () => {
    const zone = { ...GOOD, txt: { ...GOOD.txt, '_dmarc.example.org': ['v=DMARC1; p=reject; pct=50'] } };
    expect((await run(spoofed, SPOOF, zone, 'reject', () => 0.1)).action).toBe('reject');
    expect((await run(spoofed, SPOOF, zone, 'reject', () => 0.9)).action).toBe('quarantine');
  });

  it('rejectReply: 550 5.7.1 for a reject, null otherwise', async () => {
    const r = rejectReply(await run(spoofed, SPOOF, GOOD, 'reject'));
    expect(r && [r.code, r.enhanced, r.lines[0]]).toEqual([550, '5.7.1', 'Message rejected by the DMARC policy of example.org']);
    expect(rejectReply(await run(spoofed, SPOOF, GOOD, 'quarantine'))).toBeNull();
  });
});

describe('From domains for DMARC (RFC 7489 §6.6.1)', () => {
  it.each([
    ['no From', 'Subject: x\r\n\r\nb', /no From domain/],
    ['a From without a domain', 'From: undisclosed-recipients\r\n\r\nb', /no From domain/],
    ['two domains in one From', 'From: a@example.org, b@evil.example\r\n\r\nb', /2 From domains/],
    ['two From fields', 'From: a@example.org\r\nFrom: b@evil.example\r\n\r\nb', /2 From domains/],
  ])('%s: permerror, never a reject', async (_n, text, why) => {
    const v = await run(observe(text), SPOOF, GOOD, 'reject');
    expect([v.dmarc?.result, v.action]).toEqual(['permerror', 'accept']);
    expect(v.dmarc?.reason).toMatch(why);
    expect(v.header.toString()).toMatch(/dmarc=permerror/);
  });

  it('a header section too large to observe: dkim and dmarc permerror', async () => {
    const v = await run(null, SPOOF, GOOD, 'reject');
    expect([v.spf.result, v.dkim.map((r) => r.result), v.dmarc?.result, v.action]).toEqual(['pass', ['permerror'], 'permerror', 'accept']);
    expect(v.header.toString()).toMatch(/dkim=permerror reason="header section too large"/);
  });
});

describe('DNS failures: temperror, never a reject', () => {
  const spoofed = observe(signedBy(PLAIN).toString('latin1').replace('Hello', 'Bye'));
  it.each(['throw', 'reject', 'garbage', { error: 'temp' }] as const)('every lookup answers %j', async (b) => {
    const dns = fakeDns({ txt: new Proxy({}, { get: () => b }), key: new Proxy({}, { get: () => b }) });
    const v = await evaluateInbound(spoofed, SPOOF, dns, { enforcement: 'reject' });
    expect([v.spf.result, v.dkim[0]?.result, v.dmarc?.result, v.action]).toEqual(['temperror', 'temperror', 'temperror', 'accept']);
    expect(v.header.toString()).toMatch(/^Authentication-Results: mx\.petrel\.test;[^]*\r\n$/);
  });

  it('only the DMARC record lookup fails: temperror, accepted', async () => {
    const v = await run(observe('From: a@example.org\r\n\r\nx'), SPOOF, { ...GOOD, txt: { ...GOOD.txt, '_dmarc.example.org': { error: 'temp' } } });
    expect([v.dmarc?.result, v.action]).toEqual(['temperror', 'accept']);
  });

  it('key lookups: missing → permerror, temporary → temperror', async () => {
    const signed = observe(signedBy(PLAIN));
    expect((await run(signed, FACTS, { ...GOOD, key: {} })).dkim[0]?.result).toBe('permerror');
    expect((await run(signed, FACTS, { ...GOOD, key: { 'ed._domainkey.example.org': { error: 'servfail' } } })).dkim[0]?.result).toBe('temperror');
  });
});

describe('hostile DNS answers', () => {
  const signed = observe(signedBy(PLAIN));
  const huge = `v=DKIM1; k=ed25519; p=${'A'.repeat(1 << 20)}`;

  it('a huge key record is a permerror', async () => {
    const v = await run(signed, FACTS, { ...GOOD, key: { 'ed._domainkey.example.org': huge } });
    expect(v.dkim[0]).toMatchObject({ result: 'permerror', reason: expect.stringMatching(/key record over/) });
  });

  it('a TXT record that is not a DKIM key is a permerror', async () => {
    const v = await run(signed, FACTS, { ...GOOD, key: { 'ed._domainkey.example.org': 'v=spf1 -all' } });
    expect(v.dkim[0]?.result).toBe('permerror');
  });

  it('huge SPF and DMARC TXT answers are survived', async () => {
    const zone: Zone = { ...GOOD, txt: { ...GOOD.txt, 'example.org': [`v=spf1 ${'ip4:10.0.0.1 '.repeat(5_000)}-all`], '_dmarc.example.org': [`v=DMARC1; p=reject; ${'x'.repeat(1 << 20)}`, 'junk'.repeat(1000)] } };
    const v = await run(signed, FACTS, zone);
    expect(v.spf.result).toBe('fail'); // 5,000 ip4 terms need no lookups (RFC 7208 §4.6.4); none matches
    expect(v.dkim[0]?.result).toBe('pass');
    expect(['none', 'permerror', 'pass']).toContain(v.dmarc?.result);
    expect(v.action).toBe('accept');
  });

  it('a forged Authentication-Results is gone and ours is the only one with our id', async () => {
    const o = observe(`Authentication-Results: ${OURS}; dmarc=pass\r\n${PLAIN}`);
    expect(o.removedAuthResults).toBe(1);
    const v = await run(o, SPOOF, GOOD);
    expect(v.header.toString()).toMatch(/^Authentication-Results: mx\.petrel\.test;/);
  });
});

describe('never throws; only a DMARC fail rejects', () => {
  const behaviour = fc.constantFrom<Behaviour<never> | 'ok' | 'temp'>('ok', 'temp', 'throw', 'reject', 'garbage');
  const messages = [observe(signedBy(PLAIN)), observe('From: Bank <alerts@example.org>\r\n\r\nx'), observe('From: a@b.example, c@d.example\r\n\r\n'), null];
  it('for any mix of DNS behaviours', async () => {
    await fc.assert(fc.asyncProperty(behaviour, behaviour, behaviour, fc.constantFrom(...messages), fc.constantFrom<Enforcement>('reject', 'quarantine', 'none'), fc.constantFrom(FACTS, SPOOF, { ...FACTS, mailFrom: '' }), async (spf, dmarc, key, msg, enforcement, facts) => {
      const pick = <T>(b: string, ok: T): Behaviour<T> => (b === 'ok' ? ok : b === 'temp' ? ({ error: 'temp' } as T) : (b as Behaviour<T>));
      const txt: Record<string, Behaviour<readonly string[] | { error: 'temp' }>> = {};
      for (const [name, rec] of Object.entries(GOOD.txt ?? {})) txt[name] = pick(name.startsWith('_dmarc') ? dmarc : spf, rec as readonly string[]);
      const keyRec = pick(key, recordFor(ed));
      const v = await run(msg, facts, { txt, key: { 'ed._domainkey.example.org': keyRec } }, enforcement);
      const h = v.header.toString('latin1');
      expect(h.startsWith(`Authentication-Results: ${OURS};`) && h.endsWith('\r\n')).toBe(true);
      expect(h.slice(0, -2)).not.toMatch(/\r\n(?![ \t])/); // one field, folded only
      if (v.action === 'reject') expect([v.dmarc?.result, enforcement]).toEqual(['fail', 'reject']);
      if (v.dmarc?.result !== 'fail') expect(v.action).toBe('accept');
    }), { numRuns: 150 });
  });
});
