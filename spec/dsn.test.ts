/**
 * Executable spec for bounces: the RFC 3464 DSN inside an RFC 6522
 * multipart/report (src/message/dsn.ts), RFC 3463 status selection, and the
 * bounded header-section reader that supplies the returned headers
 * (src/message/header-scan.ts). A small strict MIME splitter below reads the DSN
 * back, so a hostile remote reply that added a field, a block or a part would show.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildDsn, statusFromReply } from '../src/message/dsn';
import type { DsnInput, DsnRecipient } from '../src/message/dsn';
import { headerSection, HeaderSectionReader, readHeaderSection } from '../src/message/header-scan';

const D = new Date(Date.UTC(2026, 10, 28, 7, 11, 23));
const DATE = 'Sat, 28 Nov 2026 07:11:23 +0000';
const HEADERS = 'Received: from client.example.org ([192.0.2.1])\r\n\tby mx.petrel.test (Petrel) with ESMTP id Q1\r\nFrom: Alice <alice@example.org>\r\nSubject: lunch\r\n';

const bob: DsnRecipient = {
  address: 'bob@example.net',
  action: 'failed',
  status: '5.1.1',
  remoteMta: 'mx.example.net',
  diagnostic: '550 5.1.1 <bob@example.net>: user unknown',
  lastAttempt: D,
};

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.petrel.test',
    queueId: 'Q1',
    sender: 'alice@example.org',
    arrivalDate: D,
    date: D,
    recipients: [bob],
    originalHeaders: Buffer.from(HEADERS, 'latin1'),
    messageIdDomain: 'petrel.test',
    ...over,
  };
}

type Fields = [string, string][];
interface Parsed {
  headers: Fields;
  parts: { headers: Fields; body: string }[];
}

/** RFC 5322 §2.2.3 fields of a header block: unfolded, names as written. */
function fields(block: string): Fields {
  const out: Fields = [];
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    const last = out[out.length - 1];
    if (/^[ \t]/.test(line) && last) last[1] += line;
    else {
      const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
      if (!m) throw new Error(`not a header field: ${JSON.stringify(line)}`);
      out.push([m[1] ?? '', m[2] ?? '']);
    }
  }
  return out;
}

const get = (f: Fields, name: string) => f.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const one = (f: Fields, name: string) => {
  const v = get(f, name);
  expect(v, name).toHaveLength(1);
  return v[0] ?? '';
};

/** Checks octet-level framing (CRLF only, ≤ 998 octets a line), then splits the multipart at its delimiter lines. */
function parse(dsn: Buffer): Parsed {
  const text = dsn.toString('latin1');
  expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  for (const line of text.split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
  const split = text.indexOf('\r\n\r\n');
  const headers = fields(text.slice(0, split));
  const boundary = /boundary="([^"]+)"/.exec(one(headers, 'Content-Type'))?.[1] ?? '';
  expect(boundary).not.toBe('');
  const lines = text.slice(split + 4).split('\r\n');
  const starts = lines.flatMap((l, i) => (l === `--${boundary}` ? [i] : []));
  const close = lines.indexOf(`--${boundary}--`);
  expect(lines.filter((l) => l.startsWith(`--${boundary}`))).toHaveLength(starts.length + 1);
  expect(close).toBeGreaterThan(starts[starts.length - 1] ?? -1);
  expect(lines.slice(close + 1).join('')).toBe('');
  const parts = starts.map((s, k) => {
    const body = lines.slice(s + 1, starts[k + 1] ?? close).join('\r\n');
    const sep = body.indexOf('\r\n\r\n');
    return { headers: fields(body.slice(0, sep)), body: body.slice(sep + 4) };
  });
  return { headers, parts };
}

/** message/delivery-status: blocks of fields separated by empty lines (RFC 3464 §2.1). */
const blocks = (body: string) =>
  body.split(/\r\n\r\n/).filter((b) => b.trim() !== '').map(fields);

describe('buildDsn: structure (RFC 3464, RFC 6522, RFC 3834)', () => {
  const p = parse(buildDsn(input()));

  it('writes the top-level fields a bounce needs', () => {
    expect(one(p.headers, 'From')).toBe('Mail Delivery System <MAILER-DAEMON@mx.petrel.test>');
    expect(one(p.headers, 'To')).toBe('<alice@example.org>');
    expect(one(p.headers, 'Subject')).toBe('Undelivered Mail Returned to Sender');
    expect(one(p.headers, 'Date')).toBe(DATE);
    expect(one(p.headers, 'Message-ID')).toMatch(/^<[^<>@\s]+\.Q1\.bounce@petrel\.test>$/);
    expect(one(p.headers, 'MIME-Version')).toBe('1.0');
    expect(one(p.headers, 'Auto-Submitted')).toBe('auto-replied');
    expect(one(p.headers, 'Content-Type')).toMatch(/^multipart\/report; report-type=delivery-status;\s*boundary="/);
  });

  it('has three parts: text/plain, message/delivery-status, text/rfc822-headers', () => {
    expect(p.parts.map((x) => one(x.headers, 'Content-Type'))).toEqual([
      'text/plain; charset=us-ascii',
      'message/delivery-status',
      'text/rfc822-headers',
    ]);
  });

  it('explains each recipient in the human-readable part, with the remote reply', () => {
    const text = p.parts[0]?.body ?? '';
    expect(text).toContain('<bob@example.net>:');
    expect(text).toContain('The mail server mx.example.net said:');
    expect(text).toContain('550 5.1.1 <bob@example.net>: user unknown');
    expect(text).toMatch(/permanent error/);
  });

  it('writes the per-message and per-recipient fields', () => {
    const [msg, rcpt, ...rest] = blocks(p.parts[1]?.body ?? '');
    expect(rest).toEqual([]);
    expect(msg).toEqual([
      ['Reporting-MTA', 'dns; mx.petrel.test'],
      ['X-Petrel-Queue-ID', 'Q1'],
      ['X-Petrel-Sender', 'rfc822; alice@example.org'],
      ['Arrival-Date', DATE],
    ]);
    expect(rcpt).toEqual([
      ['Final-Recipient', 'rfc822; bob@example.net'],
      ['Action', 'failed'],
      ['Status', '5.1.1'],
      ['Remote-MTA', 'dns; mx.example.net'],
      ['Diagnostic-Code', 'smtp; 550 5.1.1 <bob@example.net>: user unknown'],
      ['Last-Attempt-Date', DATE],
    ]);
  });

  it('returns the original headers unchanged in the third part', () => {
    expect(p.parts[2]?.body).toBe(HEADERS);
  });

  it('lists every failed recipient in one DSN, in order', () => {
    const rs: DsnRecipient[] = ['a', 'b', 'c'].map((l, i) => ({ ...bob, address: `${l}@example.net`, status: `5.1.${i + 1}` }));
    const q = parse(buildDsn(input({ recipients: rs })));
    const [, ...per] = blocks(q.parts[1]?.body ?? '');
    expect(per.map((b) => [one(b, 'Final-Recipient'), one(b, 'Status')])).toEqual([
      ['rfc822; a@example.net', '5.1.1'],
      ['rfc822; b@example.net', '5.1.2'],
      ['rfc822; c@example.net', '5.1.3'],
    ]);
    for (const a of ['a', 'b', 'c']) expect(q.parts[0]?.body).toContain(`<${a}@example.net>:`);
  });

  it('a delay warning says so: delayed action, Will-Retry-Until, its own subject and Message-ID', () => {
    const until = new Date(D.getTime() + 4 * 86_400_000);
    const r: DsnRecipient = { address: 'bob@example.net', action: 'delayed', status: '4.4.1', diagnostic: 'connect to mx.example.net[192.0.2.1]:25: Connection refused', willRetryUntil: until };
    const q = parse(buildDsn(input({ recipients: [r] })));
    expect(one(q.headers, 'Subject')).toBe('Delayed Mail (still being retried)');
    expect(one(q.headers, 'Message-ID')).toMatch(/\.Q1\.delay@/);
    const [, b] = blocks(q.parts[1]?.body ?? '');
    expect(one(b ?? [], 'Action')).toBe('delayed');
    expect(one(b ?? [], 'Will-Retry-Until')).toBe('Wed, 2 Dec 2026 07:11:23 +0000');
    expect(get(b ?? [], 'Remote-MTA')).toEqual([]);
    // Not an SMTP reply: Petrel's own account, with an X- diagnostic type (RFC 3464 §2.3.6).
    expect(one(b ?? [], 'Diagnostic-Code')).toMatch(/^X-Petrel; connect to/);
  });

  it('refuses to bounce to the null sender, and to report nobody', () => {
    expect(() => buildDsn(input({ sender: '' }))).toThrow(RangeError);
    expect(() => buildDsn(input({ recipients: [] }))).toThrow(RangeError);
    expect(() => buildDsn(input({ boundary: 'bad\r\nboundary' }))).toThrow(RangeError);
  });
});

describe('statusFromReply (RFC 3463)', () => {
  it('takes the remote enhanced code when it is valid and of the reply class', () => {
    expect(statusFromReply(550, '5.1.1')).toBe('5.1.1');
    expect(statusFromReply(421, '4.4.2')).toBe('4.4.2');
    expect(statusFromReply(552, '5.03.004')).toBe('5.3.4');
  });

  it('derives the status from the reply code otherwise', () => {
    expect(statusFromReply(550)).toBe('5.0.0');
    expect(statusFromReply(451)).toBe('4.0.0');
    expect(statusFromReply(550, '4.1.1')).toBe('5.0.0');
    expect(statusFromReply(554, '5.1')).toBe('5.0.0');
    expect(statusFromReply(554, '5.1.1234')).toBe('5.0.0');
    expect(statusFromReply(250, '2.0.0')).toBe('4.0.0');
  });

  it('a reply without an enhanced code still gives a well-formed Status and its Diagnostic-Code', () => {
    const r: DsnRecipient = { ...bob, status: statusFromReply(550), diagnostic: '550 No such user here' };
    const [, b] = blocks(parse(buildDsn(input({ recipients: [r] }))).parts[1]?.body ?? '');
    expect(one(b ?? [], 'Status')).toBe('5.0.0');
    expect(one(b ?? [], 'Diagnostic-Code')).toBe('smtp; 550 No such user here');
  });

  it('a malformed status given to buildDsn is replaced by the action class default', () => {
    const r: DsnRecipient = { ...bob, status: '5.1.1\r\nX-Evil: 1' };
    const [, b] = blocks(parse(buildDsn(input({ recipients: [r] }))).parts[1]?.body ?? '');
    expect(one(b ?? [], 'Status')).toBe('5.0.0');
  });
});

describe('buildDsn: hostile input cannot break the structure', () => {
  const BOUNDARY = 'PETREL-TEST-BOUNDARY';
  /** Pieces a hostile server or sender would use: line breaks of every kind, delimiters, fake fields, long runs. */
  const evil = fc
    .array(
      fc.oneof(
        fc.constantFrom('\r\n', '\r', '\n', '\r\n\r\n', '\0', '\x85', '\u2028', '\x0b', '\x1c', '\t', ' ', 'é', '☃'),
        fc.constantFrom(`--${BOUNDARY}`, `\r\n--${BOUNDARY}--\r\n`, '--', 'Final-Recipient: rfc822; evil@x', 'Content-Type: text/html'),
        fc.constantFrom('x'.repeat(5000), 'y '.repeat(2600)),
        fc.string({ unit: 'binary', maxLength: 40 }),
      ),
      { maxLength: 12 },
    )
    .map((xs) => xs.join(''));

  it('diagnostics, addresses and host names from the network add no field, block or part; lines stay ≤ 998', () => {
    fc.assert(
      fc.property(evil, evil, evil, fc.boolean(), (diag, addr, host, fixed) => {
        const r1: DsnRecipient = { ...bob, address: `u${addr}@example.net`, remoteMta: host, diagnostic: `550 5.1.1 ${diag}` };
        const r2: DsnRecipient = { ...bob, diagnostic: diag };
        const dsn = buildDsn(input({ recipients: [r1, r2], sender: `s${addr}@example.org`, ...(fixed ? { boundary: BOUNDARY } : {}) }));
        const p = parse(dsn);
        expect(p.parts).toHaveLength(3);
        expect(p.headers.map(([n]) => n)).toEqual(['From', 'To', 'Subject', 'Date', 'Message-ID', 'MIME-Version', 'Auto-Submitted', 'Content-Type', ...(get(p.headers, 'Content-Transfer-Encoding').length ? ['Content-Transfer-Encoding'] : [])]);
        const bs = blocks(p.parts[1]?.body ?? '');
        expect(bs).toHaveLength(3);
        for (const b of bs.slice(1)) {
          expect(b.map(([n]) => n)).toEqual(expect.arrayContaining(['Final-Recipient', 'Action', 'Status']));
          expect(get(b, 'Final-Recipient')).toHaveLength(1);
          expect(one(b, 'Final-Recipient')).toMatch(/^(rfc822|utf-8); [\x21-\x7e]/);
          for (const [, v] of b) expect(v).toMatch(/^[\x20-\x7e\t]*$/);
        }
        expect(p.parts[2]?.body).toBe(HEADERS);
      }),
      { numRuns: 150 },
    );
  });

  it('a boundary that occurs in the content is replaced by one that does not', () => {
    const dsn = buildDsn(input({ boundary: 'abc', recipients: [{ ...bob, diagnostic: '550 --abc --abc=1 abc' }] }));
    const boundary = /boundary="([^"]+)"/.exec(dsn.toString('latin1'))?.[1] ?? '';
    expect(boundary).not.toBe('abc');
    expect(boundary).not.toBe('abc=1');
    expect(parse(dsn).parts).toHaveLength(3);
  });

  it('a 5 KB reply without spaces is cut and folded: lines ≤ 998, text kept up to the cap', () => {
    const long = `550 5.7.1 ${'z'.repeat(5000)}`;
    const dsn = buildDsn(input({ recipients: [{ ...bob, diagnostic: long }] }));
    for (const line of dsn.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
    const [, b] = blocks(parse(dsn).parts[1]?.body ?? '');
    const code = one(b ?? [], 'Diagnostic-Code');
    expect(code.startsWith('smtp; 550 5.7.1 zzz')).toBe(true);
    expect(code).toMatch(/\[truncated\]$/);
    expect(code.replace(/[^z]/g, '').length).toBeGreaterThan(1900);
    expect(dsn.length).toBeLessThan(12_000);
  });

  it('a multi-line SMTP reply becomes one Diagnostic-Code line of text', () => {
    const diag = '550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please check the address.';
    const [, b] = blocks(parse(buildDsn(input({ recipients: [{ ...bob, diagnostic: diag }] }))).parts[1]?.body ?? '');
    expect(one(b ?? [], 'Diagnostic-Code')).toBe(
      'smtp; 550-5.1.1 The email account that you tried to reach does not exist. 550 5.1.1 Please check the address.',
    );
  });
});

describe('buildDsn: original headers and internationalised addresses (RFC 6533)', () => {
  it('normalises bare LF/CR to CRLF, splits lines over 998 octets, stops at an empty line', () => {
    const raw = Buffer.from(`A: 1\nB: 2\rX-Long: ${'w'.repeat(2500)}\r\n\r\nbody line\r\n`, 'latin1');
    const part = parse(buildDsn(input({ originalHeaders: raw }))).parts[2]?.body ?? '';
    expect(part.startsWith('A: 1\r\nB: 2\r\nX-Long: www')).toBe(true);
    expect(part).not.toContain('body line');
    expect(part.replace(/\r\n[ \t]/g, '').replace(/ /g, '')).toBe(`A:1\r\nB:2\r\nX-Long:${'w'.repeat(2500)}\r\n`);
  });

  it('8-bit original headers go in message/global-headers, byte for byte, with 8bit transfer encoding', () => {
    const raw = Buffer.from('Subject: caf\u00e9 \u2603\r\n', 'utf8');
    const dsn = buildDsn(input({ originalHeaders: raw }));
    const p = parse(dsn);
    expect(one(p.parts[2]?.headers ?? [], 'Content-Type')).toBe('message/global-headers');
    expect(one(p.parts[2]?.headers ?? [], 'Content-Transfer-Encoding')).toBe('8bit');
    expect(one(p.headers, 'Content-Transfer-Encoding')).toBe('8bit');
    expect(dsn.includes(raw)).toBe(true);
  });

  it('a UTF-8 recipient is written as utf-8 address type in xtext form; a UTF-8 sender as is in To:', () => {
    const r: DsnRecipient = { ...bob, address: 'jöran+tag@bücher.example' };
    const dsn = buildDsn(input({ recipients: [r], sender: 'añil@example.org' }));
    const p = parse(dsn);
    const [, b] = blocks(p.parts[1]?.body ?? '');
    expect(one(b ?? [], 'Final-Recipient')).toBe('utf-8; j\\x{F6}ran\\x{2B}tag@b\\x{FC}cher.example');
    expect(dsn.includes(Buffer.from('To: <añil@example.org>\r\n', 'utf8'))).toBe(true);
    expect(one(p.parts[0]?.headers ?? [], 'Content-Type')).toBe('text/plain; charset=utf-8');
    expect(dsn.includes(Buffer.from('<jöran+tag@bücher.example>:', 'utf8'))).toBe(true);
  });
});

describe('header-scan: the bounded header section (RFC 5322 §2.1)', () => {
  const msg = Buffer.from('A: 1\r\nB: 2\r\n folded\r\nC: 3\r\n\r\nbody\r\n\r\nmore\r\n', 'latin1');

  it('returns the fields before the empty line', () => {
    expect(headerSection(msg).toString('latin1')).toBe('A: 1\r\nB: 2\r\n folded\r\nC: 3\r\n');
    expect(headerSection(Buffer.from('\r\nbody', 'latin1')).length).toBe(0);
    expect(headerSection(Buffer.from('A: 1\nB: 2\n\nbody', 'latin1')).toString('latin1')).toBe('A: 1\nB: 2\n');
    expect(headerSection(Buffer.from('A: 1\r\nB: no end', 'latin1')).toString('latin1')).toBe('A: 1\r\nB: no end\r\n');
  });

  it('cuts before the first field that does not fit, never inside a folded field', () => {
    const r = new HeaderSectionReader(16);
    r.push(msg);
    expect(r.truncated).toBe(true);
    expect(r.headers.toString('latin1')).toBe('A: 1\r\n');
    expect(headerSection(msg, 23).toString('latin1')).toBe('A: 1\r\nB: 2\r\n folded\r\n');
    // A single field longer than the bound: its last whole line, else the bound plus CRLF.
    expect(headerSection(Buffer.from('A: 1\r\n 2\r\n 3333333333\r\n\r\n', 'latin1'), 14).toString('latin1')).toBe('A: 1\r\n 2\r\n');
    expect(headerSection(Buffer.from('Subject: 0123456789\r\n\r\n', 'latin1'), 8).toString('latin1')).toBe('Subject:\r\n');
  });

  /** Header-ish messages: fields, continuations, bare LF, and a body. */
  const messageArb = fc
    .array(fc.oneof(fc.constantFrom('A: 1', ' cont', '\tx', 'Subject: hello world', 'X: ' + 'q'.repeat(50), ''), fc.string({ maxLength: 20 })), { maxLength: 20 })
    .chain((ls) => fc.tuple(fc.constant(ls), fc.array(fc.constantFrom('\r\n', '\n'), { minLength: ls.length, maxLength: ls.length })))
    .map(([ls, ends]) => Buffer.from(ls.map((l, i) => l + (ends[i] ?? '\r\n')).join(''), 'latin1'));

  it('any chunking gives the same result; the result is bounded and a prefix of the message', () => {
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 1, max: 120 }), fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1 }), (m, max, sizes) => {
        const whole = headerSection(m, max);
        const r = new HeaderSectionReader(max);
        let at = 0;
        for (let k = 0; at < m.length && !r.done; k++) {
          const n = sizes[k % sizes.length] ?? 1;
          r.push(m.subarray(at, at + n));
          at += n;
        }
        r.finish();
        expect(r.headers.equals(whole)).toBe(true);
        expect(whole.length).toBeLessThanOrEqual(max + 2);
        // A prefix of the message, or a prefix cut inside a line with CRLF added.
        const k = whole.length - 2;
        const prefix = m.subarray(0, whole.length).equals(whole);
        expect(prefix || (m.subarray(0, k).equals(whole.subarray(0, k)) && whole.subarray(k).toString() === '\r\n')).toBe(true);
        if (r.truncated) {
          // The cut is at the last field start (a line start not led by WSP, CR or LF) within the bound, if any.
          const starts: number[] = [];
          for (let i = 1; i <= Math.min(max, m.length - 1); i++) {
            if (m[i - 1] === 0x0a && ![0x20, 0x09, 0x0d, 0x0a].includes(m[i] ?? 0)) starts.push(i);
          }
          if (starts.length > 0) {
            expect(prefix).toBe(true);
            expect(whole.length).toBe(Math.max(...starts));
          }
        }
      }),
    );
  });

  it('readHeaderSection stops pulling chunks once the header section is complete', async () => {
    let pulled = 0;
    async function* chunks() {
      for (const c of ['A: 1\r\n', 'B: 2\r\n\r\n', 'body', 'never']) {
        pulled++;
        yield Buffer.from(c, 'latin1');
      }
    }
    expect((await readHeaderSection(chunks())).toString('latin1')).toBe('A: 1\r\nB: 2\r\n');
    expect(pulled).toBe(2);
  });
});
