/**
 * Executable spec for trace fields (RFC 5321 §4.4, RFC 3848), loop counting
 * (RFC 5321 §6.3) and RFC 5322 §3.3 dates.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatRfc5322Date } from '../src/message/date';
import { buildReceived, ReceivedCounter } from '../src/message/received';
import type { ReceivedInfo } from '../src/message/received';

const b = (s: string) => Buffer.from(s, 'latin1');

const base: ReceivedInfo = {
  heloName: 'client.example.org',
  clientIp: '192.0.2.1',
  byHost: 'mx.example.net',
  protocol: 'ESMTPS',
  queueId: '01HQ3ZK9X2',
  recipient: 'bob@example.net',
  tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
  date: new Date(Date.UTC(2026, 10, 28, 7, 11, 23)),
};

/** Checks the field is one RFC 5322 header field: CRLF only at line ends, continuations start with WSP. */
function fieldLines(field: Buffer): string[] {
  const s = field.toString('utf8');
  expect(s.endsWith('\r\n')).toBe(true);
  const lines = s.slice(0, -2).split('\r\n');
  for (const l of lines) expect(l).not.toMatch(/[\r\n\0]/);
  expect(lines[0]).toMatch(/^Received: from( |$)/);
  for (const l of lines.slice(1)) {
    expect(l).toMatch(/^[ \t]\S/);
    expect(l.length).toBeLessThanOrEqual(998);
  }
  return lines;
}

/** RFC 5322 §2.2.3 unfolding, then runs of WSP collapsed to one space for comparison. */
const unfold = (field: Buffer) =>
  field.toString('utf8').replace(/\r\n(?=[ \t])/g, '').trimEnd().replace(/[ \t]+/g, ' ');

describe('buildReceived (RFC 5321 §4.4)', () => {
  it('writes the stamp in clause order, folded at 78 columns', () => {
    const field = buildReceived(base);
    for (const l of fieldLines(field)) expect(l.length).toBeLessThanOrEqual(78);
    expect(unfold(field)).toBe(
      'Received: from client.example.org ([192.0.2.1]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)' +
        ' by mx.example.net (Petrel) with ESMTPS id 01HQ3ZK9X2 for <bob@example.net>; Sat, 28 Nov 2026 07:11:23 +0000',
    );
  });

  it('puts the ";" after the id when there is no single recipient, and omits the TLS comment without TLS', () => {
    const { recipient: _r, tls: _t, ...rest } = base;
    const text = unfold(buildReceived({ ...rest, protocol: 'ESMTP' }));
    expect(text).toMatch(/with ESMTP id 01HQ3ZK9X2; Sat, 28 Nov 2026 07:11:23 \+0000$/);
    expect(text).not.toContain('using');
    expect(text).not.toContain(' for ');
  });

  it('writes IPv6 clients as [IPv6:...] and IPv4-mapped clients as IPv4', () => {
    expect(unfold(buildReceived({ ...base, clientIp: '2001:db8::1' }))).toContain('([IPv6:2001:db8::1])');
    expect(unfold(buildReceived({ ...base, clientIp: '::ffff:198.51.100.7' }))).toContain('([198.51.100.7])');
  });

  it('stands the address literal in for an empty HELO name', () => {
    expect(unfold(buildReceived({ ...base, heloName: '' }))).toMatch(/^Received: from \[192\.0\.2\.1\] \(\[192\.0\.2\.1\]\)/);
  });

  it.each([
    ['CRLF', 'evil\r\nX-Injected: yes'],
    ['CRLF.CRLF then a command', 'evil\r\n.\r\nMAIL FROM:<a@b>\r\n'],
    ['bare LF and NUL', 'a\nb\0c'],
    ['a closing parenthesis and a fake date', 'x) by fake; Mon, 1 Jan 2001 00:00:00 +0000 ('],
    ['10 KB', 'h'.repeat(10 * 1024)],
  ])('a hostile HELO (%s) stays one token', (_name, helo) => {
    const field = buildReceived({ ...base, heloName: helo });
    fieldLines(field);
    const text = unfold(field);
    const heloToken = /^Received: from (\S+) \(/.exec(text)?.[1] ?? '';
    expect(heloToken.length).toBeGreaterThan(0);
    expect(heloToken.length).toBeLessThanOrEqual(255);
    expect(heloToken).toMatch(/^[A-Za-z0-9.\-_:[\]?]+$/);
    expect(text.split(';')).toHaveLength(2);
    expect(text.match(/\(/g)).toHaveLength(text.match(/\)/g)?.length ?? -1);
  });

  it('any HELO, recipient and host give one well-formed field with exactly one ";"', () => {
    const text = fc.string({ unit: 'binary', maxLength: 300 });
    fc.assert(
      fc.property(text, text, text, text, (heloName, recipient, byHost, queueId) => {
        const field = buildReceived({ ...base, heloName, recipient, byHost, queueId });
        fieldLines(field);
        const unfolded = unfold(field);
        expect(unfolded.split(';')).toHaveLength(2);
        expect(unfolded).toMatch(/; Sat, 28 Nov 2026 07:11:23 \+0000$/);
        const counter = new ReceivedCounter();
        counter.push(Buffer.concat([field, b('\r\n')]));
        expect(counter.count).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});

/** Reference: split the header section into lines and count the ones naming Received. */
function refCount(msg: Buffer): { count: number; inHeaders: boolean } {
  const text = msg.toString('latin1');
  const lines = text.split('\n');
  const complete = lines.slice(0, -1); // the last piece has no LF yet
  let count = 0;
  for (const raw of complete) {
    const l = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (l === '') return { count, inHeaders: false };
    if (l.slice(0, 9).toLowerCase() === 'received:') count++;
  }
  const last = lines[lines.length - 1] ?? '';
  if (last.length >= 9 && last.slice(0, 9).toLowerCase() === 'received:') count++;
  return { count, inHeaders: true };
}

const headerLine = fc.oneof(
  fc.constantFrom('Received: from a by b; date', 'RECEIVED:x', 'received:', 'Received : x', 'Received\x1a x'),
  fc.constantFrom(' Received: folded', '\tReceived: folded', 'Subject: Received: no', 'X-Received: no'),
  fc.string({ unit: fc.constantFrom('R', 'e', 'c', 'i', 'v', 'd', ':', ' ', '\r', '\n', 'x'), maxLength: 12 }),
);
const cuts = fc.array(fc.nat(), { maxLength: 10 });

function chunk(buf: Buffer, cs: number[]): Buffer[] {
  const at = cs.map((c) => c % (buf.length + 1)).sort((x, y) => x - y);
  let prev = 0;
  return [...at, buf.length].map((c) => {
    const part = buf.subarray(prev, c);
    prev = c;
    return part;
  });
}

describe('ReceivedCounter (RFC 5321 §6.3 loop detection)', () => {
  it('gives the reference count under any chunking and stops at the empty line', () => {
    fc.assert(
      fc.property(fc.array(headerLine, { maxLength: 15 }), fc.array(headerLine, { maxLength: 5 }), cuts, (hs, body, cs) => {
        const msg = b(hs.map((h) => h + '\r\n').join('') + '\r\n' + body.map((x) => x + '\r\n').join(''));
        const c = new ReceivedCounter();
        for (const part of chunk(msg, cs)) c.push(part);
        expect({ count: c.count, inHeaders: c.inHeaders }).toEqual(refCount(msg));
      }),
      { numRuns: 2000 },
    );
  });

  it('counts a field whose name is split across chunks byte by byte', () => {
    const msg = b('ReCeIvEd: one\r\nReceived: two\r\n\tReceived: folded\r\n\r\nReceived: body\r\n');
    const c = new ReceivedCounter();
    for (const x of msg) c.push(Buffer.from([x]));
    expect(c.count).toBe(2);
    expect(c.inHeaders).toBe(false);
  });

  it('is still in the headers while no empty line has arrived', () => {
    const c = new ReceivedCounter();
    c.push(b('Received: a\r\nSubject: x\r\n'));
    expect(c.inHeaders).toBe(true);
    expect(c.count).toBe(1);
  });
});

describe('formatRfc5322Date (RFC 5322 §3.3)', () => {
  it.each([
    [Date.UTC(2026, 10, 28, 7, 11, 23), 'Sat, 28 Nov 2026 07:11:23 +0000'],
    [Date.UTC(2001, 4, 4, 18, 5, 44), 'Fri, 4 May 2001 18:05:44 +0000'],
    [Date.UTC(2024, 1, 29, 0, 0, 0), 'Thu, 29 Feb 2024 00:00:00 +0000'],
    [0, 'Thu, 1 Jan 1970 00:00:00 +0000'],
  ])('%s → %s', (ms, text) => {
    expect(formatRfc5322Date(new Date(ms))).toBe(text);
  });

  it('round-trips through Date.parse for any instant (to the second)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253402300799 }), (s) => {
        const text = formatRfc5322Date(new Date(s * 1000));
        expect(text).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000$/);
        expect(Date.parse(text)).toBe(s * 1000);
      }),
    );
  });

  it('rejects an invalid Date', () => {
    expect(() => formatRfc5322Date(new Date(Number.NaN))).toThrow(RangeError);
  });
});
