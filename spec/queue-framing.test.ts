// Executable spec of the queue log's physical layer (src/queue/framing.ts):
// LevelDB log framing, checked against google/leveldb db/log_test.cc's case list
// and by properties over arbitrary record sequences and cuts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BLOCK_SIZE,
  FrameType,
  HEADER_SIZE,
  decodeSegmentHeader,
  encodeSegmentHeader,
  frameChecksum,
  frameRecord,
  readRecordAt,
  scanLog,
  scanSegment,
  SegmentWalker,
  walkSegment,
} from '../src/queue/framing';

/** Test builder: frames payloads from offset 0 into one file image; returns where each record starts and ends. */
function writeLog(payloads: Buffer[], start = 0): { bytes: Buffer; spans: { offset: number; end: number }[] } {
  const parts: Buffer[] = [];
  const spans: { offset: number; end: number }[] = [];
  let offset = start;
  for (const p of payloads) {
    const f = frameRecord(offset, p);
    parts.push(...f.buffers);
    spans.push({ offset: f.start, end: f.offset });
    offset = f.offset;
  }
  return { bytes: Buffer.concat(parts), spans };
}

function big(seed: string, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = seed.charCodeAt(i % seed.length);
  return b;
}

/** Buffer-list equality without vitest's slow deep-equal over large Buffers. */
function expectSameBuffers(actual: Buffer[], expected: Buffer[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(a.equals(expected[i]!), `record ${i}`).toBe(true));
}

const payloads = (s: ReturnType<typeof scanLog>) => s.records.map((r) => r.payload.toString('latin1'));

/** LevelDB FixChecksum: recompute the CRC of the physical record at `at` after a test edited it. */
function fixChecksum(bytes: Buffer, at: number): void {
  const len = bytes.readUInt16LE(at + 4);
  const type = bytes.readUInt8(at + 6);
  bytes.writeUInt32LE(frameChecksum(type, bytes.subarray(at + HEADER_SIZE, at + HEADER_SIZE + len)), at);
}

const arbPayload = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(0, 1, BLOCK_SIZE - HEADER_SIZE, BLOCK_SIZE - 2 * HEADER_SIZE, BLOCK_SIZE, 2 * BLOCK_SIZE + 5, 70_000)
      .map((n) => big('xyz', n)),
  },
);

describe('framing round trip', () => {
  it('decode(encode(records)) = records, across block boundaries', () => {
    fc.assert(
      fc.property(fc.array(arbPayload, { maxLength: 12 }), (ps) => {
        const { bytes, spans } = writeLog(ps);
        const scan = scanLog(bytes);
        expect(scan.corruptions).toEqual([]);
        expectSameBuffers(scan.records.map((r) => r.payload), ps);
        expect(scan.records.map((r) => ({ offset: r.offset, end: r.end }))).toEqual(spans);
        expect(scan.validEnd).toBe(bytes.length);
      }),
      { numRuns: 200 },
    );
  });

  it('every record can be read back alone from its location', () => {
    fc.assert(
      fc.property(fc.array(arbPayload, { minLength: 1, maxLength: 8 }), (ps) => {
        const { bytes, spans } = writeLog(ps);
        spans.forEach((s, i) => expect(readRecordAt(bytes.subarray(s.offset, s.end), s.offset)?.equals(ps[i]!)).toBe(true));
      }),
      { numRuns: 100 },
    );
  });

  it('a cut at any byte yields exactly the records wholly before the cut, with no report', () => {
    fc.assert(
      fc.property(fc.array(arbPayload, { maxLength: 8 }), fc.nat(), (ps, at) => {
        const { bytes, spans } = writeLog(ps);
        const cut = at % (bytes.length + 1);
        const scan = scanLog(bytes.subarray(0, cut));
        const expected = ps.filter((_, i) => (spans[i]?.end ?? Infinity) <= cut);
        expectSameBuffers(scan.records.map((r) => r.payload), expected);
        expect(scan.corruptions).toEqual([]);
        expect(scan.validEnd).toBe(spans.filter((s) => s.end <= cut).at(-1)?.end ?? 0);
      }),
      { numRuns: 300 },
    );
  });

  it('a corrupted byte never produces a record that was not written', () => {
    fc.assert(
      fc.property(fc.array(arbPayload, { minLength: 1, maxLength: 8 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (ps, at, xor) => {
        const { bytes, spans } = writeLog(ps);
        if (bytes.length === 0) return;
        const pos = at % bytes.length;
        bytes[pos] = (bytes[pos] ?? 0) ^ xor;
        const written = new Set(spans.map((s, i) => `${s.offset}:${s.end}:${ps[i]?.toString('hex')}`));
        for (const r of scanLog(bytes).records) expect(written.has(`${r.offset}:${r.end}:${r.payload.toString('hex')}`)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('framing layout', () => {
  it('a record of 0 bytes is one bare FULL header', () => {
    const f = frameRecord(0, Buffer.alloc(0));
    expect(Buffer.concat(f.buffers).length).toBe(HEADER_SIZE);
    expect(f.buffers[0]?.readUInt8(6)).toBe(FrameType.Full);
  });

  it('a record exactly filling a block leaves no trailer', () => {
    const { bytes, spans } = writeLog([big('a', BLOCK_SIZE - HEADER_SIZE), Buffer.from('next')]);
    expect(spans[1]?.offset).toBe(BLOCK_SIZE);
    expect(bytes.length).toBe(BLOCK_SIZE + HEADER_SIZE + 4);
  });

  it('never starts a record in the last 6 bytes of a block: they are a zero trailer', () => {
    const { bytes, spans } = writeLog([big('a', BLOCK_SIZE - 2 * HEADER_SIZE + 4), Buffer.from('x')]);
    expect(spans[1]?.offset).toBe(BLOCK_SIZE);
    expect(bytes.subarray(BLOCK_SIZE - 3, BLOCK_SIZE)).toEqual(Buffer.alloc(3));
  });

  it('spans several blocks as FIRST, MIDDLE…, LAST', () => {
    const { bytes } = writeLog([big('abc', 3 * BLOCK_SIZE)]);
    const types = [0, 1, 2, 3].map((b) => bytes.readUInt8(b * BLOCK_SIZE + 6));
    expect(types).toEqual([FrameType.First, FrameType.Middle, FrameType.Middle, FrameType.Last]);
  });

  it('frames from a non-zero offset (appending to an existing segment)', () => {
    const start = BLOCK_SIZE - 3;
    const { bytes } = writeLog([Buffer.from('hello')], start);
    const file = Buffer.concat([Buffer.alloc(start), bytes]);
    expect(payloads(scanLog(file.subarray(BLOCK_SIZE), BLOCK_SIZE))).toEqual(['hello']);
  });
});

// The case list of leveldb db/log_test.cc, by name.
describe('LevelDB log_test cases', () => {
  it('Empty', () => {
    expect(scanLog(Buffer.alloc(0))).toEqual({ records: [], validEnd: 0, corruptions: [] });
  });

  it('ReadWrite', () => {
    const ps = ['foo', 'bar', '', 'xxxx'].map((s) => Buffer.from(s));
    expect(payloads(scanLog(writeLog(ps).bytes))).toEqual(['foo', 'bar', '', 'xxxx']);
  });

  it('ManyBlocks', () => {
    const ps = Array.from({ length: 10_000 }, (_, i) => Buffer.from(String(i)));
    expect(payloads(scanLog(writeLog(ps).bytes))).toEqual(ps.map((p) => p.toString()));
  });

  it('Fragmentation', () => {
    const ps = [Buffer.from('small'), big('medium', 50_000), big('large', 100_000)];
    expectSameBuffers(scanLog(writeLog(ps).bytes).records.map((r) => r.payload), ps);
  });

  it('MarginalTrailer: a record may start with exactly a header’s room left', () => {
    const n = BLOCK_SIZE - 2 * HEADER_SIZE;
    const { bytes } = writeLog([big('foo', n), Buffer.alloc(0), Buffer.from('bar')]);
    expect(bytes.length).toBe(BLOCK_SIZE + HEADER_SIZE + 3);
    expect(payloads(scanLog(bytes)).map((p) => p.length)).toEqual([n, 0, 3]);
  });

  it('MarginalTrailer2: a FIRST of 0 bytes may fill the last header’s room', () => {
    const n = BLOCK_SIZE - 2 * HEADER_SIZE;
    const { bytes } = writeLog([big('foo', n), Buffer.from('bar')]);
    expect(bytes.readUInt8(BLOCK_SIZE - 1)).toBe(FrameType.First);
    expect(payloads(scanLog(bytes))).toEqual([big('foo', n).toString('latin1'), 'bar']);
  });

  it('ShortTrailer', () => {
    const n = BLOCK_SIZE - 2 * HEADER_SIZE + 4;
    const { bytes } = writeLog([big('foo', n), Buffer.alloc(0), Buffer.from('bar')]);
    expect(payloads(scanLog(bytes)).map((p) => p.length)).toEqual([n, 0, 3]);
  });

  it('AlignedEof', () => {
    const n = BLOCK_SIZE - 2 * HEADER_SIZE + 4;
    const { bytes } = writeLog([big('foo', n)]);
    expect(bytes.length).toBe(BLOCK_SIZE - 3);
    expect(payloads(scanLog(bytes)).map((p) => p.length)).toEqual([n]);
  });

  it('TruncatedTrailingRecordIsIgnored (short header at EOF)', () => {
    const { bytes } = writeLog([Buffer.from('foo')]);
    const scan = scanLog(bytes.subarray(0, bytes.length - 4));
    expect(scan).toEqual({ records: [], validEnd: 0, corruptions: [] });
  });

  it('BadLength: a length past the block end drops the block, reported', () => {
    const { bytes } = writeLog([big('bar', BLOCK_SIZE - HEADER_SIZE), Buffer.from('foo')]);
    bytes[4] = (bytes[4] ?? 0) + 1;
    const scan = scanLog(bytes);
    expect(payloads(scan)).toEqual(['foo']);
    expect(scan.corruptions).toEqual([{ offset: 0, bytes: BLOCK_SIZE, reason: 'bad record length' }]);
  });

  it('BadLengthAtEndIsIgnored (short payload at EOF)', () => {
    const { bytes } = writeLog([Buffer.from('foo')]);
    expect(scanLog(bytes.subarray(0, bytes.length - 1))).toEqual({ records: [], validEnd: 0, corruptions: [] });
  });

  it('ChecksumMismatch: the rest of the block is dropped, reported', () => {
    const { bytes } = writeLog([Buffer.from('foo')]);
    bytes[0] = (bytes[0] ?? 0) + 10;
    const scan = scanLog(bytes);
    expect(scan.records).toEqual([]);
    expect(scan.corruptions).toEqual([{ offset: 0, bytes: 10, reason: 'checksum mismatch' }]);
  });

  it('ChecksumMismatch resyncs at the next block', () => {
    const { bytes } = writeLog([Buffer.from('foo'), Buffer.from('bar'), big('x', BLOCK_SIZE), Buffer.from('after')]);
    bytes[HEADER_SIZE + 1] = (bytes[HEADER_SIZE + 1] ?? 0) ^ 1; // inside "foo"
    const scan = scanLog(bytes);
    expect(payloads(scan)).toEqual(['after']);
    expect(scan.corruptions.map((c) => c.reason)).toEqual(['checksum mismatch', 'missing start of fragmented record']);
  });

  for (const [name, type] of [['UnexpectedMiddleType', FrameType.Middle], ['UnexpectedLastType', FrameType.Last]] as const) {
    it(name, () => {
      const { bytes } = writeLog([Buffer.from('foo')]);
      bytes[6] = type;
      fixChecksum(bytes, 0);
      const scan = scanLog(bytes);
      expect(scan.records).toEqual([]);
      expect(scan.corruptions).toEqual([{ offset: 0, bytes: 10, reason: 'missing start of fragmented record' }]);
    });
  }

  it('UnexpectedFullType', () => {
    const { bytes } = writeLog([Buffer.from('foo'), Buffer.from('bar')]);
    bytes[6] = FrameType.First;
    fixChecksum(bytes, 0);
    const scan = scanLog(bytes);
    expect(payloads(scan)).toEqual(['bar']);
    expect(scan.corruptions).toEqual([{ offset: 0, bytes: 3, reason: 'partial record without end' }]);
  });

  it('UnexpectedFirstType', () => {
    const { bytes } = writeLog([Buffer.from('foo'), big('bar', 100_000)]);
    bytes[6] = FrameType.First;
    fixChecksum(bytes, 0);
    const scan = scanLog(bytes);
    expectSameBuffers(scan.records.map((r) => r.payload), [big('bar', 100_000)]);
    expect(scan.corruptions).toEqual([{ offset: 0, bytes: 3, reason: 'partial record without end' }]);
  });

  it('MissingLastIsIgnored: a FIRST whose LAST never came is a torn tail, not reported', () => {
    const { bytes } = writeLog([big('bar', BLOCK_SIZE)]);
    expect(scanLog(bytes.subarray(0, bytes.length - 14))).toEqual({ records: [], validEnd: 0, corruptions: [] });
  });

  it('PartialLastIsIgnored', () => {
    const { bytes } = writeLog([big('bar', BLOCK_SIZE)]);
    expect(scanLog(bytes.subarray(0, bytes.length - 1))).toEqual({ records: [], validEnd: 0, corruptions: [] });
  });

  it('ErrorJoinsRecords: fragments of two records around a bad block are never joined', () => {
    const { bytes } = writeLog([big('foo', BLOCK_SIZE), big('bar', BLOCK_SIZE), Buffer.from('correct')]);
    bytes.fill('x', BLOCK_SIZE, 2 * BLOCK_SIZE);
    const scan = scanLog(bytes);
    expect(payloads(scan)).toEqual(['correct']);
    const dropped = scan.corruptions.reduce((n, c) => n + c.bytes, 0);
    expect(dropped).toBeGreaterThanOrEqual(BLOCK_SIZE);
  });

  it('zero-filled space is skipped silently; a torn fragment before it is reported', () => {
    const { bytes } = writeLog([Buffer.from('foo')]);
    const file = Buffer.concat([bytes, Buffer.alloc(BLOCK_SIZE + 100)]);
    const scan = scanLog(file);
    expect(payloads(scan)).toEqual(['foo']);
    expect(scan.corruptions).toEqual([]);
    expect(scan.validEnd).toBe(bytes.length);
  });
});

describe('segment header', () => {
  it('round-trips magic, version and segment number', () => {
    fc.assert(
      fc.property(fc.nat(), (n) => {
        expect(decodeSegmentHeader(encodeSegmentHeader(n))).toEqual({ version: 1, segment: n });
      }),
    );
  });

  it('is the first record of a segment and is taken off the record list', () => {
    const { bytes } = writeLog([encodeSegmentHeader(7), Buffer.from('one')]);
    const scan = scanSegment(bytes);
    expect(scan.header).toEqual({ version: 1, segment: 7 });
    expect(payloads(scan)).toEqual(['one']);
  });

  it('a file whose first record is not a header keeps its records and says so', () => {
    const { bytes } = writeLog([Buffer.from('NOTPETRELQ'), Buffer.from('one')]);
    const scan = scanSegment(bytes);
    expect(scan.header).toBeNull();
    expect(payloads(scan)).toEqual(['NOTPETRELQ', 'one']);
    expect(scan.corruptions[0]?.reason).toBe('missing segment header');
  });
});

describe('walkSegment (the streaming form recovery uses) agrees with scanSegment', () => {
  it('same header, records, valid end and corruptions for any log, cut or damaged anywhere', () => {
    const payload = fc.uint8Array({ maxLength: 40_000 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.boolean(), fc.array(payload, { maxLength: 6 }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (withHeader, payloads, cutAt, flipAt, flip) => {
        const { bytes } = writeLog(withHeader ? [encodeSegmentHeader(3), ...payloads] : payloads);
        const damaged = Buffer.from(bytes.subarray(0, bytes.length === 0 ? 0 : cutAt % (bytes.length + 1)));
        if (damaged.length > 0 && flip !== 0) damaged.writeUInt8((damaged.readUInt8(flipAt % damaged.length) ^ flip) & 0xff, flipAt % damaged.length);
        const scan = scanSegment(damaged);
        const walked: { offset: number; end: number; payload: Buffer }[] = [];
        const walk = walkSegment(damaged, (payload, offset, end) => walked.push({ offset, end, payload: Buffer.from(payload) }));
        expect(walk.header).toEqual(scan.header);
        expect(walk.recordCount).toBe(scan.records.length);
        expect(walked.map((r) => [r.offset, r.end])).toEqual(scan.records.map((r) => [r.offset, r.end]));
        expectSameBuffers(walked.map((r) => r.payload), scan.records.map((r) => Buffer.from(r.payload)));
        expect(walk.validEnd).toBe(scan.validEnd);
        expect(walk.corruptions).toEqual(scan.corruptions);
      }),
      { numRuns: 150 },
    );
  });

  it('fed in block-aligned pieces through one reused buffer, it finds what scanSegment finds in the whole file', () => {
    // sizes drawn explicitly: records must span blocks and pieces, which fc.uint8Array's small default sizes never do
    const payload = fc.record({ n: fc.integer({ min: 0, max: 40_000 }), fill: fc.integer({ min: 0, max: 0xed }) }).map(({ n, fill }) => big(String.fromCharCode(fill, fill + 1), n));
    fc.assert(
      fc.property(fc.array(payload, { maxLength: 8 }), fc.integer({ min: 1, max: 3 }), fc.nat(), fc.nat(), (payloads, blocks, cutAt, flipAt) => {
        const { bytes } = writeLog([encodeSegmentHeader(3), ...payloads]);
        const damaged = Buffer.from(bytes.subarray(0, cutAt % (bytes.length + 1)));
        if (damaged.length > 0 && flipAt % 3 === 0) damaged.writeUInt8(damaged.readUInt8(flipAt % damaged.length) ^ 0x20, flipAt % damaged.length);
        const scan = scanSegment(damaged);
        const walked: { offset: number; end: number; payload: Buffer }[] = [];
        const w = new SegmentWalker((p, offset, end) => walked.push({ offset, end, payload: Buffer.from(p) }));
        const piece = blocks * BLOCK_SIZE;
        const scratch = Buffer.alloc(piece);
        for (let at = 0; at < damaged.length; at += piece) {
          const n = damaged.copy(scratch, 0, at, at + piece);
          w.feed(scratch.subarray(0, n));
          scratch.fill(0xee); // whatever the walker kept a view of is now garbage
        }
        const walk = w.result();
        expect(walk.header).toEqual(scan.header);
        expect(walked.map((r) => [r.offset, r.end])).toEqual(scan.records.map((r) => [r.offset, r.end]));
        expectSameBuffers(walked.map((r) => r.payload), scan.records.map((r) => r.payload));
        expect(walk.validEnd).toBe(scan.validEnd);
        expect(walk.corruptions).toEqual(scan.corruptions);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a piece after one that ended inside a block', () => {
    const w = new SegmentWalker(() => {});
    w.feed(Buffer.alloc(10));
    expect(() => w.feed(Buffer.alloc(10))).toThrow(RangeError);
  });
});
