/**
 * Petrel's DSN read back by an independent MIME parser: Python's email package
 * (test/message/py/parse_dsn.py). Checks RFC 6522 multipart/report with
 * report-type=delivery-status, RFC 3464 message/delivery-status (which Python
 * parses as a list of header blocks), the returned headers (text/rfc822-headers,
 * or RFC 6533 message/global-headers when 8-bit), and that the parser records no
 * defect anywhere, hostile remote replies included.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDsn, statusFromReply } from '../../src/message/dsn';
import type { DsnInput, DsnRecipient } from '../../src/message/dsn';
import { headerSection } from '../../src/message/header-scan';
import { REPO, runProgram } from '../helpers/spawn';

const SCRIPT = join(REPO, 'test', 'message', 'py', 'parse_dsn.py');
const D = new Date(Date.UTC(2026, 10, 28, 7, 11, 23));
const HEADERS = 'Received: from client.example.org ([192.0.2.1])\r\n\tby mx.petrel.test (Petrel) with ESMTP id Q1\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: lunch\r\nMessage-ID: <m1@example.org>\r\n';

type Fields = [string, string][];
interface PyPart {
  content_type: string;
  headers: Fields;
  blocks?: Fields[];
  text?: string;
  headers_part?: Fields;
}
interface PyDsn {
  is_multipart: boolean;
  content_type: string;
  report_type: string | null;
  boundary: string;
  headers: Fields;
  date_ok: boolean;
  to_addresses: string[];
  parts: PyPart[];
  defects: string[];
  epilogue: string | null;
}

const bob: DsnRecipient = {
  address: 'bob@example.net',
  action: 'failed',
  status: statusFromReply(550, '5.1.1'),
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

const hostile = `550 5.7.1 evil\r\n\r\n--HOSTILE\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n--HOSTILE--\r\nFinal-Recipient: rfc822; injected@x\u2028\x85 ${'A'.repeat(5000)}`;
const longHeaders = Buffer.from(`${HEADERS}${'X-Filler: ' + 'f'.repeat(70) + '\r\n'}`.repeat(1) + 'X-Filler: f\r\n'.repeat(9000) + '\r\nbody\r\n', 'latin1');

const CASES = {
  basic: input(),
  several: input({
    recipients: [
      bob,
      { ...bob, address: 'carol@example.net', status: statusFromReply(554), diagnostic: '554 Transaction failed' },
      { address: 'dave@example.com', action: 'delayed', status: statusFromReply(451, '4.7.1'), remoteMta: 'mx.example.com', diagnostic: '451 4.7.1 greylisted, try again later', lastAttempt: D, willRetryUntil: new Date(D.getTime() + 4 * 86_400_000) },
    ],
  }),
  hostile: input({ boundary: 'HOSTILE', recipients: [{ ...bob, diagnostic: hostile, remoteMta: 'mx.example.net\r\nX-Evil: 1' }] }),
  delayed: input({ recipients: [{ ...bob, action: 'delayed', status: '4.4.1', diagnostic: 'connect to mx.example.net[192.0.2.1]:25: Connection timed out', willRetryUntil: D }] }),
  utf8: input({
    sender: 'añil@example.org',
    recipients: [{ ...bob, address: 'jöran+tag@bücher.example' }],
    originalHeaders: Buffer.from('From: Añil <añil@example.org>\r\nSubject: café ☃\r\n', 'utf8'),
  }),
  truncated: input({ originalHeaders: headerSection(longHeaders, 64 * 1024) }),
} satisfies Record<string, DsnInput>;

let dir = '';
const parsed: Record<string, PyDsn> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'petrel-dsn-'));
  const names = Object.keys(CASES) as (keyof typeof CASES)[];
  const files = names.map((n) => {
    const f = join(dir, `${n}.eml`);
    writeFileSync(f, buildDsn(CASES[n]));
    return f;
  });
  const r = await runProgram('python3', ['-B', SCRIPT, ...files]);
  if (r.status !== 0) throw new Error(`parse_dsn.py failed (${r.status}): ${r.stdout} ${r.stderr}`);
  const out = JSON.parse(r.stdout) as PyDsn[];
  names.forEach((n, i) => (parsed[n] = out[i] as PyDsn));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const get = (f: Fields, name: string) => f.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
const dsn = (name: keyof typeof CASES) => parsed[name] as PyDsn;
const status = (name: keyof typeof CASES) => dsn(name).parts[1]?.blocks ?? [];

describe("Python's email package reads Petrel's DSN", () => {
  it('multipart/report; report-type=delivery-status, three parts in RFC 6522 order, no defects', () => {
    for (const name of Object.keys(CASES) as (keyof typeof CASES)[]) {
      const m = dsn(name);
      expect(m.defects, name).toEqual([]);
      expect(m.is_multipart, name).toBe(true);
      expect(m.content_type, name).toBe('multipart/report');
      expect(m.report_type, name).toBe('delivery-status');
      expect(m.parts.map((p) => p.content_type), name).toEqual([
        'text/plain',
        'message/delivery-status',
        name === 'utf8' ? 'message/global-headers' : 'text/rfc822-headers',
      ]);
      expect(m.date_ok, name).toBe(true);
      expect(get(m.headers, 'Auto-Submitted'), name).toEqual(['auto-replied']);
    }
  });

  it('top-level fields: From MAILER-DAEMON, To the sender, Subject, Message-ID', () => {
    const m = dsn('basic');
    expect(get(m.headers, 'From')).toEqual(['Mail Delivery System <MAILER-DAEMON@mx.petrel.test>']);
    expect(m.to_addresses).toEqual(['alice@example.org']);
    expect(get(m.headers, 'Subject')).toEqual(['Undelivered Mail Returned to Sender']);
    expect(get(m.headers, 'Message-ID')[0]).toMatch(/^<.+\.Q1\.bounce@petrel\.test>$/);
    expect(get(dsn('delayed').headers, 'Subject')).toEqual(['Delayed Mail (still being retried)']);
  });

  it('the delivery-status part is a list of blocks: per-message fields, then one block per recipient', () => {
    const [msg, rcpt, ...rest] = status('basic');
    expect(rest).toEqual([]);
    expect(get(msg ?? [], 'Reporting-MTA')).toEqual(['dns; mx.petrel.test']);
    expect(get(msg ?? [], 'X-Petrel-Queue-ID')).toEqual(['Q1']);
    expect(get(msg ?? [], 'Arrival-Date')).toEqual(['Sat, 28 Nov 2026 07:11:23 +0000']);
    expect(rcpt).toEqual([
      ['Final-Recipient', 'rfc822; bob@example.net'],
      ['Action', 'failed'],
      ['Status', '5.1.1'],
      ['Remote-MTA', 'dns; mx.example.net'],
      ['Diagnostic-Code', 'smtp; 550 5.1.1 <bob@example.net>: user unknown'],
      ['Last-Attempt-Date', 'Sat, 28 Nov 2026 07:11:23 +0000'],
    ]);
  });

  it('several recipients: with and without an enhanced code, failed and delayed, in one DSN', () => {
    const [, ...per] = status('several');
    expect(per.map((b) => [get(b, 'Final-Recipient')[0], get(b, 'Action')[0], get(b, 'Status')[0]])).toEqual([
      ['rfc822; bob@example.net', 'failed', '5.1.1'],
      ['rfc822; carol@example.net', 'failed', '5.0.0'],
      ['rfc822; dave@example.com', 'delayed', '4.7.1'],
    ]);
    expect(get(per[1] ?? [], 'Diagnostic-Code')).toEqual(['smtp; 554 Transaction failed']);
    expect(get(per[2] ?? [], 'Will-Retry-Until')).toEqual(['Wed, 2 Dec 2026 07:11:23 +0000']);
    const text = dsn('several').parts[0]?.text ?? '';
    for (const a of ['bob@example.net', 'carol@example.net', 'dave@example.com']) expect(text).toContain(`<${a}>:`);
    expect(text).toContain('greylisted, try again later');
  });

  it('the original headers come back in the third part', () => {
    const h = dsn('basic').parts[2]?.headers_part ?? [];
    expect(h.map(([n]) => n)).toEqual(['Received', 'From', 'To', 'Subject', 'Message-ID']);
    expect(get(h, 'Subject')).toEqual(['lunch']);
    const cut = dsn('truncated').parts[2]?.headers_part ?? [];
    expect(get(cut, 'Subject')).toEqual(['lunch']);
    expect(cut.length).toBeGreaterThan(5000);
    expect(cut.length).toBeLessThan(9000);
  });

  it('a hostile reply (CRLF, a fake boundary, fake fields, 5 KB) stays inside one Diagnostic-Code', () => {
    const m = dsn('hostile');
    expect(m.boundary).not.toBe('HOSTILE');
    expect(m.parts).toHaveLength(3);
    const blocks = status('hostile');
    expect(blocks).toHaveLength(2);
    const rcpt = blocks[1] ?? [];
    expect(rcpt.map(([n]) => n)).toEqual(['Final-Recipient', 'Action', 'Status', 'Remote-MTA', 'Diagnostic-Code', 'Last-Attempt-Date']);
    expect(get(rcpt, 'Final-Recipient')).toEqual(['rfc822; bob@example.net']);
    expect(get(rcpt, 'Remote-MTA')).toEqual(['dns; mx.example.netX-Evil:1']);
    expect(get(rcpt, 'Diagnostic-Code')[0]).toMatch(/^smtp; 550 5\.7\.1 evil --HOSTILE Content-Type: text\/html/);
    expect(m.epilogue ?? '').toBe('');
  });

  it('UTF-8 addresses (RFC 6533): utf-8 address type in xtext form, 8-bit headers in message/global-headers', () => {
    const m = dsn('utf8');
    expect(get(m.headers, 'To')).toEqual(['añil@example.org']);
    const [msg, rcpt] = status('utf8');
    expect(get(msg ?? [], 'X-Petrel-Sender')).toEqual(['utf-8; a\\x{F1}il@example.org']);
    expect(get(rcpt ?? [], 'Final-Recipient')).toEqual(['utf-8; j\\x{F6}ran\\x{2B}tag@b\\x{FC}cher.example']);
    expect(get(m.parts[2]?.headers_part ?? [], 'Subject')).toEqual(['café ☃']);
    expect(m.parts[0]?.text).toContain('<jöran+tag@bücher.example>:');
  });
});
