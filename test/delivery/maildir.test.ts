/**
 * Maildir writing (src/delivery/maildir.ts) on a real file system, read back
 * by Python's mailbox module (a Maildir reader nobody here wrote): the
 * message arrives whole and unchanged but for the Maildir's LF line ends and
 * the two delivery-agent fields, the folder tree is made on first delivery,
 * names are unique, a broken mailbox path is a temporary (4yz) failure, and
 * no local part can reach outside the mail root.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CrlfToLf, deliverToMaildir, deliveryHeaders, maildirFailure, maildirPath, safeName } from '../../src/delivery/maildir';

const root = mkdtempSync(join(tmpdir(), 'petrel-maildir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function* chunks(b: Buffer, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

const MESSAGE = Buffer.from(
  'Received: from client.test by petrel.test; Sat, 28 Nov 2026 08:00:00 +0000\r\n' +
    'From: Ann <ann@example.org>\r\nTo: bob@petrel.local\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n' +
    'Message-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' +
    'Line one\r\n.leading dot stays\r\n\r\nFrom the start of a line\r\ncafé \xe2\x82\xac\r\nlast line\r\n',
  'latin1',
);

/** Every message of a Maildir as Python's mailbox.Maildir sees it: raw bytes (base64), subdir, a few headers. */
function readWithPython(maildir: string): { bytes: Buffer; subdir: string; returnPath: string; deliveredTo: string; subject: string }[] {
  const script = `
import mailbox, sys, json, base64
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in sorted(md.keys()):
    m = md[key]
    out.append({'bytes': base64.b64encode(md.get_bytes(key)).decode(), 'subdir': m.get_subdir(),
                'returnPath': m['Return-Path'], 'deliveredTo': m['Delivered-To'], 'subject': m['Subject']})
print(json.dumps(out))
`;
  const r = spawnSync('python3', ['-c', script, maildir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { bytes: string; subdir: string; returnPath: string; deliveredTo: string; subject: string }[]).map((m) => ({ ...m, bytes: Buffer.from(m.bytes, 'base64') }));
}

const lf = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

describe('deliverToMaildir', () => {
  it('creates Maildir/{cur,new,tmp} on first delivery and Python reads the message unchanged', async () => {
    const md = maildirPath(join(root, 'mail'), { user: 'bob', domain: 'petrel.local' });
    const file = await deliverToMaildir(md, deliveryHeaders('ann@example.org', 'bob+lists@petrel.local'), chunks(MESSAGE, 7), { hostname: 'petrel.test' });
    expect(relative(root, md)).toBe(join('mail', 'petrel.local', 'bob', 'Maildir'));
    for (const sub of ['cur', 'new', 'tmp']) expect(statSync(join(md, sub)).isDirectory()).toBe(true);
    expect(statSync(md).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(md, 'tmp'))).toEqual([]);
    const msgs = readWithPython(md);
    expect(msgs).toHaveLength(1);
    const m = msgs[0]!;
    expect(m.subdir).toBe('new');
    expect(m.returnPath).toBe('<ann@example.org>');
    expect(m.deliveredTo).toBe('bob+lists@petrel.local');
    expect(m.bytes.equals(lf(Buffer.concat([deliveryHeaders('ann@example.org', 'bob+lists@petrel.local'), MESSAGE])))).toBe(true);
    // ,S= is the file size, ,W= the size with CRLF line ends (Dovecot reads both instead of stat()ing)
    const st = statSync(file);
    const [, s, w] = /,S=(\d+),W=(\d+)$/.exec(file) ?? [];
    expect(Number(s)).toBe(st.size);
    expect(Number(w)).toBe(Buffer.concat([deliveryHeaders('ann@example.org', 'bob+lists@petrel.local'), MESSAGE]).length);
  });

  it('the null sender is Return-Path: <>; CR and LF cannot forge a header through an envelope address', () => {
    expect(deliveryHeaders('', 'x@y').toString()).toBe('Return-Path: <>\r\nDelivered-To: x@y\r\n');
    expect(deliveryHeaders('a\r\nBcc: evil@x', 'b\nX: y').toString().split('\r\n')).toHaveLength(3);
  });

  it('concurrent deliveries to one mailbox get distinct names and all arrive', async () => {
    const md = maildirPath(join(root, 'mail'), { user: 'many', domain: 'petrel.local' });
    const bodies = Array.from({ length: 25 }, (_, i) => Buffer.from(`Subject: n${i}\r\n\r\nbody ${i}\r\n`));
    const files = await Promise.all(bodies.map((b) => deliverToMaildir(md, deliveryHeaders('s@x', 'many@petrel.local'), chunks(b, 5), { fsync: false })));
    expect(new Set(files).size).toBe(25);
    const subjects = readWithPython(md).map((m) => m.subject).sort();
    expect(subjects).toEqual(bodies.map((_, i) => `n${i}`).sort());
  });

  it('a file where the Maildir should be: the delivery fails with a temporary 451 4.2.0 and leaves nothing behind', async () => {
    const userDir = join(root, 'mail', 'petrel.local', 'blocked');
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(userDir, 'Maildir'), 'not a directory');
    const err = await deliverToMaildir(join(userDir, 'Maildir'), deliveryHeaders('s@x', 'blocked@petrel.local'), chunks(MESSAGE, 100)).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const r = maildirFailure(err);
    expect(r.code).toBe(451);
    expect(r.enhanced).toBe('4.2.0');
    expect(readFileSync(join(userDir, 'Maildir'), 'utf8')).toBe('not a directory');
  });

  it('storage errors map to 4yz codes: ENOSPC 452 4.3.1, EDQUOT 452 4.2.2, others 451', () => {
    const e = (code: string) => Object.assign(new Error(code), { code });
    expect(maildirFailure(e('ENOSPC'))).toMatchObject({ code: 452, enhanced: '4.3.1' });
    expect(maildirFailure(e('EDQUOT'))).toMatchObject({ code: 452, enhanced: '4.2.2' });
    expect(maildirFailure(e('EIO'))).toMatchObject({ code: 451, enhanced: '4.3.0' });
  });
});

describe('mailbox names', () => {
  it('no local part or domain can leave the mail root or hide a file', () => {
    fc.assert(fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (user, domain) => {
      const p = maildirPath('/srv/mail', { user, domain });
      const rel = relative('/srv/mail', p).split('/');
      expect(rel).toHaveLength(3);
      expect(rel[2]).toBe('Maildir');
      for (const part of rel) expect(part.startsWith('.') || part === '').toBe(false);
    }));
    expect(safeName('../../etc')).toBe('%2E.%2F..%2Fetc');
    expect(safeName('alice')).toBe('alice');
  });

  it('distinct names stay distinct once encoded', () => {
    fc.assert(fc.property(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), (a, b) => {
      if (a !== b) expect(safeName(a)).not.toBe(safeName(b));
    }));
  });
});

describe('CrlfToLf', () => {
  it('any chunking gives the same result: every CRLF becomes LF, a lone CR stays', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', '.'), { maxLength: 40 }), fc.array(fc.nat(40), { maxLength: 6 }), (parts, cuts) => {
      const input = Buffer.from(parts.join(''));
      const conv = new CrlfToLf();
      const out: Buffer[] = [];
      let at = 0;
      for (const c of [...cuts].sort((x, y) => x - y)) {
        out.push(conv.push(input.subarray(at, Math.max(at, Math.min(c, input.length)))));
        at = Math.max(at, Math.min(c, input.length));
      }
      out.push(conv.push(input.subarray(at)), conv.end());
      expect(Buffer.concat(out).toString()).toBe(parts.join('').replace(/\r\n/g, '\n'));
    }));
  });
});
