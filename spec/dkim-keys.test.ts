/**
 * DKIM signing keys (src/auth/dkim/keys.ts): which configured domain signs
 * a sender's domain (exact, else nearest parent at a label boundary), the
 * TXT character-string split (RFC 1035 §3.3: at most 255 octets each), the
 * published record read back by the verifier's parser (RFC 6376 §3.6.1,
 * RFC 8463 §4.2), and the keys a signer must refuse (RFC 8301).
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseKeyRecord } from '../src/auth/dkim/key-record';
import {
  characterStrings,
  DkimKeyError,
  keyForDomain,
  keysForDomain,
  matchSigningDomain,
  publicKeyRecord,
  signingKeyFrom,
  zoneFileRecord,
  type SigningKey,
} from '../src/auth/dkim/keys';

const entry = { domain: 'example.com', selector: 'sel', keyFile: '/k/test.key' };
const pemOf = (k: KeyObject, type: 'pkcs8' | 'pkcs1' = 'pkcs8'): string => k.export({ format: 'pem', type }).toString();
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;

describe('matchSigningDomain', () => {
  const label = fc.constantFrom('a', 'b', 'mail', 'ex-1', 'com');
  const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));

  /** Oracle: the longest configured name the sender's domain equals or ends with after a dot. */
  const oracle = (configured: string[], domain: string): string | null => {
    const fits = configured.filter((c) => domain === c || domain.endsWith(`.${c}`));
    return fits.sort((x, y) => y.length - x.length)[0] ?? null;
  };

  it('agrees with the longest-suffix-at-a-label-boundary oracle, whatever the case', () => {
    fc.assert(
      fc.property(fc.array(name, { maxLength: 5 }), name, fc.boolean(), (configured, domain, upper) => {
        const asked = upper ? domain.toUpperCase() : domain;
        expect(matchSigningDomain(configured, asked)).toBe(oracle(configured, domain));
      }),
    );
  });

  it('examples: exact first, then the nearest parent, never across a label', () => {
    const configured = ['example.com', 'mail.example.com'];
    expect(matchSigningDomain(configured, 'example.com')).toBe('example.com');
    expect(matchSigningDomain(configured, 'a.mail.example.com')).toBe('mail.example.com');
    expect(matchSigningDomain(configured, 'lists.example.com')).toBe('example.com');
    expect(matchSigningDomain(configured, 'Example.COM.')).toBe('example.com');
    expect(matchSigningDomain(configured, 'badexample.com')).toBeNull();
    expect(matchSigningDomain(configured, 'com')).toBeNull();
    expect(matchSigningDomain(['xn--bcher-kva.example'], 'mail.bücher.example')).toBe('xn--bcher-kva.example');
  });
});

describe('keyForDomain / keysForDomain', () => {
  const key = (domain: string, selector: string, k: KeyObject): SigningKey => signingKeyFrom({ domain, selector, keyFile: '/k' }, pemOf(k));
  const keys = [key('example.com', 'rsa', rsa1024), key('other.org', 'x', ed), key('example.com', 'ed', ed)];

  it('every key of the matching domain, in configuration order (RSA and Ed25519 both sign, RFC 8463)', () => {
    expect(keysForDomain(keys, 'mail.example.com').map((k) => k.selector)).toEqual(['rsa', 'ed']);
    expect(keyForDomain(keys, 'MAIL.example.com')?.selector).toBe('rsa');
    expect(keyForDomain(keys, 'example.net')).toBeNull();
  });

  it('d= stays the configured domain, not the sender subdomain', () => {
    expect(keyForDomain(keys, 'deep.sub.other.org')?.domain).toBe('other.org');
  });
});

describe('characterStrings (RFC 1035 §3.3)', () => {
  it('pieces of at most 255 octets, none empty, that join back to the text', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'B', '+', '/', '=', ';', ' '), maxLength: 1200 }), (text) => {
        const parts = characterStrings(text);
        expect(parts.join('')).toBe(text);
        expect(parts.every((p) => p.length <= 255)).toBe(true);
        expect(parts.length).toBe(Math.max(1, Math.ceil(text.length / 255)));
        if (text.length > 0) expect(parts.every((p) => p.length > 0)).toBe(true);
      }),
    );
  });

  it('zone-file form quotes each piece inside parentheses', () => {
    const text = `v=DKIM1; k=rsa; p=${'A'.repeat(300)}`;
    const zone = zoneFileRecord('s', 'example.com', text);
    expect(zone.startsWith('s._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=')).toBe(true);
    expect([...zone.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('')).toBe(text);
    expect(zone.endsWith('" )')).toBe(true);
  });
});

describe('publicKeyRecord read back by the verifier (RFC 6376 §3.6.1, RFC 8463 §4.2)', () => {
  it.each([
    ['rsa', rsa1024, 1024],
    ['ed25519', ed, 256],
  ] as const)('%s', (type, priv, bits) => {
    const record = publicKeyRecord(priv);
    const parsed = parseKeyRecord(record);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.key.keyType).toBe(type);
    expect(parsed.key.bits).toBe(bits);
    expect(parsed.key.key.equals(createPublicKey(priv))).toBe(true);
    expect(publicKeyRecord(parsed.key.key)).toBe(record);
  });

  it('an Ed25519 p= is 44 base64 characters, not the 60 of a SubjectPublicKeyInfo', () => {
    expect(/p=(.*)$/.exec(publicKeyRecord(ed))?.[1]).toHaveLength(44);
  });
});

describe('signingKeyFrom: what a signer accepts', () => {
  it('PKCS#8 and PKCS#1 RSA, PKCS#8 Ed25519', () => {
    expect(signingKeyFrom(entry, pemOf(rsa1024))).toMatchObject({ algorithm: 'rsa-sha256', bits: 1024, domain: 'example.com', selector: 'sel' });
    expect(signingKeyFrom(entry, pemOf(rsa1024, 'pkcs1')).algorithm).toBe('rsa-sha256');
    expect(signingKeyFrom(entry, pemOf(ed))).toMatchObject({ algorithm: 'ed25519-sha256', bits: 256 });
  });

  const refuse = (pem: string, why: RegExp): void => {
    expect(() => signingKeyFrom(entry, pem)).toThrow(DkimKeyError);
    expect(() => signingKeyFrom(entry, pem)).toThrow(why);
  };

  it('RSA under 1024 bits (RFC 8301 §3.2)', () => {
    refuse(pemOf(generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey), /512 bits.*RFC 8301/);
  });

  it('key types DKIM has no algorithm for', () => {
    refuse(pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), /ec key cannot sign DKIM/);
    refuse(pemOf(generateKeyPairSync('rsa-pss', { modulusLength: 1024 }).privateKey), /rsa-pss key/);
  });

  it('an encrypted key, a public key, and junk', () => {
    const encrypted = rsa1024.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }).toString();
    refuse(encrypted, /encrypted/);
    refuse(rsa1024.export({ format: 'pem', type: 'pkcs1', cipher: 'aes-128-cbc', passphrase: 'x' }).toString(), /encrypted/);
    refuse(generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString(), /not a PEM private key/);
    refuse('hello', /not a PEM private key/);
  });

  it('the error names the file and the domain', () => {
    expect(() => signingKeyFrom(entry, 'hello')).toThrow('/k/test.key for example.com');
  });
});
