// Executable spec of the queue's logical record codec (src/queue/records.ts)
// and its index reducer (src/queue/index.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32Update } from '../src/queue/framing';
import { apply, dropAllPending, dropSegment, emptyIndex, isDeletable, toQueuedMessage } from '../src/queue/index';
import type { Location } from '../src/queue/index';
import { Kind, MAX_BODY_CHUNK, decodeRecord, encodeRecord, isValidId } from '../src/queue/records';
import type { CommitRecord, QueueRecord } from '../src/queue/records';

const arbId = fc.stringMatching(/^[0-9A-Z]{1,32}$/);
const arbText = fc.string({ unit: 'grapheme', maxLength: 40 });
const arbTime = fc.nat({ max: 2 ** 48 });

const arbSnapshot = fc.record({
  state: fc.constantFrom('queued' as const, 'deferred' as const, 'delivered' as const, 'failed' as const),
  attempts: fc.nat({ max: 2 ** 32 - 1 }),
  nextAttempt: fc.option(arbTime),
  lastReply: fc.option(arbText),
});

const arbRecord: fc.Arbitrary<QueueRecord> = fc.oneof(
  fc.record({
    kind: fc.constant('body' as const),
    id: arbId,
    seq: fc.nat({ max: 2 ** 32 - 1 }),
    bytes: fc.uint8Array({ maxLength: 500 }).map((a) => Buffer.from(a)),
  }),
  fc.record({
    kind: fc.constant('commit' as const),
    id: arbId,
    receivedAt: arbTime,
    sender: arbText,
    recipients: fc.array(arbText, { maxLength: 5 }),
    params: fc.record(
      { size: fc.nat(), body: fc.constantFrom('7BIT' as const, '8BITMIME' as const), smtputf8: fc.boolean() },
      { requiredKeys: ['smtputf8'] },
    ),
    clientIp: arbText,
    helo: arbText,
    size: fc.nat(),
    chunkCount: fc.nat({ max: 2 ** 32 - 1 }),
    bodyCrc: fc.nat({ max: 2 ** 32 - 1 }),
    finishes: arbId,
    held: fc.boolean(),
    states: fc.option(fc.array(arbSnapshot, { minLength: 5, maxLength: 5 })),
  }, { requiredKeys: ['kind', 'id', 'receivedAt', 'sender', 'recipients', 'params', 'clientIp', 'helo', 'size', 'chunkCount', 'bodyCrc', 'held', 'states'] })
    .map(({ held, states, ...c }) => (states === null ? c : { ...c, snapshot: { held, recipients: states.slice(0, c.recipients.length) } })),
  fc.record({
    kind: fc.constant('rcpt' as const),
    id: arbId,
    index: fc.nat({ max: 1000 }),
    outcome: fc.oneof(
      fc.constant({ state: 'delivered' as const }),
      fc.record({ state: fc.constant('delivered' as const), reply: arbText }),
      fc.record({ state: fc.constant('deferred' as const), nextAt: arbTime, attempts: fc.nat({ max: 1000 }), reply: arbText }),
      fc.record({ state: fc.constant('failed' as const), reply: arbText }),
    ),
  }),
  fc.record({ kind: fc.constant('op' as const), id: arbId, op: fc.constantFrom('hold' as const, 'release' as const, 'delete' as const, 'flush' as const) }),
  fc.record({ kind: fc.constant('done' as const), id: arbId }),
);

describe('record codec', () => {
  it('decode(encode(r)) = r for every record kind', () => {
    fc.assert(
      fc.property(arbRecord, (r) => {
        expect(decodeRecord(encodeRecord(r))).toEqual({ ok: true, record: r });
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on arbitrary bytes, and rejects any truncation of a valid record', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (a) => {
        decodeRecord(Buffer.from(a));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(arbRecord, fc.nat(), (r, n) => {
        const b = encodeRecord(r);
        const cut = n % b.length;
        expect(decodeRecord(b.subarray(0, cut)).ok).toBe(false);
      }),
    );
  });

  it('rejects trailing bytes', () => {
    const b = Buffer.concat([encodeRecord({ kind: 'done', id: 'A1' }), Buffer.from([0])]);
    expect(decodeRecord(b)).toMatchObject({ ok: false, reason: 'trailing bytes after record' });
  });

  it('a kind byte with the high bit set is safe to ignore; other unknown kinds are not', () => {
    expect(decodeRecord(Buffer.from([0x80 | 0x58, 1, 2]))).toMatchObject({ ok: false, ignorable: true });
    expect(decodeRecord(Buffer.from([0x58, 1, 2]))).toMatchObject({ ok: false, ignorable: false });
  });

  it('kind bytes are the ASCII letters of the format doc', () => {
    expect(String.fromCharCode(Kind.body, Kind.commit, Kind.rcpt, Kind.op, Kind.done)).toBe('BCROD');
  });

  it('refuses ids that are empty, longer than 32 chars, or not printable ASCII', () => {
    for (const id of ['', 'x'.repeat(33), 'a b', 'é']) {
      expect(isValidId(id)).toBe(false);
      expect(() => encodeRecord({ kind: 'done', id })).toThrow(RangeError);
    }
    expect(isValidId('x'.repeat(32))).toBe(true);
  });

  it('refuses a BODY chunk over 64 KiB', () => {
    expect(() => encodeRecord({ kind: 'body', id: 'A', seq: 0, bytes: Buffer.alloc(MAX_BODY_CHUNK + 1) })).toThrow(RangeError);
  });

  it('crc32Update keeps the running value over empty input (Node 20 zlib.crc32 does not)', () => {
    expect(crc32Update(12345, Buffer.alloc(0))).toBe(12345);
  });
});

// ---------------------------------------------------------------------------

const at = (segment: number, offset: number): Location => ({ segment, offset, end: offset + 1 });
const commit = (id: string, recipients: string[], chunkCount = 0, size = 0): QueueRecord => ({
  kind: 'commit', id, receivedAt: 1000, sender: 's@x', recipients, params: { smtputf8: false },
  clientIp: '127.0.0.1', helo: 'h', size, chunkCount, bodyCrc: 0,
});

describe('index reducer', () => {
  it('BODY without COMMIT stays pending and is dropped; COMMIT makes the message', () => {
    const ix = emptyIndex();
    apply(ix, { kind: 'body', id: 'A', seq: 0, bytes: Buffer.from('ab') }, at(1, 10));
    apply(ix, { kind: 'body', id: 'B', seq: 0, bytes: Buffer.from('c') }, at(1, 20));
    apply(ix, commit('A', ['r@y'], 1, 2), at(2, 30));
    dropAllPending(ix);
    expect([...ix.messages.keys()]).toEqual(['A']);
    expect(ix.messages.get('A')?.chunks).toEqual([at(1, 10)]);
    expect(ix.live).toEqual(new Map([[1, 1], [2, 1]]));
    expect(ix.problems).toEqual([]);
  });

  it('RCPT outcomes move recipient states; DONE frees the segments', () => {
    const ix = emptyIndex();
    apply(ix, commit('A', ['a@y', 'b@y', 'c@y']), at(1, 0));
    apply(ix, { kind: 'rcpt', id: 'A', index: 0, outcome: { state: 'delivered' } }, at(1, 5));
    apply(ix, { kind: 'rcpt', id: 'A', index: 1, outcome: { state: 'deferred', nextAt: 5000, attempts: 2, reply: '451 4.4.1 later' } }, at(2, 0));
    apply(ix, { kind: 'rcpt', id: 'A', index: 2, outcome: { state: 'failed', reply: '550 5.1.1 no' } }, at(2, 5));
    const m = toQueuedMessage(ix.messages.get('A')!);
    expect(m.recipients).toEqual([
      { address: 'a@y', state: 'delivered', attempts: 1, nextAttempt: null, lastReply: null },
      { address: 'b@y', state: 'deferred', attempts: 2, nextAttempt: 5000, lastReply: '451 4.4.1 later' },
      { address: 'c@y', state: 'failed', attempts: 1, nextAttempt: null, lastReply: '550 5.1.1 no' },
    ]);
    expect(ix.live).toEqual(new Map([[1, 1], [2, 1]]));
    apply(ix, { kind: 'done', id: 'A' }, at(3, 0));
    expect(ix.messages.size).toBe(0);
    expect(ix.live.size).toBe(0);
  });

  it('OP hold/release/flush/delete', () => {
    const ix = emptyIndex();
    apply(ix, commit('A', ['a@y']), at(1, 0));
    apply(ix, { kind: 'rcpt', id: 'A', index: 0, outcome: { state: 'deferred', nextAt: 9, attempts: 1, reply: 'r' } }, at(1, 1));
    apply(ix, { kind: 'op', id: 'A', op: 'hold' }, at(1, 2));
    expect(ix.messages.get('A')?.held).toBe(true);
    apply(ix, { kind: 'op', id: 'A', op: 'release' }, at(1, 3));
    expect(ix.messages.get('A')?.held).toBe(false);
    apply(ix, { kind: 'op', id: 'A', op: 'flush' }, at(1, 4));
    expect(ix.messages.get('A')?.recipients[0]).toMatchObject({ state: 'queued', nextAttempt: null, attempts: 1, lastReply: 'r' });
    apply(ix, { kind: 'op', id: 'A', op: 'delete' }, at(1, 5));
    expect(ix.messages.has('A')).toBe(false);
  });

  it('a COMMIT whose chunks are missing is kept (never lose mail) and reported', () => {
    const ix = emptyIndex();
    apply(ix, { kind: 'body', id: 'A', seq: 1, bytes: Buffer.from('x') }, at(1, 0));
    apply(ix, commit('A', ['a@y'], 2, 2), at(1, 9));
    expect(ix.messages.has('A')).toBe(true);
    expect(ix.problems.map((p) => p.problem)).toEqual(['BODY seq 1, expected 0', 'COMMIT says 2 chunks/2 bytes, log has 1/1']);
  });

  it('a newer COMMIT of the same id supersedes the older copy (compaction copies forward)', () => {
    const ix = emptyIndex();
    apply(ix, commit('A', ['a@y']), at(1, 0));
    apply(ix, commit('A', ['a@y']), at(2, 0));
    expect(ix.live).toEqual(new Map([[2, 1]]));
  });

  it('a copy supersedes its original whatever order the ids came in (the index skips lookups for ids past all others)', () => {
    const ix = emptyIndex();
    for (const id of ['M', 'B', 'Z', 'A']) apply(ix, commit(id, ['a@y']), at(1, 0));
    for (const id of ['A', 'Z', 'B']) apply(ix, commit(id, ['a@y']), at(2, 0));
    expect([...ix.messages.keys()].sort()).toEqual(['A', 'B', 'M', 'Z']);
    expect(ix.live).toEqual(new Map([[1, 1], [2, 3]]));
    expect(ix.messages.get('Z')?.commitSegments).toEqual(new Set([1, 2]));
    expect(ix.messages.get('M')?.commitSegments).toEqual(new Set([1]));
  });

  it('an entry gives back its chunks in order, its envelope and MAIL parameters as committed', () => {
    const ix = emptyIndex();
    for (let seq = 0; seq < 4; seq++) apply(ix, { kind: 'body', id: 'A', seq, bytes: Buffer.alloc(seq + 1) }, at(1 + (seq >> 1), 100 * seq));
    const params = { smtputf8: true, size: 123_456, body: '8BITMIME' as const };
    const r: CommitRecord = { ...(commit('A', ['x@y', 'z@y'], 4, 10) as CommitRecord), receivedAt: 1_790_000_000_123, params, bodyCrc: 0xfedcba98, prefixed: true };
    apply(ix, r, at(3, 0));
    const e = ix.messages.get('A')!;
    expect(e.chunks).toEqual([at(1, 0), at(1, 100), at(2, 200), at(2, 300)]);
    expect([e.chunkCount, e.chunkAt(3), e.chunkAt(4), e.chunkAt(-1)]).toEqual([4, at(2, 300), undefined, undefined]);
    expect(e.envelope).toEqual({ sender: 's@x', recipients: ['x@y', 'z@y'], params, clientIp: '127.0.0.1', helo: 'h', receivedAt: 1_790_000_000_123, prefixed: true });
    expect(Object.keys(e.params)).toEqual(['smtputf8', 'size', 'body']); // as decodeRecord orders them
    expect([e.bodyCrc, e.receivedAt, e.size]).toEqual([0xfedcba98, 1_790_000_000_123, 10]);
    expect(toQueuedMessage(e).params).toEqual(params);
  });

  it('a copied-forward COMMIT resumes with its snapshot: states, attempts, replies, held', () => {
    const ix = emptyIndex();
    apply(ix, commit('A', ['a@y', 'b@y']), at(1, 0));
    const snapshot = {
      held: true,
      recipients: [
        { state: 'delivered' as const, attempts: 1, nextAttempt: null, lastReply: '250 ok' },
        { state: 'deferred' as const, attempts: 4, nextAttempt: 77, lastReply: '451 later' },
      ],
    };
    apply(ix, { ...(commit('A', ['a@y', 'b@y']) as CommitRecord), snapshot }, at(3, 0));
    const m = toQueuedMessage(ix.messages.get('A')!);
    expect(m.held).toBe(true);
    expect(m.recipients).toEqual(snapshot.recipients.map((r, i) => ({ address: ['a@y', 'b@y'][i], ...r })));
    expect(ix.live).toEqual(new Map([[3, 1]]));
    expect(ix.messages.get('A')?.commitSegments).toEqual(new Set([1, 3]));
  });

  it('a tombstone whose COMMITs survive in older segments pins its own segment until those are dropped', () => {
    const ix = emptyIndex();
    apply(ix, commit('A', ['a@y']), at(1, 0));
    apply(ix, commit('A', ['a@y']), at(2, 0)); // copy
    apply(ix, { kind: 'done', id: 'A' }, at(4, 0));
    expect(isDeletable(ix, 4)).toBe(false);
    expect(isDeletable(ix, 1) && isDeletable(ix, 2)).toBe(true);
    dropSegment(ix, 2);
    expect(isDeletable(ix, 4)).toBe(false);
    dropSegment(ix, 1);
    expect(isDeletable(ix, 4)).toBe(true);
    expect(ix.ghosts.size).toBe(0);
    // a COMMIT and its DONE in the same segment need no ghost
    apply(ix, commit('B', ['b@y']), at(5, 0));
    apply(ix, { kind: 'op', id: 'B', op: 'delete' }, at(5, 9));
    expect(ix.ghosts.size).toBe(0);
    expect(isDeletable(ix, 5)).toBe(true);
  });

  it('a bounce COMMIT that finishes its original is the original\'s tombstone', () => {
    const ix = emptyIndex();
    apply(ix, commit('O', ['a@y']), at(1, 0));
    apply(ix, { ...(commit('BOUNCE', ['s@x']) as CommitRecord), sender: '', finishes: 'O' }, at(2, 0));
    expect([...ix.messages.keys()]).toEqual(['BOUNCE']);
    expect(ix.ghosts.get('O')).toEqual({ tomb: 2, commits: new Set([1]) });
  });

  it('BODY seq 0 again restarts a transaction (a copy torn by a crash, then made again)', () => {
    const ix = emptyIndex();
    apply(ix, { kind: 'body', id: 'A', seq: 0, bytes: Buffer.from('torn') }, at(1, 0));
    apply(ix, { kind: 'body', id: 'A', seq: 1, bytes: Buffer.from('torn') }, at(1, 10));
    apply(ix, { kind: 'body', id: 'A', seq: 0, bytes: Buffer.from('ok') }, at(2, 0));
    apply(ix, commit('A', ['a@y'], 1, 2), at(2, 10));
    expect(ix.messages.get('A')?.chunks).toEqual([at(2, 0)]);
    expect(ix.problems).toEqual([]);
    expect(ix.live).toEqual(new Map([[2, 1]]));
  });

  it('records for unknown ids and out-of-range recipients never throw', () => {
    fc.assert(
      fc.property(fc.array(arbRecord, { maxLength: 30 }), (rs) => {
        const ix = emptyIndex();
        rs.forEach((r, i) => apply(ix, r, at(1 + (i % 3), i)));
        dropAllPending(ix);
        const live = [...ix.live.values()].reduce((a, b) => a + b, 0);
        const held = [...ix.messages.values()].reduce((a, m) => a + m.segments.size, 0);
        expect(live).toBe(held);
      }),
    );
  });
});
