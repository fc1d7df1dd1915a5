/**
 * parseMessage over the 76 messages of shared/corpus/messages (see its
 * README): every file parses without throwing; the field list equals an
 * independent line-based reading, is the same for the file's CRLF and LF
 * forms, and is stable under any chunking; the RFC 5322 Appendix A messages
 * give the answers the RFC spells out; the manifest's features that call for
 * it (mbox "From " line, no header/body separator) are reported as defects.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderParser } from '../src/message/header';
import { parseMessage, parseMessageStream } from '../src/message/parse';

interface Entry {
  readonly file: string;
  readonly features: string[];
}

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/corpus/messages');
const MANIFEST: Entry[] = readFileSync(path.join(DIR, 'manifest.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as Entry);
const bytes = (file: string): Buffer => readFileSync(path.join(DIR, file));

/** An independent reading of RFC 5322 §2.2: split lines, join WSP-led ones, stop at the empty line. */
function lineOracle(text: string): [string, string][] {
  const out: [string, string][] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') break;
    const last = out[out.length - 1];
    if (/^[ \t]/.test(line)) {
      if (last) last[1] += line;
      continue;
    }
    const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$/s.exec(line);
    if (m) out.push([m[1] as string, m[2] as string]);
    else if (i === 0 && line.startsWith('From ')) continue;
    else break;
  }
  return out.map(([n, v]) => [n, v.replace(/^[ \t]+/, '')]);
}

const nv = (r: { headers: { name: string; value: string }[] }): [string, string][] => r.headers.map((h) => [h.name, h.value]);

describe('every corpus message', () => {
  it('the corpus is there: 76 messages', () => expect(MANIFEST).toHaveLength(76));

  for (const { file, features } of MANIFEST) {
    describe(file, () => {
      const raw = bytes(file);
      const parsed = parseMessage(raw);

      it('parses, and its fields equal the line-based reading', () => {
        expect(parsed.headers.length).toBeGreaterThan(0);
        if (!features.includes('8bit-header')) expect(nv(parsed)).toEqual(lineOracle(raw.toString('latin1')));
      });

      it('CRLF and LF forms of it give the same fields', () => {
        const lf = Buffer.from(raw.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
        const crlf = Buffer.from(lf.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
        expect(nv(parseMessage(lf))).toEqual(nv(parsed));
        expect(nv(parseMessage(crlf))).toEqual(nv(parsed));
      });

      it('any chunking gives the same result', () => {
        fc.assert(
          fc.property(fc.array(fc.nat({ max: raw.length }), { maxLength: 6 }), (cuts) => {
            const p = new HeaderParser();
            const fields = [];
            let at = 0;
            for (const c of [...cuts].sort((a, b) => a - b)) fields.push(...p.push(raw.subarray(at, (at = Math.max(at, c)))));
            fields.push(...p.push(raw.subarray(at)), ...p.end());
            expect(fields.map((f) => [f.name, f.value])).toEqual(nv(parsed));
          }),
          { numRuns: 25 },
        );
      });

      const mbox = features.includes('mbox-from-line') && !/^From\s*:/.test(raw.toString('latin1'));
      const codes = parsed.defects.map((d) => d.code);
      if (mbox) it('reports the mbox "From " line', () => expect(codes).toContain('mbox-from-line'));
      if (features.includes('no-header-body-separator')) it('reports the missing separator', () => expect(codes).toContain('missing-separator'));
    });
  }

  it('streaming reads the same result as the whole buffer', async () => {
    for (const { file } of MANIFEST) {
      const raw = bytes(file);
      async function* pieces(): AsyncGenerator<Buffer> {
        for (let i = 0; i < raw.length; i += 7) yield raw.subarray(i, i + 7);
      }
      expect(await parseMessageStream(pieces())).toEqual(parseMessage(raw));
    }
  });
});

const mb = (name: string | null, address: string): { name: string | null; address: string } => ({ name, address });
const JOHN = mb('John Doe', 'jdoe@machine.example');
const MARY = mb('Mary Smith', 'mary@example.net');
const HELLO = { from: [JOHN], to: [MARY], cc: [], reply_to: [], subject: 'Saying Hello', date: '1997-11-21T15:55:06Z', message_id: '<1234@local.machine.example>' };

/** What RFC 5322 Appendix A says each example means. */
const APPENDIX_A: Record<string, object> = {
  'A.1.1a': HELLO,
  'A.1.1b': HELLO,
  'A.1.2': {
    from: [mb('Joe Q. Public', 'john.q.public@example.com')],
    to: [mb('Mary Smith', 'mary@x.test'), mb(null, 'jdoe@example.org'), mb('Who?', 'one@y.test')],
    cc: [mb(null, 'boss@nil.test'), mb('Giant; "Big" Box', 'sysservices@example.net')],
    date: '2003-07-01T08:52:37Z',
    message_id: '<5678.21-Nov-1997@example.com>',
  },
  'A.1.3': {
    from: [mb('Pete', 'pete@silly.example')],
    to: [mb('Ed Jones', 'c@a.test'), mb(null, 'joe@where.test'), mb('John', 'jdoe@one.test')],
    cc: [],
    date: '1969-02-14T03:02:54Z',
    message_id: '<testabcd.1234@silly.example>',
  },
  'A.2a': HELLO,
  'A.2b': {
    from: [MARY],
    to: [mb('John Doe', 'jdoe@machine.example')],
    reply_to: [mb('Mary Smith: Personal Account', 'smith@home.example')],
    subject: 'Re: Saying Hello',
    date: '1997-11-21T16:01:10Z',
    message_id: '<3456@example.net>',
  },
  'A.2c': {
    from: [JOHN],
    to: [mb('Mary Smith: Personal Account', 'smith@home.example')],
    subject: 'Re: Saying Hello',
    date: '1997-11-21T17:00:00Z',
    message_id: '<abcd.1234@local.machine.test>',
  },
  'A.3a': HELLO,
  'A.3b': HELLO,
  'A.4': { ...HELLO, from: [mb('John Doe', 'jdoe@node.example')], message_id: '<1234@local.node.example>' },
  'A.5': {
    from: [mb('Pete', 'pete@silly.test')],
    to: [mb('Chris Jones', 'c@public.example'), mb(null, 'joe@example.org'), mb('John', 'jdoe@one.test')],
    cc: [],
    date: '1969-02-14T03:02:00Z',
    message_id: '<testabcd.1234@silly.test>',
  },
  'A.6.1': {
    from: [mb('Joe Q. Public', 'john.q.public@example.com')],
    to: [MARY, mb(null, 'jdoe@test.example')],
    date: '2003-07-01T08:52:37Z',
    message_id: '<5678.21-Nov-1997@example.com>',
  },
  'A.6.2': { ...HELLO, date: '1997-11-21T09:55:06Z' },
  'A.6.3': HELLO,
};

describe('RFC 5322 Appendix A: the answers the RFC gives', () => {
  it.each(Object.entries(APPENDIX_A))('%s', (name, expected) => {
    const r = parseMessage(bytes(`rfc5322/${name}.eml`));
    expect(r).toMatchObject(expected);
    expect(r.defects).toEqual([]);
  });
});

describe('other corpus answers', () => {
  it('RFC 2047 subjects and names: Q, B, Latin-1, UTF-8, UTF-7, inside a phrase', () => {
    const subject = (f: string): string | null => parseMessage(bytes(f)).subject;
    expect(subject('mail-parser-legacy/001.eml')).toBe('Die Hasen und die Frösche (Microsoft Outlook 00)');
    expect(subject('mail-parser-legacy/046.eml')).toBe('Die Hasen und die Frösche (Netscape Communicator 4.7)');
    expect(subject('dovecot/thirdparty-010.eml')).toBe('こんにちは');
    expect(parseMessage(bytes('mail-parser-legacy/001.eml')).to[1]).toEqual(mb('Jürgen Schmürgen', 'schmuergen@example.com'));
  });

  it('odd ones: no-domain addresses, MAILER DAEMON <>, msg_47 date without seconds, duplicate Cc', () => {
    expect(parseMessage(bytes('mail-parser-rfc/001.eml'))).toMatchObject({ from: [mb(null, 'Whomever')], date: null });
    expect(parseMessage(bytes('cpython/msg_43.eml')).from).toEqual([mb('MAILER DAEMON', '')]);
    expect(parseMessage(bytes('cpython/msg_47.eml')).date).toBe('2001-01-01T00:01:00Z');
    const cc = parseMessage(bytes('cpython/msg_20.eml'));
    expect(cc.cc.map((m) => m.address)).toEqual(['ccc@zzz.org', 'ddd@zzz.org', 'eee@zzz.org']);
    expect(cc.defects.map((d) => d.code)).toEqual(['duplicate-field']);
  });
});
