/**
 * RFC 6376 §3.2 tag lists and §3.4 canonicalization: the RFC's own §3.4.5
 * example, a whole-string reference model for the streaming body machine,
 * chunking invariance, idempotence and the l= cut.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyHasher, bodyHash, canonBody, canonHeader, withoutB, type Canon } from '../src/auth/dkim/canon';
import { parseTagList } from '../src/auth/dkim/tag-list';

const RUNS = { numRuns: 200 };
const L = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Whole-string model of RFC 6376 §3.4.3/§3.4.4, written from the RFC text, independent of the byte machine. */
function model(body: string, canon: Canon): string {
  let s = body;
  if (canon === 'relaxed') s = s.replace(/[ \t]+\r\n/g, '\r\n').replace(/[ \t]+/g, ' ').replace(/ $/, '');
  s = s.replace(/(\r\n)+$/, '');
  if (s === '') return canon === 'simple' ? '\r\n' : '';
  return `${s}\r\n`;
}

const bodyArb = fc
  .array(fc.constantFrom('a', 'Z', ' ', '\t', '  ', '\r', '\n', '\r\n', '\r\n\r\n', '\xe9', '.'), { maxLength: 40 })
  .map((xs) => xs.join(''));
const canonArb = fc.constantFrom<Canon>('simple', 'relaxed');

describe('body canonicalization', () => {
  it('RFC 6376 §3.4.5 example', () => {
    const body = L(' C \r\nD \t E\r\n\r\n\r\n');
    expect(canonBody(body, 'relaxed').toString('latin1')).toBe(' C\r\nD E\r\n');
    expect(canonBody(body, 'simple').toString('latin1')).toBe(' C \r\nD \t E\r\n');
  });
  it('empty body: one CRLF in simple, nothing in relaxed (RFC 6376 §3.4.3, erratum 3192)', () => {
    expect(canonBody(L(''), 'simple').toString('latin1')).toBe('\r\n');
    expect(canonBody(L('\r\n\r\n'), 'relaxed').toString('latin1')).toBe('');
    expect(bodyHash(L(''), 'relaxed', 'sha256').hash.toString('base64')).toBe('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    expect(bodyHash(L(''), 'simple', 'sha256').hash.toString('base64')).toBe('frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=');
  });
  it('a last line without CRLF gets one', () => {
    expect(canonBody(L('abc  '), 'relaxed').toString('latin1')).toBe('abc\r\n');
    expect(canonBody(L('abc'), 'simple').toString('latin1')).toBe('abc\r\n');
  });
  it('matches the whole-string model', () => {
    fc.assert(fc.property(bodyArb, canonArb, (b, c) => {
      expect(canonBody(L(b), c).toString('latin1')).toBe(model(b, c));
    }), RUNS);
  });
  it('is idempotent', () => {
    fc.assert(fc.property(bodyArb, canonArb, (b, c) => {
      const once = canonBody(L(b), c);
      expect(canonBody(once, c).equals(once)).toBe(true);
    }), RUNS);
  });
  it('gives the same hash however the body is chunked', () => {
    fc.assert(fc.property(bodyArb, canonArb, fc.array(fc.nat(), { maxLength: 6 }), (b, c, cuts) => {
      const bytes = L(b);
      const h = new BodyHasher(c, 'sha256');
      let at = 0;
      for (const cut of [...cuts.map((x) => x % (bytes.length + 1))].sort((x, y) => x - y)) {
        h.push(bytes.subarray(at, Math.max(at, cut)));
        at = Math.max(at, cut);
      }
      h.push(bytes.subarray(at));
      expect(h.end().hash.equals(bodyHash(bytes, c, 'sha256').hash)).toBe(true);
    }), RUNS);
  });
  it('l= hashes only the first l canonical octets and still counts them all', () => {
    fc.assert(fc.property(bodyArb, canonArb, fc.nat(60), (b, c, l) => {
      const full = canonBody(L(b), c);
      const d = bodyHash(L(b), c, 'sha256', l);
      expect(d.length).toBe(full.length);
      expect(d.hash.equals(createHash('sha256').update(full.subarray(0, l)).digest())).toBe(true);
    }), RUNS);
  });
  it('handles a body much larger than its buffer in bounded chunks', () => {
    const line = `${'x'.repeat(9000)}  \r\n`;
    const d = bodyHash(L(line.repeat(20)), 'relaxed', 'sha256');
    expect(d.length).toBe(20 * 9002);
  });
});

describe('header canonicalization', () => {
  it('RFC 6376 §3.4.5 example', () => {
    expect(canonHeader('A: X\r\n', 'relaxed')).toBe('a:X\r\n');
    expect(canonHeader('B : Y\t\r\n\tZ  \r\n', 'relaxed')).toBe('b:Y Z\r\n');
    expect(canonHeader('B : Y\t\r\n\tZ  \r\n', 'simple')).toBe('B : Y\t\r\n\tZ  \r\n');
  });
  it('keeps 8-bit octets (no String.trim of U+00A0)', () => {
    expect(canonHeader('Subject: \xa0caf\xe9\xa0\r\n', 'relaxed')).toBe('subject:\xa0caf\xe9\xa0\r\n');
  });
  const fieldArb = fc
    .tuple(fc.constantFrom('Subject', 'FROM', 'x-y'), fc.constantFrom('', ' ', '\t '), fc.array(fc.constantFrom('a', 'b:c', ' ', '\t', '\r\n ', '\r\n\t', '\xe9'), { maxLength: 12 }))
    .map(([n, sp, v]) => `${n}${sp}:${v.join('')}\r\n`);
  it('relaxed is idempotent', () => {
    fc.assert(fc.property(fieldArb, (f) => {
      const once = canonHeader(f, 'relaxed');
      expect(canonHeader(once, 'relaxed')).toBe(once);
    }), RUNS);
  });
  it('withoutB empties b= only, with its folding, and leaves bh= alone', () => {
    expect(withoutB('DKIM-Signature: v=1; bh=abc=; b=de\r\n\tf==\r\n')).toBe('DKIM-Signature: v=1; bh=abc=; b=\r\n');
    expect(withoutB('DKIM-Signature: b = xy ;\r\n d=x\r\n')).toBe('DKIM-Signature: b =;\r\n d=x\r\n');
  });
});

describe('tag lists (RFC 6376 §3.2)', () => {
  it('parses values with FWS around them and a trailing ";"', () => {
    const r = parseTagList(' v=1;\r\n\ta = rsa-sha256 ; b= ab\r\n cd ;');
    expect(r.ok && Object.fromEntries(r.tags)).toEqual({ v: '1', a: 'rsa-sha256', b: 'ab\r\n cd' });
  });
  it.each([['duplicate', 'a=1; a=2'], ['no =', 'a=1; junk'], ['empty spec', 'a=1;;b=2'], ['bad name', '1a=2'], ['control char', 'a=\x01']])(
    'refuses %s',
    (_n, text) => expect(parseTagList(text).ok).toBe(false),
  );
  it('never throws and round-trips what it is given', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => void parseTagList(s)), RUNS);
    const tagArb = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,3}$/), fc.stringMatching(/^[!-:<-~]{0,8}$/), { maxKeys: 6 });
    fc.assert(fc.property(tagArb, fc.constantFrom(' ', '', '\r\n\t'), (tags, ws) => {
      const text = Object.entries(tags).map(([k, v]) => `${ws}${k}${ws}=${ws}${v}${ws}`).join(';');
      const r = parseTagList(text);
      if (Object.keys(tags).length === 0) return;
      expect(r.ok && Object.fromEntries(r.tags)).toEqual(tags);
    }), RUNS);
  });
  it('is bounded', () => expect(parseTagList(`a=${'x'.repeat(20000)}`).ok).toBe(false));
});
