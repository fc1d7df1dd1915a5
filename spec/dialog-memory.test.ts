// Conversations are test data (STYLE.md §3 rule 9): every spec/dialogs/*.smtp runs
// against the pure session in memory, once with each write as one chunk and once
// one byte at a time (any chunking gives the same replies, rule 10). The same files
// run over a real socket in test/server/dialogs.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDialog, playDialog, ReplyReader, unescape, type DialogPeer, type WireReply } from './dialog/format';
import { runMemory } from './dialog/run-memory';

const dir = new URL('./dialogs/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.smtp')).sort();
const load = (f: string) => parseDialog(f, readFileSync(new URL(f, dir), 'utf8'));

describe('dialogues against the pure session', () => {
  it('finds the dialogue files', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
  });
  for (const f of files) {
    it(`${f} (one chunk per write)`, async () => {
      await runMemory(load(f), 'writes');
    });
    it(`${f} (1-byte chunks)`, async () => {
      await runMemory(load(f), 'bytes');
    });
  }
});

describe('the dialogue format', () => {
  it('groups consecutive C:/R: lines into one write and S: runs into one reply', () => {
    const d = parseDialog('t', '! max_errors = 3\nS: 250-A\nS: 250-!B\nS: 250 2.0.0 ok # note\nC: NOOP\nR: x\\r\\n\\x00\\\\\nX: close\n');
    expect(d.options.maxErrors).toBe(3);
    expect(d.steps).toEqual([
      { kind: 'expect', line: 2, expect: { code: 250, text: '2.0.0 ok', has: ['A'], lacks: ['B'] } },
      { kind: 'write', line: 5, bytes: Buffer.from('NOOP\r\nx\r\n\0\\', 'latin1') },
      { kind: 'close', line: 7 },
    ]);
  });

  it('reports file:line for malformed dialogues', () => {
    expect(() => parseDialog('a.smtp', 'S: 220\nR: \\q\nX: close')).toThrow(/^a\.smtp:2: bad escape/);
    expect(() => parseDialog('b.smtp', 'S: 220\n')).toThrow(/b\.smtp:\d+: a dialogue must end with "X: close"/);
    expect(() => parseDialog('c.smtp', 'S: 250-A\nC: NOOP\nX: close')).toThrow(/c\.smtp:2:/);
    expect(() => parseDialog('d.smtp', 'S: 220\n! trusted = yes\nX: close')).toThrow(/d\.smtp:2: options must come before/);
    expect(() => parseDialog('e.smtp', '! frobs = 1\nX: close')).toThrow(/e\.smtp:1: unknown option frobs/);
  });

  it('escapes \\xHH as single octets, not as UTF-8', () => {
    expect(unescape({ name: 't' }, 'caf\\xc3\\xa9\\xff', 1)).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0xff]));
  });

  it('reads replies across any chunking and refuses ones outside the grammar', () => {
    const r = new ReplyReader();
    const got: WireReply[] = [];
    for (const ch of '250-a\r\n250 b\r\n221 2.0.0 bye\r\n') got.push(...r.push(ch));
    expect(got).toEqual([{ code: 250, lines: ['a', 'b'] }, { code: 221, lines: ['2.0.0 bye'] }]);
    expect(() => new ReplyReader().push('250-a\r\n251 b\r\n')).toThrow(/changed its code/);
    expect(() => new ReplyReader().push('hello\r\n')).toThrow(/grammar/);
  });
});

describe('the runners can fail', () => {
  const happy = readFileSync(new URL('happy-path.smtp', dir), 'utf8');
  const mutated = (from: string, to: string) => {
    expect(happy).toContain(from);
    return parseDialog('mutant.smtp', happy.replace(from, to));
  };

  it('a wrong reply code fails with the line and a transcript', async () => {
    await expect(runMemory(mutated('S: 250 2.1.5', 'S: 251 2.1.5'), 'writes')).rejects.toThrow(/mutant\.smtp:\d+: expected 251 2\.1\.5[^\n]*: code 250, expected 251\n--- transcript[\s\S]*S: 250 2\.1\.5 Recipient OK/);
  });

  it('a wrong text prefix fails', async () => {
    await expect(runMemory(mutated('S: 250 2.1.0 Sender OK', 'S: 250 2.1.0 Sender KO'), 'writes')).rejects.toThrow(/does not start with/);
  });

  it('a stored body that differs from Q: fails', async () => {
    await expect(runMemory(mutated('.a line that starts with a dot', '..a line that starts with a dot'), 'writes')).rejects.toThrow(/holds/);
  });

  it('a queued message with no Q: line fails', async () => {
    await expect(runMemory(mutated('Q: ', '# '), 'bytes')).rejects.toThrow(/checked by no Q: line/);
  });

  it('a reply the dialogue did not expect fails at X: close', async () => {
    await expect(runMemory(mutated('S: 221 2.0.0 petrel.test closing connection\n', ''), 'writes')).rejects.toThrow(/expected the server to close/);
  });

  it('a close the dialogue did not expect fails', async () => {
    const d = parseDialog('t', 'S: 220\nC: QUIT\nS: 221\nS: 250\nX: close\n');
    await expect(runMemory(d, 'writes')).rejects.toThrow(/server closed the connection/);
  });

  it('playDialog needs a reply for every S: line', async () => {
    const peer: DialogPeer = { write: async () => {}, nextReply: async () => ({ code: 220, lines: ['x'] }), stored: async () => undefined };
    await expect(playDialog(parseDialog('t', 'S: 220\nX: close\n'), peer)).rejects.toThrow(/t:2: expected the server to close/);
  });
});
