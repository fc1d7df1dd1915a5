/**
 * DKIM signing and verification together (RFC 6376 §5, §6; RFC 8463; RFC 8301):
 * published signatures re-derived byte for byte, sign → verify round trips
 * with keys generated here, re-folding that relaxed canonicalization allows,
 * tampering, over-signed From, the clock (t=, x=) and key record rules.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyHasher, rawFields, withoutB, type Canon } from '../src/auth/dkim/canon';
import { parseKeyRecord } from '../src/auth/dkim/key-record';
import { signData, signMessage, type SignOptions } from '../src/auth/dkim/sign';
import { parseSignature } from '../src/auth/dkim/signature';
import { unfoldValue, verifyMessage, type VerifyOptions } from '../src/auth/dkim/verify';

const KEYS = '/work/shared/corpus/dkim/keys';
const NOW = 1_767_225_600;
const RUNS = { numRuns: 25 };

function ed25519FromSeed(seedB64: string): KeyObject {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedB64.trim(), 'base64')]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

function recordFor(priv: KeyObject): string {
  const pub = createPublicKey(priv);
  if (pub.asymmetricKeyType === 'ed25519') return `v=DKIM1; k=ed25519; p=${pub.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
  return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
}

/** Signs `message` (CRLF bytes) and returns the signed message. */
function signBytes(message: Buffer, opts: Omit<SignOptions, 'domain' | 'selector'> & { domain?: string; selector?: string }): Buffer {
  const { fields, bodyOffset } = rawFields(message);
  const h = new BodyHasher(opts.bodyCanon ?? 'relaxed', 'sha256');
  h.push(message.subarray(bodyOffset));
  const field = signMessage(fields, h.end(), { domain: 'example.org', selector: 'sel', ...opts });
  return Buffer.concat([Buffer.from(field, 'latin1'), message]);
}

function verifyBytes(message: Buffer, record: string, opts: Partial<VerifyOptions> = {}): string[] {
  const { fields, bodyOffset } = rawFields(message);
  return verifyMessage(message, fields, bodyOffset, () => record, { now: NOW, ...opts }).map((r) => ('reason' in r ? `${r.result}: ${r.reason}` : r.result));
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const keys = [['rsa', rsa], ['ed25519', ed]] as const;
const canons: Canon[] = ['simple', 'relaxed'];

describe('published signatures re-derived byte for byte', () => {
  const cases = [
    ['rfc8463-a3', [ed25519FromSeed(readFileSync(`${KEYS}/rfc8463-brisbane-ed25519.seed.b64`, 'latin1')), createPrivateKey(readFileSync(`${KEYS}/rfc8463-test-rsa.pem`))]],
    ['rfc6376-a2', [createPrivateKey(readFileSync(`${KEYS}/rfc6376-brisbane-rsa.pem`))]],
  ] as const;
  it.each(cases)('%s', (name, privs) => {
    const message = readFileSync(`/work/shared/corpus/dkim/cases/${name}/message.eml`);
    const { fields } = rawFields(message);
    const sigFields = fields.filter((f) => f.name.toLowerCase() === 'dkim-signature');
    expect(sigFields.length).toBe(privs.length);
    sigFields.forEach((f, i) => {
      const p = parseSignature(unfoldValue(f.raw));
      if (!p.ok) throw new Error(p.reason);
      const priv = privs[i];
      if (priv === undefined) throw new Error('no key');
      const b = signData(fields.filter((x) => x !== f), withoutB(f.raw), p.sig.signedHeaders, p.sig.headerCanon, priv);
      expect(b.toString('base64')).toBe(p.sig.signature.toString('base64'));
    });
  });
});

describe('signing the corpus unsigned messages with the corpus keys', () => {
  const keyFile = JSON.parse(readFileSync(`${KEYS}/keys.json`, 'utf8')) as { keys: Record<string, { selector: string; domain: string; dns: string }> };
  const jobs = [
    ['rfc8463-test-rsa.pem', 'rfc8463-unsigned.eml'],
    ['rfc8463-brisbane-ed25519.seed.b64', 'rfc8463-unsigned.eml'],
    ['rfc6376-brisbane-rsa.pem', 'rfc8463-unsigned.eml'],
    ['dkimpy-example-net-ed25519.seed.b64', 'dkimpy-unsigned.eml'],
  ] as const;
  for (const [keyName, msg] of jobs) {
    for (const hc of canons) {
      for (const bc of canons) {
        it(`${keyName} ${hc}/${bc}`, () => {
          const k = keyFile.keys[keyName];
          if (k === undefined) throw new Error(keyName);
          const text = readFileSync(`${KEYS}/${keyName}`, 'latin1');
          const priv = keyName.endsWith('.pem') ? createPrivateKey(text) : ed25519FromSeed(text);
          const raw = readFileSync(`${KEYS}/${msg}`);
          const wire = raw.includes(0x0d) ? raw : Buffer.from(raw.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
          const signed = signBytes(wire, { privateKey: priv, domain: k.domain, selector: k.selector, headerCanon: hc, bodyCanon: bc });
          expect(verifyBytes(signed, k.dns)).toEqual(['pass']);
        });
      }
    }
  }
});

const headerArb = fc.record({
  subject: fc.stringMatching(/^[ -~]{0,90}$/),
  to: fc.constantFrom('bob@example.net', 'Bob <bob@example.net>, carol@example.com'),
  extra: fc.constantFrom('', 'X-Note: unsigned\r\n', 'Cc: dan@example.net\r\n'),
});
const bodyArb = fc.array(fc.constantFrom('text', ' ', '\t', '\r\n', '\xe9', '.'), { maxLength: 30 }).map((x) => x.join(''));

function message(h: { subject: string; to: string; extra: string }, body: string): Buffer {
  return Buffer.from(`From: Alice <alice@example.org>\r\nTo: ${h.to}\r\nSubject: ${h.subject}\r\nDate: Sat, 28 Nov 2026 08:00:00 +0000\r\n${h.extra}\r\n${body}`, 'latin1');
}

describe('sign → verify', () => {
  it.each(keys)('round trip with a generated %s key, every canonicalization', (_n, priv) => {
    fc.assert(fc.property(headerArb, bodyArb, fc.constantFrom(...canons), fc.constantFrom(...canons), (h, body, hc, bc) => {
      const signed = signBytes(message(h, body), { privateKey: priv, headerCanon: hc, bodyCanon: bc });
      expect(verifyBytes(signed, recordFor(priv))).toEqual(['pass']);
    }), RUNS);
  });

  it('emits a folded field with From over-signed and b= last', () => {
    const signed = signBytes(message({ subject: 'x'.repeat(200), to: 'bob@example.net', extra: '' }, 'hi\r\n'), { privateKey: rsa, timestamp: NOW });
    const field = signed.toString('latin1').split(/\r\n(?![ \t])/)[0] ?? '';
    expect(field.split('\r\n').every((l) => l.length <= 78)).toBe(true);
    expect(field).toMatch(/h=from:/);
    expect(unfoldValue(field).replace(/\s/g, '')).toMatch(/h=from:from:subject:date:to;bh=[^;]+;b=[^;]+$/);
  });

  const refoldArb = fc.record({ hdr: fc.constantFrom(' ', '  ', '\t', '\r\n\t', '\r\n  '), trail: fc.constantFrom('', ' ', '\t '), lines: fc.nat(3), bws: fc.constantFrom(' ', '\t', '   ') });
  it('a relaxed/relaxed signature survives any re-folding relaxed allows', () => {
    fc.assert(fc.property(headerArb, bodyArb, refoldArb, fc.constantFrom(...keys), (h, body, r, [, priv]) => {
      const signed = signBytes(message(h, body), { privateKey: priv }).toString('latin1');
      const split = signed.indexOf('\r\n\r\n');
      const head = signed.slice(0, split + 2).replace(/^(Subject|To):[ ]?/gm, (_m, n: string) => `${n.toUpperCase()} :${r.hdr}`).replace(/(?<! )\r\n(?=[A-Z])/g, `${r.trail}\r\n`);
      const newBody = signed.slice(split + 4).replace(/ /g, r.bws).replace(/\r\n/g, `${r.trail}\r\n`) + '\r\n'.repeat(r.lines);
      expect(verifyBytes(Buffer.from(`${head}\r\n${newBody}`, 'latin1'), recordFor(priv))).toEqual(['pass']);
    }), RUNS);
  });

  it('tampering with any signed header or body byte breaks it', () => {
    fc.assert(fc.property(headerArb, bodyArb, fc.nat(), fc.boolean(), fc.constantFrom(...keys), fc.constantFrom(...canons), (h, body, pos, inBody, [, priv], c) => {
      const signed = signBytes(message(h, `${body}z`), { privateKey: priv, headerCanon: c, bodyCanon: c }).toString('latin1');
      const split = signed.indexOf('\r\n\r\n') + 4;
      const sigEnd = signed.search(/\r\n(?![ \t])/) + 2;
      // A non-WSP byte of the body, or a byte of a signed field's value (From, To, Subject, Date).
      const targets = inBody ? [...signed.slice(split)].flatMap((ch, i) => (/[^ \t\r\n]/.test(ch) ? [split + i] : [])) : headerValuePositions(signed, sigEnd);
      const at = targets[pos % targets.length] ?? 0;
      const tampered = signed.slice(0, at) + (signed[at] === 'q' ? 'Q' : 'q') + signed.slice(at + 1);
      expect(verifyBytes(Buffer.from(tampered, 'latin1'), recordFor(priv))[0]).toMatch(/^fail/);
    }), RUNS);
  });

  it('a second From added after signing breaks it (over-signing, RFC 6376 §8.15)', () => {
    const signed = signBytes(message({ subject: 's', to: 'bob@example.net', extra: '' }, 'hi\r\n'), { privateKey: ed });
    const added = Buffer.concat([signed.subarray(0, signed.indexOf('\r\n\r\n') + 2), Buffer.from('From: mallory@evil.example\r\n'), signed.subarray(signed.indexOf('\r\n\r\n') + 2)]);
    expect(verifyBytes(signed, recordFor(ed))).toEqual(['pass']);
    expect(verifyBytes(added, recordFor(ed))[0]).toMatch(/^fail/);
  });
});

/** Offsets of non-WSP bytes inside the values of From/To/Subject/Date, past the signature field. */
function headerValuePositions(text: string, from: number): number[] {
  const out: number[] = [];
  const re = /^(From|To|Subject|Date):([^\r]*)/gm;
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const valueStart = m.index + (m[1] ?? '').length + 1;
    for (let i = 0; i < (m[2] ?? '').length; i++) if (/[^ \t]/.test(text[valueStart + i] ?? ' ')) out.push(valueStart + i);
    if (text.startsWith('\r\n\r\n', m.index + m[0].length)) break;
  }
  return out;
}

describe('clock and key rules', () => {
  const msg = message({ subject: 's', to: 'bob@example.net', extra: '' }, 'hi\r\n');
  it('x= in the past is a permerror; t= in the future beyond the skew too', () => {
    expect(verifyBytes(signBytes(msg, { privateKey: ed, timestamp: NOW - 100, expiration: NOW - 1 }), recordFor(ed))[0]).toMatch(/^permerror: signature expired/);
    expect(verifyBytes(signBytes(msg, { privateKey: ed, timestamp: NOW - 100, expiration: NOW + 1 }), recordFor(ed))).toEqual(['pass']);
    expect(verifyBytes(signBytes(msg, { privateKey: ed, timestamp: NOW + 3600 }), recordFor(ed))[0]).toMatch(/^permerror: .*future/);
    expect(verifyBytes(signBytes(msg, { privateKey: ed, timestamp: NOW + 60 }), recordFor(ed))).toEqual(['pass']);
  });
  it('refuses RSA keys under 1024 bits (RFC 8301 §3.2) unless told otherwise', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey;
    const signed = signBytes(msg, { privateKey: small });
    expect(verifyBytes(signed, recordFor(small))[0]).toMatch(/^permerror: RSA key of 512 bits/);
    expect(verifyBytes(signed, recordFor(small), { minRsaBits: 512 })).toEqual(['pass']);
  });
  it('revoked, missing, wrong-type and DNS-failed keys', () => {
    const signed = signBytes(msg, { privateKey: ed });
    expect(verifyBytes(signed, 'v=DKIM1; k=ed25519; p=')[0]).toMatch(/^permerror: key revoked/);
    expect(verifyBytes(signed, recordFor(rsa))[0]).toMatch(/^permerror: key type rsa/);
    const { fields, bodyOffset } = rawFields(signed);
    expect(verifyMessage(signed, fields, bodyOffset, () => null, { now: NOW })[0]?.result).toBe('permerror');
    expect(verifyMessage(signed, fields, bodyOffset, () => ({ error: 'timeout' }), { now: NOW })[0]?.result).toBe('temperror');
  });
  it('l= signs a prefix: appended body text still passes, a shorter body fails', () => {
    const signed = signBytes(msg, { privateKey: ed, bodyLength: true });
    expect(verifyBytes(Buffer.concat([signed, Buffer.from('appended\r\n')]), recordFor(ed))).toEqual(['pass']);
    expect(verifyBytes(signed.subarray(0, signed.length - 4), recordFor(ed))[0]).toMatch(/^fail/);
  });
  it.each([
    ['v=1; a=rsa-sha256; b=YQ==; bh=YQ==; d=example.org; h=to; s=s', /From/],
    ['v=1; a=rsa-sha256; b=YQ==; bh=YQ==; d=example.org; h=from; s=s; i=a@evil.example', /i=/],
    ['v=1; a=rsa-sha256; b=YQ==; bh=YQ==; d=example.org; h=from; s=s; t=10; x=5', /x=/],
    ['v=1; a=rsa-md5; b=YQ==; bh=YQ==; d=example.org; h=from; s=s', /algorithm/],
    ['v=1; a=rsa-sha256; b=YQ==; bh=YQ==; d=example.org; h=from', /s=/],
    ['v=1; a=rsa-sha256; b=Y!Q==; bh=YQ==; d=example.org; h=from; s=s', /b=/],
  ])('parseSignature refuses %s', (text, why) => {
    const r = parseSignature(text);
    expect(r.ok ? 'ok' : r.reason).toMatch(why);
  });
  it('parseSignature decodes i= quoted-printable and accepts a subdomain', () => {
    const r = parseSignature('v=1; a=rsa-sha256; b=YQ==; bh=YQ==; d=Example.org; h=From; s=s; i=a=3Db@mail.example.org');
    expect(r.ok && [r.sig.identity, r.sig.domain, r.sig.signedHeaders]).toEqual(['a=b@mail.example.org', 'example.org', ['from']]);
  });
  it('parseKeyRecord never throws on arbitrary text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (s) => {
      parseKeyRecord(s);
      parseKeyRecord(`v=DKIM1; p=${s}`);
    }), { numRuns: 100 });
  });
});
