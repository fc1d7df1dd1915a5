/**
 * `petrel message parse [FILE] [--json]` (DESIGN.md "Interfaces"): the JSON
 * shape, reading a file or stdin, reading no further than the header of a
 * large file, and the exit statuses for usage and missing files.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { messageCommand } from '../../src/cli/message-cmd';

const dir = mkdtempSync(join(tmpdir(), 'petrel-msg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CORPUS = join(import.meta.dirname, '../../../shared/corpus/messages');

async function run(args: string[], stdin: Buffer = Buffer.alloc(0)): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await messageCommand(args, (s) => (out += s), (s) => (err += s), Readable.from([stdin]));
  return { status, out, err };
}

describe('petrel message parse --json', () => {
  it('prints the DESIGN.md object for RFC 5322 A.5 (comments everywhere, a group, an obsolete date)', async () => {
    const r = await run(['parse', join(CORPUS, 'rfc5322/A.5.eml'), '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(Object.keys(j)).toEqual(['headers', 'from', 'to', 'cc', 'reply_to', 'subject', 'date', 'message_id', 'defects']);
    expect(j).toMatchObject({
      from: [{ name: 'Pete', address: 'pete@silly.test' }],
      to: [
        { name: 'Chris Jones', address: 'c@public.example' },
        { name: null, address: 'joe@example.org' },
        { name: 'John', address: 'jdoe@one.test' },
      ],
      cc: [],
      reply_to: [],
      subject: null,
      date: '1969-02-14T03:02:00Z',
      message_id: '<testabcd.1234@silly.test>',
      defects: [],
    });
    expect((j.headers as { name: string; value: string }[])[0]).toEqual({ name: 'From', value: 'Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>' });
  });

  it('reads stdin with no FILE or "-", decodes RFC 2047 and reports defects without failing', async () => {
    const msg = Buffer.from('Subject: =?utf-8?Q?caf=C3=A9?=\r\nFrom: =?iso-8859-1?Q?Andr=E9?= <a@b.example>\r\nTo: nobody\r\n\r\nbody\r\n');
    for (const args of [['parse', '--json'], ['parse', '-', '--json']]) {
      const r = await run(args, msg);
      expect(r.status).toBe(0);
      const j = JSON.parse(r.out);
      expect(j.subject).toBe('café');
      expect(j.from).toEqual([{ name: 'André', address: 'a@b.example' }]);
      expect(j.defects.map((d: { code: string }) => d.code)).toEqual(['missing-field', 'address-without-domain']);
    }
  });

  it('reads only the header of a large file', async () => {
    const file = join(dir, 'big.eml');
    writeFileSync(file, Buffer.concat([Buffer.from('From: a@b.example\r\nDate: Fri, 21 Nov 1997 09:55:06 -0600\r\n\r\n'), Buffer.alloc(20 * 1024 * 1024, 'x')]));
    const r = await run(['parse', file, '--json']);
    expect(JSON.parse(r.out)).toMatchObject({ from: [{ name: null, address: 'a@b.example' }], date: '1997-11-21T15:55:06Z', defects: [] });
  });

  it('text output names every part', async () => {
    const r = await run(['parse', join(CORPUS, 'rfc5322/A.1.2.eml')]);
    expect(r.status).toBe(0);
    expect(r.out).toContain('From:       "Joe Q. Public" <john.q.public@example.com>');
    expect(r.out).toContain('Date:       2003-07-01T08:52:37Z');
    expect(r.out).toContain('Defects (0):');
  });

  it('exit statuses: 64 for usage, 66 for a missing file or a directory', async () => {
    expect((await run([])).status).toBe(64);
    expect((await run(['frobnicate'])).status).toBe(64);
    expect((await run(['parse', 'a', 'b'])).status).toBe(64);
    expect((await run(['parse', '--jsn'])).status).toBe(64);
    const missing = await run(['parse', join(dir, 'nope.eml')]);
    expect(missing.status).toBe(66);
    expect(missing.err).toContain('nope.eml');
    expect((await run(['parse', dir])).status).toBe(66);
  });
});
