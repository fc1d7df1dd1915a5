/**
 * Differential DKIM check against an independent implementation: dkimpy
 * (Debian python3-dkim), run as a child process with its DNS served from a
 * JSON map (test/auth/py/). Messages Petrel signs must verify in dkimpy, and
 * messages dkimpy signs must verify in Petrel: odd whitespace, long folded
 * headers, empty bodies, 8-bit bodies, RSA 2048 and Ed25519, every c=.
 * Skipped, loudly, when python3-dkim is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BodyHasher, rawFields, type Canon } from '../../src/auth/dkim/canon';
import { signMessage } from '../../src/auth/dkim/sign';
import { verifyMessage } from '../../src/auth/dkim/verify';

const PY = '/usr/bin/python3';
const DIR = join(__dirname, 'py');
const hasDkimpy = spawnSync(PY, ['-c', 'import dkim'], { stdio: 'ignore' }).status === 0;
if (!hasDkimpy) console.warn('dkim-python: python3-dkim is not installed; differential DKIM tests skipped');

// .ci/run installs python3-dkim: under CI a missing dkimpy is a broken setup, not a reason to skip.
it('python3-dkim is available where CI runs', () => {
  if (process.env.CI === 'true') expect(hasDkimpy).toBe(true);
});

const DOMAIN = 'example.org';
const SELECTOR = 'sel';
const NAME = `${SELECTOR}._domainkey.${DOMAIN}`;

function record(priv: KeyObject): string {
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return priv.asymmetricKeyType === 'ed25519' ? `v=DKIM1; k=ed25519; p=${spki.subarray(12).toString('base64')}` : `v=DKIM1; k=rsa; p=${spki.toString('base64')}`;
}

const CRLF = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
const MESSAGES: Record<string, Buffer> = {
  plain: CRLF('From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: hello\nDate: Sat, 28 Nov 2026 08:00:00 +0000\n\nHi Bob.\n'),
  'odd whitespace': CRLF('From:   Alice\t <alice@example.org>  \nTo:bob@example.net\nSubject:\t spaced   out \t\nDate: Sat, 28 Nov 2026 08:00:00 +0000\n\n  lead\t\tand trail  \n\n \t\nmid  dle\n\n\n\n'),
  'long folded header': CRLF(`From: alice@example.org\nTo: ${Array.from({ length: 12 }, (_, i) => `user${i}@example.net`).join(',\n\t')}\nSubject: ${'word '.repeat(30)}\n continued\n\tand again\nDate: Sat, 28 Nov 2026 08:00:00 +0000\n\nbody\n`),
  'empty body': CRLF('From: alice@example.org\nTo: bob@example.net\nSubject: nothing\nDate: Sat, 28 Nov 2026 08:00:00 +0000\n\n'),
  '8-bit body': Buffer.concat([CRLF('From: alice@example.org\nTo: bob@example.net\nSubject: caf\xe9\nDate: Sat, 28 Nov 2026 08:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n'), Buffer.from('Grüße, ça va ? 😀 \r\n\xff\xfe bytes\r\n', 'utf8')]),
};

const keys = { rsa2048: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, ed25519: generateKeyPairSync('ed25519').privateKey };
const combos: [Canon, Canon][] = [['relaxed', 'relaxed'], ['simple', 'simple'], ['relaxed', 'simple'], ['simple', 'relaxed']];

function petrelSign(msg: Buffer, priv: KeyObject, hc: Canon, bc: Canon): Buffer {
  const { fields, bodyOffset } = rawFields(msg);
  const h = new BodyHasher(bc, 'sha256');
  h.push(msg.subarray(bodyOffset));
  const field = signMessage(fields, h.end(), { domain: DOMAIN, selector: SELECTOR, privateKey: priv, headerCanon: hc, bodyCanon: bc, timestamp: 1_764_316_800 });
  return Buffer.concat([Buffer.from(field, 'latin1'), msg]);
}

/** One dkimpy process verifies the whole batch. */
function dkimpyVerify(msgs: readonly Buffer[], rec: Record<string, string>): string[][] {
  const input = JSON.stringify({ records: rec, messages: msgs.map((m) => m.toString('base64')) });
  return JSON.parse(execFileSync(PY, [join(DIR, 'dkim_verify.py')], { input }).toString()) as string[][];
}

/** One dkimpy process signs the whole batch; returns the signed messages. */
function dkimpySign(jobs: readonly { msg: Buffer; priv: KeyObject; hc: Canon; bc: Canon }[]): Buffer[] {
  const input = JSON.stringify(
    jobs.map(({ msg, priv, hc, bc }) => {
      const ed = priv.asymmetricKeyType === 'ed25519';
      const key = ed ? priv.export({ format: 'der', type: 'pkcs8' }).subarray(16).toString('base64') : String(priv.export({ format: 'pem', type: 'pkcs1' }));
      return { message: msg.toString('base64'), algorithm: ed ? 'ed25519-sha256' : 'rsa-sha256', key, domain: DOMAIN, selector: SELECTOR, hc, bc };
    }),
  );
  const sigs = JSON.parse(execFileSync(PY, [join(DIR, 'dkim_sign.py')], { input }).toString()) as string[];
  return sigs.map((sig, i) => Buffer.concat([Buffer.from(sig, 'base64'), jobs[i]?.msg ?? Buffer.alloc(0)]));
}

function petrelVerify(msg: Buffer, rec: string): string[] {
  const { fields, bodyOffset } = rawFields(msg);
  return verifyMessage(msg, fields, bodyOffset, (n) => (n === NAME ? rec : null), { now: Math.floor(Date.now() / 1000) } /* dkimpy stamps t= from the real clock */).map((r) => ('reason' in r ? `${r.result}: ${r.reason}` : r.result));
}

const table = Object.keys(MESSAGES).flatMap((m) => (['rsa2048', 'ed25519'] as const).flatMap((k) => combos.map(([hc, bc]) => [m, k, hc, bc] as const)));
const jobs = table.map(([m, k, hc, bc]) => ({ msg: MESSAGES[m] ?? Buffer.alloc(0), priv: keys[k], hc, bc }));

describe.skipIf(!hasDkimpy)('DKIM differential against dkimpy', () => {
  const records = { rsa2048: record(keys.rsa2048), ed25519: record(keys.ed25519) };
  let byDkimpy: string[][] = [];
  let signedByDkimpy: Buffer[] = [];
  let tamperedVerdict: string[] = [];
  beforeAll(() => {
    // The two keys share a selector, so each key gets its own batch and DNS map.
    const petrelSigned = jobs.map((j) => petrelSign(j.msg, j.priv, j.hc, j.bc));
    const tampered = Buffer.from((petrelSigned[0] ?? Buffer.alloc(0)).toString('latin1').replace('Hi Bob.', 'Hi Rob.'), 'latin1');
    byDkimpy = table.map(() => []);
    for (const k of ['rsa2048', 'ed25519'] as const) {
      const idx = table.flatMap((row, i) => (row[1] === k ? [i] : []));
      const verdicts = dkimpyVerify(idx.map((i) => petrelSigned[i] ?? Buffer.alloc(0)), { [NAME]: records[k] });
      idx.forEach((i, n) => (byDkimpy[i] = verdicts[n] ?? []));
    }
    tamperedVerdict = dkimpyVerify([tampered], { [NAME]: records[table[0]?.[1] ?? 'rsa2048'] })[0] ?? [];
    signedByDkimpy = dkimpySign(jobs);
  }, 60_000);

  it.each(table.map((row, i) => [...row, i] as const))('Petrel signs, dkimpy verifies: %s, %s, %s/%s', (_m, _k, _hc, _bc, i) => {
    expect(byDkimpy[i]).toEqual(['pass']);
  });
  it.each(table.map((row, i) => [...row, i] as const))('dkimpy signs, Petrel verifies: %s, %s, %s/%s', (_m, k, _hc, _bc, i) => {
    expect(petrelVerify(signedByDkimpy[i] ?? Buffer.alloc(0), records[k]).join(' / ')).toBe('pass');
  });
  it('dkimpy sees a tampered Petrel signature fail (the harness can fail)', () => {
    expect(tamperedVerdict).toHaveLength(1);
    expect(tamperedVerdict[0]).not.toBe('pass');
  });
});
