// SASL decoding for SMTP AUTH (src/policy/auth.ts): RFC 4648 strict base64,
// RFC 4616 §2 PLAIN, the LOGIN prompts, RFC 4954 §4 exchange steps, and the
// RFC 4616 §2 authorization-identity rule.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authzidAllowed, decodeBase64, parsePlain, saslStep } from '../src/policy/auth';

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
/** A SASL field: 1..255 octets of UTF-8 without NUL (RFC 4616 §2). */
const field = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 255);

describe('RFC 4648 strict base64', () => {
  it('decodes whatever encodes: decode(encode(b)) = b', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
      expect(decodeBase64(b64(Buffer.from(u)))).toEqual(Buffer.from(u));
    }));
  });

  it('refuses every text that is not the one canonical encoding of its bytes', () => {
    // Node's own decoder would accept each of these (it skips or tolerates them): a smuggled meaning.
    for (const bad of ['YWJj ', 'YW Jj', 'YWJ', 'YWJjZA', 'YWJjZA=', 'YWJjZB==', 'YQ=a', '=YWJ', 'YWJj\t', 'YW-j', 'YW_j', 'YWJjZ===', '*']) {
      expect(decodeBase64(bad), bad).toBeNull();
    }
    expect(decodeBase64('')).toEqual(Buffer.alloc(0));
  });

  it('any string: either refused or exactly the encoding of what it decodes to', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => {
      const d = decodeBase64(s);
      if (d !== null) expect(b64(d)).toBe(s);
    }));
  });
});

describe('RFC 4616 §2 PLAIN: [authzid] NUL authcid NUL passwd', () => {
  it('round-trips any authzid (maybe empty), authcid and password', () => {
    fc.assert(fc.property(fc.option(field, { nil: '' }), field, field, (authzid, authcid, password) => {
      const step = saslStep('PLAIN', [b64(`${authzid}\0${authcid}\0${password}`)]);
      expect(step).toEqual({ kind: 'credentials', authzid, authcid, password });
    }));
  });

  it('refuses a message without exactly two NULs, with an empty authcid or passwd, or over 255 octets', () => {
    const malformed = ['\0alice', 'alice', '\0\0secret', '\0alice\0', 'a\0b\0c\0d', `\0${'a'.repeat(256)}\0pw`, `\0alice\0${'p'.repeat(256)}`, `${'z'.repeat(256)}\0alice\0pw`];
    for (const m of malformed) expect(parsePlain(Buffer.from(m)).kind, JSON.stringify(m)).toBe('malformed');
  });

  it('refuses invalid UTF-8 (RFC 4616 §2: the fields are UTF-8)', () => {
    expect(parsePlain(Buffer.from([0, 0x61, 0, 0xff, 0xfe])).kind).toBe('malformed');
  });

  it('without an initial response the first step is an empty challenge (RFC 4954 §4)', () => {
    expect(saslStep('PLAIN', [])).toEqual({ kind: 'challenge', text: '' });
    expect(saslStep('PLAIN', ['']).kind).toBe('malformed');
    expect(saslStep('PLAIN', ['not base64!']).kind).toBe('malformed');
  });
});

describe('LOGIN: "Username:" then "Password:"', () => {
  it('asks twice, then yields the credentials with no authzid', () => {
    expect(saslStep('LOGIN', [])).toEqual({ kind: 'challenge', text: b64('Username:') });
    expect(saslStep('LOGIN', [b64('alice@localhost')])).toEqual({ kind: 'challenge', text: b64('Password:') });
    expect(saslStep('LOGIN', [b64('alice@localhost'), b64('p ss')])).toEqual({ kind: 'credentials', authzid: '', authcid: 'alice@localhost', password: 'p ss' });
  });

  it('refuses a malformed response at the step it arrives, not later', () => {
    expect(saslStep('LOGIN', ['%%%']).kind).toBe('malformed');
    expect(saslStep('LOGIN', [b64('')]).kind).toBe('malformed');
    expect(saslStep('LOGIN', [b64('a\0b')]).kind).toBe('malformed');
    expect(saslStep('LOGIN', [b64('alice'), '']).kind).toBe('malformed');
    expect(saslStep('LOGIN', [b64('alice'), b64('pw'), b64('more')]).kind).toBe('malformed');
  });
});

describe('every step is total', () => {
  it('never throws, whatever the responses', () => {
    fc.assert(fc.property(fc.constantFrom('PLAIN', 'LOGIN' as const), fc.array(fc.oneof(fc.string(), fc.uint8Array().map((u) => b64(Buffer.from(u)))), { maxLength: 4 }), (m, rs) => {
      expect(['challenge', 'credentials', 'malformed']).toContain(saslStep(m, rs).kind);
    }));
  });
});

describe('RFC 4616 §2 authorization identity', () => {
  it.each([
    ['', 'alice@x', true],
    ['alice@x', 'alice@x', true],
    ['ALICE@X', 'alice@x', true],
    ['bob@x', 'alice@x', false],
    ['alice@x ', 'alice@x', false],
  ])('authzid %j for authcid %j: %s', (authzid, authcid, allowed) => {
    expect(authzidAllowed(authzid, authcid)).toBe(allowed);
  });
});
