/**
 * Outbound signing of an observed message (src/auth/outbound-sign.ts): the
 * field + the stored bytes verify with verify.ts whatever the chunking, for
 * RSA-2048 and Ed25519 keys (RFC 6376 §5, RFC 8463); tampering with any
 * signed byte breaks the signature, re-folding that relaxed canonicalization
 * allows does not (§3.4.2, §3.4.4); no key, no From or several From domains
 * mean no signature, with a reason.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rawFields } from '../src/auth/dkim/canon';
import type { SigningKey } from '../src/auth/dkim/keys';
import { unfoldValue, verifyMessage } from '../src/auth/dkim/verify';
import { MessageObserver } from '../src/auth/message-observer';
import { signObserved } from '../src/auth/outbound-sign';
import { splitAt } from './helpers/chunks';

const NOW = 1_767_225_600;
const RUNS = { numRuns: 25 };

function key(domain: string, selector: string, privateKey: KeyObject): SigningKey {
  const ed = privateKey.asymmetricKeyType === 'ed25519';
  return { domain, selector, privateKey, algorithm: ed ? 'ed25519-sha256' : 'rsa-sha256', bits: ed ? 256 : 2048, keyFile: `${selector}.pem` };
}

const rsaKey = key('example.org', 'r2048', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
const edKey = key('example.net', 'ed', generateKeyPairSync('ed25519').privateKey);
const KEYS = [rsaKey, edKey];

/** RFC 6376 §3.6.1 / RFC 8463 §4.2 record for a key, written here independently of keys.ts. */
function recordFor(priv: KeyObject): string {
  const pub = createPublicKey(priv);
  if (pub.asymmetricKeyType === 'ed25519') return `v=DKIM1; k=ed25519; p=${pub.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
  return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
}

const DNS = new Map(KEYS.map((k) => [`${k.selector}._domainkey.${k.domain}`, recordFor(k.privateKey)]));

/** Observes `message` in the given chunks and signs it: the bytes as they would be delivered, or the skip. */
function signVia(message: Buffer, cuts: readonly number[] = [], keys: readonly SigningKey[] = KEYS): { final: Buffer; field: string } | { skip: string } {
  const o = new MessageObserver({ authservId: 'mx.petrel.test', verify: false, sign: true });
  const stored = [...splitAt(message, cuts).flatMap((c) => o.push(c)), ...o.end()];
  const observed = o.observed;
  if (observed === null) throw new Error('not observed');
  const out = signObserved(observed, keys, NOW);
  if ('skip' in out) return out;
  return { final: Buffer.concat([out.field, ...stored]), field: out.field.toString('latin1') };
}

function verify(final: Buffer): string[] {
  const { fields, bodyOffset } = rawFields(final);
  return verifyMessage(final, fields, bodyOffset, (name) => DNS.get(name) ?? null, { now: NOW }).map((r) => ('reason' in r ? `${r.result}: ${r.reason}` : r.result));
}

function signed(message: Buffer, cuts: readonly number[] = []): { final: Buffer; field: string } {
  const out = signVia(message, cuts);
  if ('skip' in out) throw new Error(out.skip);
  return out;
}

const headerArb = fc.record({
  from: fc.constantFrom('Alice <alice@example.org>', 'bob@mail.example.org', '"Ed" <ed@Example.NET>'),
  subject: fc.stringMatching(/^[ -~]{0,90}$/),
  to: fc.constantFrom('bob@example.com', 'Bob <bob@example.com>, carol@example.com'),
  extra: fc.constantFrom('', 'X-Mailer: unsigned\r\n', 'Cc: dan@example.com\r\n'),
});
const bodyArb = fc.array(fc.constantFrom('text', ' ', '\t', '\r\n', '\xe9', '.', '\r\n\r\n'), { maxLength: 30 }).map((x) => x.join(''));
type Head = { from: string; subject: string; to: string; extra: string };

function message(h: Head, body: string): Buffer {
  return Buffer.from(`From: ${h.from}\r\nTo: ${h.to}\r\nSubject: ${h.subject}\r\nDate: Sat, 28 Nov 2026 08:00:00 +0000\r\n${h.extra}\r\n${body}`, 'latin1');
}

describe('sign → verify on the delivered bytes', () => {
  it('passes for RSA-2048 and Ed25519 keys, whatever the chunking', () => {
    fc.assert(fc.property(headerArb, bodyArb, fc.array(fc.nat(400), { maxLength: 8 }), (h, body, cuts) => {
      const { final } = signed(message(h, body), cuts);
      expect(verify(final)).toEqual(['pass']);
    }), RUNS);
  });

  it('the field names the key, the algorithm and the time', () => {
    const cases = [['alice@example.org', rsaKey, 'rsa-sha256'], ['ed@example.net', edKey, 'ed25519-sha256']] as const;
    for (const [from, k, a] of cases) {
      const { field } = signed(message({ from, subject: 's', to: 'x@example.com', extra: '' }, 'hi\r\n'));
      const value = unfoldValue(field).replace(/\s/g, '');
      expect(field.startsWith('DKIM-Signature:') && field.endsWith('\r\n')).toBe(true);
      expect(value).toContain(`a=${a};`);
      expect(value).toContain(`d=${k.domain};s=${k.selector};t=${NOW};`);
      expect(value).toMatch(/h=from:from:subject:date:to;/); // From over-signed (RFC 6376 §8.15)
    }
  });

  it('a subdomain author is signed by the parent domain key (RFC 7489 §3.1.1 relaxed alignment)', () => {
    const { final, field } = signed(message({ from: 'x@mail.example.org', subject: 's', to: 'y@example.com', extra: '' }, 'b\r\n'));
    expect(unfoldValue(field)).toMatch(/d=example\.org/);
    expect(verify(final)).toEqual(['pass']);
  });
});

/** Offsets of non-WSP bytes inside the values of From/To/Subject/Date, after the signature field. */
function signedValuePositions(text: string, from: number): number[] {
  const out: number[] = [];
  const re = /^(From|To|Subject|Date):([^\r]*)/gm;
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const valueStart = m.index + (m[1] ?? '').length + 1;
    for (let i = 0; i < (m[2] ?? '').length; i++) if (/[^ \t]/.test(text[valueStart + i] ?? ' ')) out.push(valueStart + i);
  }
  return out;
}

describe('tampering and re-folding', () => {
  it('changing any signed header byte or body byte breaks it', () => {
    fc.assert(fc.property(headerArb, bodyArb, fc.nat(), fc.boolean(), (h, body, pos, inBody) => {
      const { final, field } = signed(message(h, `${body}z`));
      const text = final.toString('latin1');
      const split = text.indexOf('\r\n\r\n') + 4;
      const targets = inBody
        ? [...text.slice(split)].flatMap((ch, i) => (/[^ \t\r\n]/.test(ch) ? [split + i] : []))
        : signedValuePositions(text.slice(0, split), field.length);
      const at = targets[pos % targets.length] ?? 0;
      const tampered = text.slice(0, at) + (text[at] === 'q' ? 'Q' : 'q') + text.slice(at + 1);
      expect(verify(Buffer.from(tampered, 'latin1'))[0]).toMatch(/^fail/);
    }), RUNS);
  });

  it('changing an unsigned field does not', () => {
    const { final } = signed(message({ from: 'a@example.net', subject: 's', to: 't@example.com', extra: 'X-Mailer: one\r\n' }, 'b\r\n'));
    expect(verify(Buffer.from(final.toString('latin1').replace('X-Mailer: one', 'X-Mailer: two'), 'latin1'))).toEqual(['pass']);
  });

  const refoldArb = fc.record({ ws: fc.constantFrom(' ', '  ', '\t', '\r\n\t', '\r\n  '), trail: fc.constantFrom('', ' ', '\t '), name: fc.boolean() });
  it('re-folding a signed field as relaxed canonicalization allows still verifies', () => {
    fc.assert(fc.property(headerArb, bodyArb, refoldArb, (h, body, r) => {
      const { final } = signed(message({ ...h, subject: `${h.subject} a b` }, body));
      const text = final.toString('latin1');
      const split = text.indexOf('\r\n\r\n') + 2;
      const head = text
        .slice(0, split)
        .replace(/^(Subject|To|From):([^\r]*)\r\n/gm, (_m, n: string, v: string) => `${r.name ? n.toUpperCase() : n}:${v.replace(/ /g, r.ws)}${r.trail}\r\n`);
      expect(verify(Buffer.from(head + text.slice(split), 'latin1'))).toEqual(['pass']);
    }), RUNS);
  });
});

describe('no signature, with a reason', () => {
  const skip = (text: string, keys: readonly SigningKey[] = KEYS): string => {
    const out = signVia(Buffer.from(text, 'latin1'), [], keys);
    return 'skip' in out ? out.skip : 'signed';
  };

  it.each([
    ['no From field', 'To: a@example.com\r\n\r\nb', /no From field/],
    ['several From domains', 'From: a@example.org, b@example.net\r\n\r\nb', /several From domains/],
    ['two From fields', 'From: a@example.org\r\nFrom: b@example.org\r\n\r\nb', /2 From fields/],
    ['a From without a domain', 'From: undisclosed\r\n\r\nb', /no domain/],
    ['no key for the domain', 'From: a@example.com\r\n\r\nb', /no DKIM key for example\.com/],
    ['a lookalike of a keyed domain', 'From: a@evilexample.org\r\n\r\nb', /no DKIM key/],
  ])('%s', (_name, text, why) => {
    expect(skip(text)).toMatch(why);
  });

  it('an empty key list', () => {
    expect(skip('From: a@example.org\r\n\r\nb', [])).toMatch(/no DKIM key/);
  });

  it('a key type DKIM cannot use is a skip, not an exception', () => {
    const ec = key('example.org', 'ec', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    expect(skip('From: a@example.org\r\n\r\nb', [ec])).toMatch(/failed/);
  });

  it('a body not hashed for signing', () => {
    const o = new MessageObserver({ authservId: 'mx', verify: true, sign: false });
    o.push(Buffer.from('From: a@example.org\r\n\r\nb'));
    o.end();
    const observed = o.observed;
    expect(observed && signObserved(observed, KEYS, NOW)).toEqual({ skip: 'the body was not hashed for signing' });
  });
});
