/**
 * The streaming message observer (src/auth/message-observer.ts): whatever the
 * chunking, the stored bytes, the header fields and every body digest equal a
 * one-shot computation over the whole message (rawFields, bodyHash); forged
 * Authentication-Results carrying our authserv-id are cut out byte-exact
 * (RFC 8601 §5); an oversized header section passes through untouched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authservIdOf } from '../src/auth/auth-results';
import { bodyHash, rawFields } from '../src/auth/dkim/canon';
import { hashOf, parseSignature } from '../src/auth/dkim/signature';
import { unfoldValue } from '../src/auth/dkim/verify';
import { DEFAULT_MAX_HEADER_BYTES, MessageObserver, type ObservedMessage, type ObserverOptions } from '../src/auth/message-observer';
import { HeaderParser, parseHeader } from '../src/message/header';
import { parseMessage } from '../src/message/parse';
import { splitAt } from './helpers/chunks';

const OURS = 'mx.petrel.test';
const B64 = 'dGVzdA==';

function run(message: Buffer, cuts: readonly number[], opts: Partial<ObserverOptions> = {}): { stored: Buffer; observed: ObservedMessage | null; outputs: Buffer[][] } {
  const o = new MessageObserver({ authservId: OURS, verify: true, sign: true, ...opts });
  const outputs = splitAt(message, cuts).map((c) => o.push(c));
  outputs.push(o.end());
  return { stored: Buffer.concat(outputs.flat()), observed: o.observed, outputs };
}

/** The header section ends (as HeaderParser decides) within max + 1 bytes, at or before max; or the message is no longer than max. */
function observable(message: Buffer, max: number): boolean {
  const p = new HeaderParser();
  p.push(message.subarray(0, max + 1));
  return p.done ? p.bodyOffset <= max : message.length <= max;
}

/** One-shot model of what the observer stores and sees. */
function model(message: Buffer, max: number) {
  if (!observable(message, max)) return { stored: message, observed: null };
  const { fields, bodyOffset } = rawFields(message);
  const parsed = parseHeader(message).fields;
  const ours = parsed.filter((f) => f.name.toLowerCase() === 'authentication-results' && authservIdOf(f.value)?.toLowerCase() === OURS);
  let stored = message;
  for (const f of [...ours].reverse()) stored = Buffer.concat([stored.subarray(0, f.start), stored.subarray(f.end)]);
  const body = message.subarray(bodyOffset);
  const sigs = fields.filter((f) => f.name.toLowerCase() === 'dkim-signature').slice(0, 8).map((f) => {
    const p = parseSignature(unfoldValue(f.raw));
    if (!p.ok || p.sig.algorithm === 'rsa-sha1') return { kind: 'unusable' };
    const d = bodyHash(body, p.sig.bodyCanon, hashOf(p.sig.algorithm), p.sig.bodyLength);
    return { kind: 'parsed', hash: d.hash.toString('hex'), length: d.length };
  });
  const domains = [...new Set(parseMessage(message).from.filter((m) => m.address.includes('@')).map((m) => m.address.slice(m.address.lastIndexOf('@') + 1).toLowerCase()).filter((d) => d !== ''))];
  return { stored, observed: { fields, bodyOffset, sigs, signing: bodyHash(body, 'relaxed', 'sha256'), removed: ours.length, domains } };
}

const sigArb = fc.record({
  a: fc.constantFrom('rsa-sha256', 'ed25519-sha256', 'rsa-sha1'),
  c: fc.constantFrom('', 'c=simple; ', 'c=relaxed/relaxed; ', 'c=simple/relaxed; ', 'c=relaxed/simple; '),
  l: fc.option(fc.nat(40), { nil: undefined }),
}).map(({ a, c, l }) => `DKIM-Signature: v=1; a=${a}; ${c}d=example.com; s=sel;\r\n\th=from:subject; bh=${B64}; b=${B64}${l === undefined ? '' : `; l=${l}`}\r\n`);

const fieldArb = fc.oneof(
  fc.constantFrom('From: Alice <alice@Example.COM>\r\n', 'From: a@x.example, b@y.example\r\n', 'From: Whoever\r\n', 'From: team: a@g.example, b@g.example;\r\n'),
  fc.constantFrom('Subject: hello\r\n world\r\n', 'To: bob@example.net\r\n', 'X-8bit: caf\xe9\r\n', 'Received: from x\r\n\tby y\r\n'),
  fc.constantFrom(`${OURS}; spf=pass`, `MX.Petrel.TEST; dkim=pass`, `(forged) ${OURS};\r\n\tdmarc=pass`, 'other.example; spf=pass', `"${OURS}"; spf=pass`).map((v) => `Authentication-Results: ${v}\r\n`),
  sigArb,
  fc.constantFrom('DKIM-Signature: v=2; garbage\r\n', 'DKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n'),
);
const bodyArb = fc.array(fc.constantFrom('text', ' ', '\t', '\r\n', '\r\n\r\n', '\xe9\xff', '.', 'a  b'), { maxLength: 40 }).map((x) => x.join(''));
const messageArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.array(fieldArb, { maxLength: 12 }), fc.boolean(), bodyArb).map(([fs, blank, body]) => Buffer.from(`${fs.join('')}${blank ? '\r\n' : ''}${body}`, 'latin1')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) },
);
const cutsArb = fc.array(fc.nat(2000), { maxLength: 12 });
const maxArb = fc.oneof(fc.constant(DEFAULT_MAX_HEADER_BYTES), fc.integer({ min: 0, max: 400 }));

function digestView(o: ObservedMessage) {
  return {
    fields: o.fields,
    bodyOffset: o.bodyOffset,
    sigs: o.signatures.map((s) => (s.kind === 'parsed' ? { kind: s.kind, hash: s.body.hash.toString('hex'), length: s.body.length } : { kind: s.kind })),
    signing: o.signingBody,
    removed: o.removedAuthResults,
    domains: o.fromDomains,
  };
}

describe('any chunking gives the one-shot result', () => {
  it('stored bytes, fields and every body digest', () => {
    fc.assert(fc.property(messageArb, cutsArb, maxArb, (message, cuts, max) => {
      const got = run(message, cuts, { maxHeaderBytes: max });
      const want = model(message, max);
      expect(got.stored.equals(want.stored)).toBe(true);
      expect(got.observed === null).toBe(want.observed === null);
      if (got.observed !== null) expect(digestView(got.observed)).toEqual(want.observed);
      expect(got.observed).toEqual(run(message, [], { maxHeaderBytes: max }).observed);
    }), { numRuns: 400 });
  });

  it('1-byte chunks', () => {
    fc.assert(fc.property(messageArb, (message) => {
      const cuts = Array.from({ length: message.length }, (_x, i) => i);
      expect(run(message, cuts).observed).toEqual(run(message, []).observed);
      expect(run(message, cuts).stored.equals(model(message, DEFAULT_MAX_HEADER_BYTES).stored)).toBe(true);
    }), { numRuns: 60 });
  });
});

describe('forged Authentication-Results (RFC 8601 §5)', () => {
  const head = 'Received: from a by b\r\n';
  const forged1 = `Authentication-Results: ${OURS}; dkim=pass header.d=bank.example\r\n`;
  const forged2 = `Authentication-Results: (comment)\r\n MX.PETREL.TEST;\r\n\tspf=pass\r\n`;
  const theirs = 'Authentication-Results: relay.other.example; spf=fail\r\n';
  const lookalike = `Authentication-Results: ${OURS}.evil.example; spf=pass\r\n`;
  const rest = 'From: a@bank.example\r\nSubject: s\r\n\r\nbody \xe9\r\n';
  const message = Buffer.from(head + forged1 + theirs + forged2 + lookalike + rest, 'latin1');

  it('removes exactly ours, every other byte unchanged, under any chunking', () => {
    const expected = Buffer.from(head + theirs + lookalike + rest, 'latin1');
    fc.assert(fc.property(cutsArb, (cuts) => {
      const { stored, observed } = run(message, cuts);
      expect(stored.equals(expected)).toBe(true);
      expect(observed?.removedAuthResults).toBe(2);
      expect(observed?.fields.length).toBe(7); // verification still sees the originals
      expect(observed?.storedFields.map((f) => f.raw).join('')).toBe(head + theirs + lookalike + 'From: a@bank.example\r\nSubject: s\r\n');
    }), { numRuns: 50 });
  });

  it('leaves them alone when not verifying (outbound)', () => {
    expect(run(message, [5, 50], { verify: false }).stored.equals(message)).toBe(true);
  });
});

describe('oversized header section', () => {
  const big = Buffer.from(`${'X-Pad: '.padEnd(900, 'p')}\r\n`.repeat(120) + 'From: a@b.example\r\n\r\nbody\r\n', 'latin1');

  it('passes through unchanged and observes nothing', () => {
    fc.assert(fc.property(cutsArb, (cuts) => {
      const { stored, observed } = run(big, cuts.map((c) => c * 60));
      expect(stored.equals(big)).toBe(true);
      expect(observed).toBeNull();
    }), { numRuns: 30 });
  });

  it('after giving up, later chunks are returned as they are', () => {
    const o = new MessageObserver({ authservId: OURS, verify: true, sign: true, maxHeaderBytes: 10 });
    expect(o.push(Buffer.from('From: a@b.example\r\n'))).toHaveLength(1);
    const later = Buffer.from('more');
    expect(o.push(later)[0]).toBe(later);
  });

  it('the bound is on the section: max bytes observe, max + 1 do not', () => {
    const msg = Buffer.from('From: a@b.example\r\n\r\nbody', 'latin1');
    const section = msg.indexOf('body');
    expect(run(msg, [3], { maxHeaderBytes: section }).observed).not.toBeNull();
    expect(run(msg, [3], { maxHeaderBytes: section - 1 }).observed).toBeNull();
  });
});

describe('shapes of message', () => {
  it('no empty line: the whole message is header, the body is empty', () => {
    const msg = Buffer.from('From: a@b.example\r\nSubject: x\r\n', 'latin1');
    const { stored, observed } = run(msg, [7]);
    expect(stored.equals(msg)).toBe(true);
    expect(observed?.fields.map((f) => f.name)).toEqual(['From', 'Subject']);
    expect(observed?.bodyOffset).toBe(msg.length);
    expect(observed?.signingBody).toEqual(bodyHash(Buffer.alloc(0), 'relaxed', 'sha256'));
  });

  it('empty body after the empty line', () => {
    const msg = Buffer.from('From: a@b.example\r\n\r\n', 'latin1');
    const { observed } = run(msg, [19, 20]);
    expect(observed?.bodyOffset).toBe(msg.length);
    expect(observed?.signingBody?.length).toBe(0);
  });

  it('a message that starts with CRLF has no header fields', () => {
    const { observed } = run(Buffer.from('\r\nFrom: not a header\r\n'), [1]);
    expect(observed?.fields).toEqual([]);
    expect(observed?.bodyOffset).toBe(2);
    expect(observed?.fromDomains).toEqual([]);
  });

  it('an empty message', () => {
    const { stored, observed } = run(Buffer.alloc(0), []);
    expect(stored.length).toBe(0);
    expect(observed?.fields).toEqual([]);
  });

  it('8-bit header and body bytes are kept and hashed as they are', () => {
    const msg = Buffer.from('From: a@b.example\r\nSubject: \xc3\xa9t\xe9\r\n\r\n\x80\xff caf\xe9\r\n', 'latin1');
    const { stored, observed } = run(msg, [25, 40]);
    expect(stored.equals(msg)).toBe(true);
    expect(observed?.fields[1]?.raw).toBe('Subject: \xc3\xa9t\xe9\r\n');
    expect(observed?.signingBody).toEqual(bodyHash(msg.subarray(msg.indexOf('\r\n\r\n') + 4), 'relaxed', 'sha256'));
  });

  it('bare CR and bare LF do not throw', () => {
    const msg = Buffer.from('From: a@b.example\nX: y\rz\r\n\n\rbody\n', 'latin1');
    expect(run(msg, [1, 2, 3, 20]).stored.equals(msg)).toBe(true);
  });

  it('with neither verify nor sign it only passes bytes through', () => {
    const msg = Buffer.from(`Authentication-Results: ${OURS}; spf=pass\r\n\r\nx`, 'latin1');
    const { stored, observed, outputs } = run(msg, [4], { verify: false, sign: false });
    expect(stored.equals(msg)).toBe(true);
    expect(observed).toBeNull();
    expect(outputs[0]?.length).toBe(1);
  });
});

describe('signatures and From', () => {
  const sig = (extra: string): string => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s; h=from; bh=${B64}; b=${B64}${extra}\r\n`;

  it('at most maxSignatures are parsed; the rest are counted', () => {
    const msg = Buffer.from(Array.from({ length: 11 }, (_x, i) => sig(`; l=${i}`)).join('') + 'From: a@b.example\r\n\r\nhello world\r\n', 'latin1');
    const { observed } = run(msg, [100]);
    expect(observed?.signatures).toHaveLength(8);
    expect(observed?.ignoredSignatures).toBe(3);
    const lengths = observed?.signatures.map((s) => (s.kind === 'parsed' ? s.body.length : -1));
    expect(lengths).toEqual(Array(8).fill(13)); // l= limits the hash, length counts the whole canonical body
  });

  it('unparsable and rsa-sha1 signatures are kept as unusable with a reason', () => {
    const msg = Buffer.from(`DKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n${sig('').replace('rsa-sha256', 'rsa-sha1')}From: a@b.example\r\n\r\n`, 'latin1');
    const reasons = run(msg, []).observed?.signatures.map((s) => (s.kind === 'unusable' ? s.reason : 'parsed'));
    expect(reasons?.[0]).toMatch(/missing required tag/);
    expect(reasons?.[1]).toMatch(/RFC 8301/);
  });

  it('no signatures are parsed, and no signing digest is made, when not asked', () => {
    const msg = Buffer.from(`${sig('')}From: a@b.example\r\n\r\nx`, 'latin1');
    expect(run(msg, [], { verify: false }).observed?.signatures).toEqual([]);
    expect(run(msg, [], { sign: false }).observed?.signingBody).toBeNull();
  });

  it.each([
    ['From: "Alice" <alice@Example.COM>\r\n', 1, ['example.com']],
    ['From: a@x.example, B <b@Y.example>\r\n', 1, ['x.example', 'y.example']],
    ['From: a@x.example\r\nFrom: b@x.example\r\n', 2, ['x.example']],
    ['From: undisclosed\r\n', 1, []],
    ['Sender: s@z.example\r\n', 0, []],
  ] as const)('From domains of %j', (fields, count, domains) => {
    const { observed } = run(Buffer.from(`${fields}\r\nbody`, 'latin1'), []);
    expect(observed?.fromFields).toBe(count);
    expect(observed?.fromDomains).toEqual(domains);
  });
});
