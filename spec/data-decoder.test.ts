/**
 * Executable spec for DATA content (RFC 5321 §4.1.1.4 end of data, §4.5.2 dot-stuffing)
 * and for the SMTP smuggling defences (CVE-2023-51764/51765/51766): only CRLF "." CRLF
 * ends the data, under any chunking, and every bare CR or LF is flagged.
 */
import { splitAt as chunk } from './helpers/chunks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataDecoder, DataEncoder, encodeData } from '../src/smtp/data-decoder';
import type { DataOutcome } from '../src/smtp/data-decoder';
import { LineEndingChecker } from '../src/smtp/line-ending';

const b = (s: string) => Buffer.from(s, 'latin1');
const BIG = 1 << 30;

/** The test's own encoder, written independently of src: double a leading dot on every line. */
function dotStuff(lines: string[]): string {
  return lines.map((l) => (l.startsWith('.') ? `.${l}` : l) + '\r\n').join('');
}

/** Reference end of data: just past the first CRLF "." CRLF (or ".\r\n" at the very start), else -1. */
function refEnd(wire: Buffer): number {
  if (wire.subarray(0, 3).equals(b('.\r\n'))) return 3;
  const at = wire.indexOf(b('\r\n.\r\n'));
  return at === -1 ? -1 : at + 5;
}

/** Reference bare CR/LF over the consumed bytes (a CR as the last consumed byte may still get its LF). */
function refBare(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0d && i + 1 < data.length && data[i + 1] !== 0x0a) return true;
    if (data[i] === 0x0a && (i === 0 || data[i - 1] !== 0x0d)) return true;
  }
  return false;
}

/** Reference decoding of clean data: split at CRLF, drop one leading dot per line. */
function refDecode(data: Buffer): Buffer {
  const lines = data.toString('latin1').split('\r\n');
  lines.pop();
  return b(lines.map((l) => (l.startsWith('.') ? l.slice(1) : l) + '\r\n').join(''));
}

/** Stuffing dots: a "." at the start of the data or right after a CRLF (after a bare LF no line starts). */
function stuffing(content: Buffer): number {
  let n = 0;
  for (let i = 0; i < content.length; i++) {
    if (content[i] === 0x2e && (i === 0 || (content[i - 1] === 0x0a && content[i - 2] === 0x0d))) n++;
  }
  return n;
}


interface Run {
  end: number; // global index just past the terminator, or -1
  body: Buffer;
  outcome: DataOutcome;
}

/** Feeds chunks until the decoder finishes; the first chunk may sit behind a prefix (start > 0). */
function decode(parts: Buffer[], maxSize = BIG, prefix = b('')): Run {
  const dec = new DataDecoder(maxSize);
  const out: Buffer[] = [];
  let offset = 0;
  for (const [k, part] of parts.entries()) {
    const buf = k === 0 ? Buffer.concat([prefix, part]) : part;
    const start = k === 0 ? prefix.length : 0;
    const r = dec.push(buf, start, out);
    if (r >= 0) return { end: offset + r - start, body: Buffer.concat(out), outcome: dec.outcome };
    offset += part.length;
  }
  return { end: -1, body: Buffer.concat(out), outcome: dec.outcome };
}

const line = fc
  .tuple(fc.constantFrom('', '.', '..', '...'), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }))
  .map(([dots, bytes]) => dots + String.fromCharCode(...bytes.filter((x) => x !== 10 && x !== 13)));
const lines = fc.array(line, { maxLength: 20 });
const cuts = fc.array(fc.nat(), { maxLength: 12 });
/** Bytes that matter to the machine, so random sequences hit every transition often. */
const wireByte = fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61, 0x00, 0x20);

describe('DataDecoder: round trip (RFC 5321 §4.5.2)', () => {
  it('decodes any dot-stuffed body under any chunking and stops exactly after the terminator', () => {
    fc.assert(
      fc.property(lines, fc.string({ maxLength: 20 }), cuts, fc.string({ maxLength: 5 }), (ls, tail, cs, pre) => {
        const body = b(ls.map((l) => l + '\r\n').join(''));
        const wire = b(dotStuff(ls) + '.\r\n');
        const stream = Buffer.concat([wire, b(tail)]);
        const r = decode(chunk(stream, cs), BIG, b(pre));
        expect(r.end).toBe(wire.length);
        expect(r.body.equals(body)).toBe(true);
        expect(r.outcome).toEqual({ size: body.length, tooBig: false, bareLineEnding: false });
      }),
    );
  });

  it('encodeData matches the independent dot-stuffer, and decode(encodeData(x)) = x', () => {
    fc.assert(
      fc.property(lines, (ls) => {
        const body = b(ls.map((l) => l + '\r\n').join(''));
        const wire = encodeData(body);
        expect(wire.toString('latin1')).toBe(dotStuff(ls) + '.\r\n');
        expect(decode([wire]).body.equals(body)).toBe(true);
      }),
    );
  });

  it('emits subarrays of the input, not copies, on the clean path', () => {
    const buf = b('Subject: x\r\n\r\nline one\r\nline two\r\n.\r\nQUIT\r\n');
    const out: Buffer[] = [];
    expect(new DataDecoder(BIG).push(buf, 0, out)).toBe(buf.length - 6);
    expect(out).toHaveLength(1);
    expect(out[0]?.buffer).toBe(buf.buffer);
  });

  it('".\\r\\n" alone is the empty message', () => {
    const r = decode([b('.\r\nQUIT\r\n')]);
    expect(r).toMatchObject({ end: 3, outcome: { size: 0, bareLineEnding: false } });
    expect(r.body.length).toBe(0);
  });

  it('state carries across every chunk boundary of "a\\r\\n..b\\r\\n.\\r\\n"', () => {
    const wire = b('a\r\n..b\r\n.\r\n');
    for (let cut = 0; cut <= wire.length; cut++) {
      const r = decode([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(r.body.toString('latin1')).toBe('a\r\n.b\r\n');
      expect(r.end).toBe(wire.length);
    }
    const bytewise = decode([...wire].map((x) => Buffer.from([x])));
    expect(bytewise.body.toString('latin1')).toBe('a\r\n.b\r\n');
  });

  it('never looks at bytes before start (a CR there does not pair with an LF at start)', () => {
    const dec = new DataDecoder(BIG);
    expect(dec.push(b('\r\n.\r\n'), 1, [])).toBe(-1);
    expect(dec.outcome.bareLineEnding).toBe(true);
  });

  it('refuses to be pushed after it has finished', () => {
    const dec = new DataDecoder(BIG);
    expect(dec.push(b('.\r\n'), 0, [])).toBe(3);
    expect(() => dec.push(b('x'), 0, [])).toThrow();
  });
});

describe('DataDecoder: against a reference on arbitrary bytes (smuggling)', () => {
  it('ends exactly at the first CRLF.CRLF, flags bare CR/LF exactly, decodes clean data exactly', () => {
    fc.assert(
      fc.property(fc.array(wireByte, { maxLength: 60 }), cuts, (bytes, cs) => {
        const wire = Buffer.from(bytes);
        const r = decode(chunk(wire, cs));
        const end = refEnd(wire);
        expect(r.end).toBe(end);
        const consumed = end === -1 ? wire : wire.subarray(0, end);
        expect(r.outcome.bareLineEnding).toBe(refBare(consumed));
        if (end === -1) return;
        const content = wire.subarray(0, end - 3); // without the terminator's ".\r\n"
        if (!r.outcome.bareLineEnding) expect(r.body.equals(refDecode(content))).toBe(true);
        expect(r.outcome.size).toBe(content.length - stuffing(content));
      }),
      { numRuns: 3000 },
    );
  });

  it('a bare CR or LF inserted into clean data is always flagged and never ends the data early', () => {
    fc.assert(
      fc.property(lines, fc.nat(), fc.constantFrom('\r', '\n'), cuts, (ls, pos, bare, cs) => {
        const clean = dotStuff(ls);
        const p = pos % (clean.length + 1);
        // A bare char right before the ".\r\n" breaks that terminator, so a real one follows later.
        const wire = b(clean.slice(0, p) + bare + clean.slice(p) + '.\r\nMAIL FROM:<x@y>\r\n.\r\n');
        const r = decode(chunk(wire, cs));
        expect(r.end).toBe(refEnd(wire));
        expect(r.end).toBeGreaterThanOrEqual(clean.length + 1 + 3);
        expect(r.outcome.bareLineEnding).toBe(true);
      }),
    );
  });
});

/** Named smuggling payloads: each sits between a clean line and more text, and must not end the data. */
const SMUGGLING: Array<[name: string, payload: string, bare: boolean]> = [
  ['\\n.\\n', '\n.\n', true],
  ['\\n.\\r\\n', '\n.\r\n', true],
  ['\\r.\\r', '\r.\r', true],
  ['\\r.\\r\\n', '\r.\r\n', true],
  ['\\r\\n.\\n', '\r\n.\n', true],
  ['\\r\\n.\\r', '\r\n.\r', true],
  ['\\r\\n.\\rX', '\r\n.\rX', true],
  ['\\n..\\n', '\n..\n', true],
  ['\\r\\n..\\r\\n (a stuffed dot line)', '\r\n..\r\n', false],
  ['\\r\\n\\x00.\\r\\n', '\r\n\x00.\r\n', false],
  ['\\r\\n .\\r\\n', '\r\n .\r\n', false],
  ['\\r\\n.\\x00\\r\\n', '\r\n.\x00\r\n', false],
  ['\\r\\r\\n.\\n', '\r\r\n.\n', true],
  ['\\n\\r.\\r\\n', '\n\r.\r\n', true],
];

describe('DataDecoder: named smuggling variants do not end the data', () => {
  for (const [name, payload, bare] of SMUGGLING) {
    it(name, () => {
      const head = 'Subject: hi\r\n\r\nbody';
      const smuggled = 'MAIL FROM:<evil@example>\r\nRCPT TO:<victim@example>\r\nDATA\r\n';
      const open = b(head + payload + smuggled);
      const wire = Buffer.concat([open, b('\r\n.\r\nQUIT\r\n')]);
      for (let cut = 0; cut <= wire.length; cut++) {
        const r = decode([wire.subarray(0, cut), wire.subarray(cut)]);
        expect(r.end).toBe(open.length + 5);
        expect(r.outcome.bareLineEnding).toBe(bare);
        const content = wire.subarray(0, r.end - 3);
        expect(r.outcome.size).toBe(content.length - stuffing(content));
      }
      expect(decode([open]).end).toBe(-1);
    });
  }

  it('"\\r\\r\\n.\\r\\n" ends the data (a real CRLF.CRLF) but flags the bare CR', () => {
    const r = decode([b('x\r\r\n.\r\nNOOP\r\n')]);
    expect(r.end).toBe(7);
    expect(r.outcome.bareLineEnding).toBe(true);
  });

  it('emits nothing once a bare line ending is seen', () => {
    const dec = new DataDecoder(BIG);
    const out: Buffer[] = [];
    dec.push(b('clean\r\n'), 0, out);
    dec.push(b('bad\n.\nmore\r\n'), 0, out);
    dec.push(b('..even more\r\n.\r\n'), 0, out);
    expect(Buffer.concat(out).toString('latin1')).toBe('clean\r\n');
  });
});

describe('DataDecoder: size limit (RFC 1870, STYLE rule 5: read to the terminator, then refuse)', () => {
  it('counts past the limit, emits nothing beyond it and still finds the terminator', () => {
    fc.assert(
      fc.property(lines, fc.nat({ max: 400 }), cuts, (ls, max, cs) => {
        const body = b(ls.map((l) => l + '\r\n').join(''));
        const wire = b(dotStuff(ls) + '.\r\nRSET\r\n');
        const r = decode(chunk(wire, cs), max);
        expect(r.end).toBe(wire.length - 6);
        expect(r.outcome.size).toBe(body.length);
        expect(r.outcome.tooBig).toBe(body.length > max);
        expect(r.body.equals(body.subarray(0, Math.min(max, body.length)))).toBe(true);
      }),
    );
  });

  it('a message of exactly maxSize octets is not too big', () => {
    const r = decode([b('abc\r\n.\r\n')], 5);
    expect(r.outcome).toEqual({ size: 5, tooBig: false, bareLineEnding: false });
  });
});

describe('DataEncoder (outbound)', () => {
  const normalise = (s: string) => s.replace(/\r\n|\r|\n/g, '\r\n');

  it('normalises bare CR/LF to CRLF, closes the last line, and the decoder reads it back clean', () => {
    fc.assert(
      fc.property(fc.array(wireByte, { maxLength: 60 }), cuts, (bytes, cs) => {
        const body = Buffer.from(bytes);
        const out: Buffer[] = [];
        const enc = new DataEncoder();
        for (const part of chunk(body, cs)) enc.push(part, out);
        enc.end(out);
        const wire = Buffer.concat(out);
        let expected = normalise(body.toString('latin1'));
        if (expected !== '' && !expected.endsWith('\r\n')) expected += '\r\n';
        const r = decode([wire]);
        expect(r.end).toBe(wire.length);
        expect(r.outcome.bareLineEnding).toBe(false);
        expect(r.body.toString('latin1')).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('LineEndingChecker (BDAT, RFC 3030)', () => {
  const refAll = (data: Buffer) =>
    refBare(data) || (data.length > 0 && data[data.length - 1] === 0x0d);

  it('agrees with the reference under any chunking', () => {
    fc.assert(
      fc.property(fc.array(wireByte, { maxLength: 60 }), cuts, (bytes, cs) => {
        const data = Buffer.from(bytes);
        const c = new LineEndingChecker();
        for (const part of chunk(data, cs)) c.push(part);
        expect(c.bare).toBe(refBare(data));
        c.end();
        expect(c.bare).toBe(refAll(data));
      }),
      { numRuns: 3000 },
    );
  });

  it('clean CRLF content split inside every CRLF is not bare', () => {
    fc.assert(
      fc.property(lines, cuts, (ls, cs) => {
        const data = b(ls.map((l) => l + '\r\n').join(''));
        const c = new LineEndingChecker();
        for (const part of chunk(data, cs)) c.push(part);
        c.end();
        expect(c.bare).toBe(false);
      }),
    );
  });

  it.each([
    ['a lone CR at the very end', ['abc\r'], true],
    ['CR then LF in the next chunk', ['abc\r', '\ndef\r\n'], false],
    ['CR then X in the next chunk', ['abc\r', 'x'], true],
    ['LF opening a chunk after text', ['abc', '\n'], true],
    ['an empty chunk between CR and LF', ['abc\r', '', '\n'], false],
  ])('%s', (_name, parts, bare) => {
    const c = new LineEndingChecker();
    for (const p of parts) c.push(b(p));
    c.end();
    expect(c.bare).toBe(bare);
  });
});
