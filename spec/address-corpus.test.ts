/**
 * parsePath against Dominic Sayers' is_email test suites (shared/corpus/addresses,
 * see its README): every case's `envelope_ok` — can the string be used unchanged
 * as an RFC 5321 Mailbox in MAIL FROM / RCPT TO? — must equal whether
 * parsePath("<address>") accepts it. DNS-dependent cases (ISEMAIL_DNSWARN) are
 * already envelope_ok: true, which is what syntax-only code must answer.
 * Non-ASCII cases are parsed with SMTPUTF8 on (RFC 6531) and must also be
 * refused with it off.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parsePath } from '../src/smtp/path';

interface Case {
  readonly id: string;
  readonly address: string;
  readonly category: string;
  readonly diagnosis: string;
  readonly envelope_ok: boolean;
  readonly non_ascii: boolean;
  readonly dns_dependent: boolean;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = path.resolve(here, '../../shared/corpus/addresses');
const FILES = readdirSync(CORPUS).filter((f) => f.endsWith('.jsonl')).sort();

/**
 * Cases where parsePath is meant to disagree with is_email, keyed by id, with
 * the reason. Empty: all 653 agree. Keep it that way unless the verdict is
 * about something a path parser should not judge.
 */
const expectedDisagreements: Readonly<Record<string, string>> = {};

function load(file: string): Case[] {
  return readFileSync(path.join(CORPUS, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Case);
}

function accepts(c: Case, smtputf8: boolean): boolean {
  return parsePath(`<${c.address}>`, { smtputf8, allowNull: false, allowBarePostmaster: false }).ok;
}

const ALL = FILES.flatMap(load);

describe('is_email corpus: parsePath agrees with envelope_ok', () => {
  it('the corpus is there: 3 files, 653 cases', () => {
    expect(FILES).toHaveLength(3);
    expect(ALL).toHaveLength(653);
  });

  for (const file of FILES) {
    describe(file, () => {
      it.each(load(file).map((c) => [c.id, JSON.stringify(c.address), c] as const))('%s %s', (id, _shown, c) => {
        const expected = id in expectedDisagreements ? !c.envelope_ok : c.envelope_ok;
        expect(accepts(c, c.non_ascii), `${c.category} ${c.diagnosis}`).toBe(expected);
      });
    });
  }

  it('RFC 6531 §3.5 every non-ASCII address is refused when SMTPUTF8 is off', () => {
    const nonAscii = ALL.filter((c) => c.non_ascii);
    expect(nonAscii.length).toBeGreaterThan(0);
    for (const c of nonAscii) expect(accepts(c, false), c.id).toBe(false);
  });

  it('agreement count: every case agrees except the listed ones', () => {
    const agreeing = ALL.filter((c) => accepts(c, c.non_ascii) === c.envelope_ok).length;
    expect(agreeing).toBe(ALL.length - Object.keys(expectedDisagreements).length);
    expect(ALL.filter((c) => c.envelope_ok).length).toBeGreaterThan(100);
  });
});
