/**
 * The streaming header parser (src/message/header.ts): RFC 5322 §2.2 field
 * splitting and §2.2.3 unfolding, properties over any chunking, parse ∘
 * serialize round trips, and hostile input (huge, NUL, bare CR, 8-bit,
 * random bytes) that must give defects, bounded output and no exception.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderParser, MAX_HEADER_BYTES, parseHeader, type HeaderField } from '../src/message/header';

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Feeds `bytes` split at `cuts` (offsets) and returns everything the parser reported. */
function chunked(bytes: Uint8Array, cuts: number[]): { fields: HeaderField[]; defects: unknown[]; bodyOffset: number } {
  const p = new HeaderParser();
  const fields: HeaderField[] = [];
  let at = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    fields.push(...p.push(bytes.subarray(at, cut)));
    at = cut;
  }
  fields.push(...p.push(bytes.subarray(at)), ...p.end());
  return { fields, defects: p.defects.items, bodyOffset: p.bodyOffset };
}

const nv = (fields: readonly HeaderField[]): [string, string][] => fields.map((f) => [f.name, f.value]);

describe('field splitting and unfolding (RFC 5322 §2.2, §2.2.3)', () => {
  it('unfolds by removing only the CRLF before WSP; the body starts after the empty line', () => {
    const msg = 'Subject: This\r\n is a test\r\nX-Y:  two  spaces \r\nTo: a@b\r\n\r\nbody: not a field\r\n';
    const r = parseHeader(enc(msg));
    expect(nv(r.fields)).toEqual([
      ['Subject', 'This is a test'],
      ['X-Y', 'two  spaces '],
      ['To', 'a@b'],
    ]);
    expect(r.bodyOffset).toBe(msg.indexOf('body:'));
    expect(r.defects).toEqual([]);
  });

  it('LF-only input gives the same fields as CRLF input', () => {
    const crlf = 'A: 1\r\nB: 2\r\n  3\r\n\r\nbody\r\n';
    expect(nv(parseHeader(enc(crlf.replace(/\r\n/g, '\n'))).fields)).toEqual(nv(parseHeader(enc(crlf)).fields));
  });

  it('obs syntax: WSP before the colon, a fold line of spaces only, an empty value', () => {
    const r = parseHeader(enc('Subject   : hi\r\n   \r\n there\r\nX-Empty:\r\n\r\n'));
    expect(nv(r.fields)).toEqual([
      ['Subject', 'hi    there'],
      ['X-Empty', ''],
    ]);
  });

  it('offsets: each field spans its raw bytes, line ends included', () => {
    const msg = 'A: 1\r\nB: 2\r\n x\r\n\r\n';
    const r = parseHeader(enc(msg));
    expect(r.fields.map((f) => msg.slice(f.start, f.end))).toEqual(['A: 1\r\n', 'B: 2\r\n x\r\n']);
  });

  it('an mbox "From " line first is skipped; a non-field line ends the section (missing separator)', () => {
    const r = parseHeader(enc('From someone Mon Jan  1 00:00:00 2001\nA: 1\nnot a header\nB: 2\n'));
    expect(nv(r.fields)).toEqual([['A', '1']]);
    expect(r.defects.map((d) => d.code)).toEqual(['mbox-from-line', 'missing-separator']);
    expect(r.bodyOffset).toBe(r.fields[0]!.end);
  });

  it('a section without an empty line or a final newline is complete at the end of input', () => {
    const r = parseHeader(enc('A: 1\r\nB: 2'));
    expect(nv(r.fields)).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
    expect(r.defects).toEqual([]);
  });

  it('a folded line before any field is reported and ignored', () => {
    const r = parseHeader(enc(' stray\r\nA: 1\r\n\r\n'));
    expect(nv(r.fields)).toEqual([['A', '1']]);
    expect(r.defects.map((d) => d.code)).toEqual(['leading-continuation']);
  });

  it('8-bit: UTF-8 is read as UTF-8 (RFC 6532), other bytes as Latin-1 with a defect', () => {
    expect(nv(parseHeader(enc('Subject: Grüße\r\n\r\n')).fields)).toEqual([['Subject', 'Grüße']]);
    const r = parseHeader(Buffer.from('Subject: Gr\xfc\xdfe\r\n\r\n', 'latin1'));
    expect(nv(r.fields)).toEqual([['Subject', 'Grüße']]);
    expect(r.defects).toEqual([expect.objectContaining({ code: 'non-utf8-header', field: 'Subject' })]);
  });
});

describe('hostile input: defects, bounded output, never an exception', () => {
  it('a 10 MB header section: the part over the bound is not kept, the end of the section is still found', () => {
    const huge = Buffer.alloc(10 * 1024 * 1024, 'a');
    const p = new HeaderParser();
    const fields = [...p.push(enc('A: 1\r\nX-Big: ')), ...p.push(huge), ...p.push(enc('\r\nB: 2\r\n\r\nbody'))];
    fields.push(...p.end());
    expect(nv(fields)).toEqual([['A', '1']]);
    expect(p.defects.items.map((d) => d.code)).toContain('header-too-large');
    expect(p.done).toBe(true);
    expect(p.bodyOffset).toBe(6 + 7 + huge.length + 2 + 6 + 2);
  });

  it('10 MB of one-line fields: at most the bound is kept in fields', () => {
    const line = enc('X: y\r\n');
    const many = Buffer.concat(Array.from({ length: (10 * 1024 * 1024) / line.length }, () => line));
    const r = parseHeader(many);
    const kept = r.fields.reduce((n, f) => n + f.end - f.start, 0);
    expect(kept).toBeLessThanOrEqual(MAX_HEADER_BYTES);
    expect(r.defects.map((d) => d.code)).toContain('too-many-fields');
  });

  it('NUL, bare CR and an over-long line are kept in the value and reported', () => {
    const r = parseHeader(enc(`A: x\0y\r\nB: p\rq\r\nC: ${'z'.repeat(1200)}\r\n\r\n`));
    expect(nv(r.fields).slice(0, 2)).toEqual([
      ['A', 'x\0y'],
      ['B', 'p\rq'],
    ]);
    expect(r.defects.map((d) => [d.code, d.field])).toEqual([
      ['nul', 'A'],
      ['bare-cr', 'B'],
      ['line-too-long', 'C'],
    ]);
  });

  it('property: random bytes never throw, and every field has a valid name', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const r = parseHeader(bytes, { maxBytes: 512, maxFields: 20 });
        for (const f of r.fields) expect(f.name).toMatch(/^[\x21-\x39\x3b-\x7e]+$/);
        expect(r.fields.length).toBeLessThanOrEqual(20);
        expect(r.defects.length).toBeLessThanOrEqual(101);
      }),
      { numRuns: 500 },
    );
  });
});

/** Bytes that look like headers: names, colons, folds, CR, LF, 8-bit. */
const headerish = fc
  .array(fc.constantFrom('A', 'Subject', ':', ' ', '\t', '\r', '\n', '\r\n', 'x', 'é', '\0', 'From ', '\xff'), { maxLength: 80 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

describe('property: any chunking gives the same fields, defects and body offset', () => {
  it('over header-like bytes', () => {
    fc.assert(
      fc.property(headerish, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const whole = chunked(bytes, []);
        expect(chunked(bytes, cuts.map((c) => c % (bytes.length + 1)))).toEqual(whole);
      }),
      { numRuns: 1000 },
    );
  });

  it('byte by byte over a folded header', () => {
    const msg = enc('From x\nA: 1\r\n\t2\r\nB:\r\n  \r\n 3\n\r\nbody');
    const bytewise = Array.from({ length: msg.length }, (_, i) => i);
    expect(chunked(msg, bytewise)).toEqual(chunked(msg, []));
  });
});

const ftext = fc.string({ unit: fc.constantFrom(...'ABCXYZabcxyz-_019!#~'.split('')), minLength: 1, maxLength: 12 });
const valueText = fc
  .string({ unit: fc.oneof(fc.constantFrom(' ', '\t', ':', '(', '"', 'ü', '日'), fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 })), maxLength: 60 })
  .filter((v) => !/^[ \t]/.test(v) && !/[\r\n]/.test(v));

/** Serializes fields, folding before some of the WSP in each value (RFC 5322 §2.2.3), with CRLF or LF. */
function serialize(fields: [string, string][], folds: boolean[], eol: string): Buffer {
  let k = 0;
  const lines = fields.map(([n, v]) => {
    const folded = v.replace(/[ \t]/g, (w) => (folds[k++ % Math.max(1, folds.length)] ? `${eol}${w}` : w));
    return `${n}: ${folded}${eol}`;
  });
  return enc(`${lines.join('')}${eol}body${eol}`);
}

describe('property: parse ∘ serialize is the identity on generated headers', () => {
  it('names and values come back exactly, whatever the folding and line ends', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(ftext, valueText), { maxLength: 10 }),
        fc.array(fc.boolean(), { maxLength: 10 }),
        fc.constantFrom('\r\n', '\n'),
        (fields, folds, eol) => {
          const r = parseHeader(serialize(fields, folds, eol));
          // a value that ends in WSP folded at its end would leave an all-WSP line: still only WSP, kept
          expect(nv(r.fields)).toEqual(fields);
          expect(r.defects).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
