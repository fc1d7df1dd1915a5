/**
 * `petrel dkim keygen|show` (src/cli/dkim-cmd.ts), called as a function:
 * the key file (PKCS#8 PEM, mode 0600, never silently replaced), the TXT
 * record it prints (RFC 6376 §3.6.1 with the RSA SubjectPublicKeyInfo,
 * RFC 8463 §4.2 raw Ed25519 key, character-strings of at most 255 octets),
 * the dkim_sign line (read back by the config parser) and the usage errors.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dkimCommand, type DkimCommandConfig } from '../../src/cli/dkim-cmd';
import { dkimSignIn } from '../../src/config/values';

const root = mkdtempSync(join(tmpdir(), 'petrel-dkimcmd-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

interface Run {
  status: number;
  out: string;
  err: string;
  /** The quoted character-strings of the printed record. */
  strings: string[];
  /** The owner name of the printed record. */
  owner: string;
  configLine: string;
}

async function run(args: string[], cfg: Partial<DkimCommandConfig> = {}): Promise<Run> {
  let out = '';
  let err = '';
  const dataDir = cfg.dataDir ?? join(root, `d${++dirs}`);
  const status = await dkimCommand(args, { dataDir, dkimSign: cfg.dkimSign ?? [] }, (s) => (out += `${s}\n`), (s) => (err += `${s}\n`));
  const record = /^(\S+) IN TXT \(([^)]*)\)/m.exec(out);
  const strings = [...(record?.[2] ?? '').matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  return { status, out, err, strings, owner: record?.[1] ?? '', configLine: /^dkim_sign = (.*)$/m.exec(out)?.[1] ?? '' };
}

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('petrel dkim keygen', () => {
  it('default: RSA 2048, PKCS#8, mode 0600 under data_dir/dkim; the record holds its SubjectPublicKeyInfo in ≤255-octet strings', async () => {
    const dataDir = join(root, 'default');
    const r = await run(['keygen', 'Example.COM', 'mail'], { dataDir });
    expect(r.status).toBe(0);
    const file = join(dataDir, 'dkim', 'example.com.mail.key');
    const pem = readFileSync(file, 'latin1');
    expect(pem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    expect(mode(file)).toBe(0o600);
    const key = createPrivateKey(pem);
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(r.owner).toBe('mail._domainkey.example.com.');
    expect(r.strings.length).toBeGreaterThan(1);
    expect(r.strings.slice(0, -1).every((s) => s.length === 255)).toBe(true);
    expect(r.strings.every((s) => s.length > 0 && s.length <= 255)).toBe(true);
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' }).toString('base64');
    expect(r.strings.join('')).toBe(`v=DKIM1; k=rsa; p=${spki}`);
  });

  it('Ed25519 (RFC 8463 §4.2): p= is the raw 32-octet key, 44 base64 characters, in one string', async () => {
    const out = join(root, 'ed.key');
    const r = await run(['keygen', 'example.com', 'ed', '--type=ed25519', '--out', out]);
    expect(r.status).toBe(0);
    expect(mode(out)).toBe(0o600);
    expect(r.strings).toHaveLength(1);
    const p = /p=(.*)$/.exec(r.strings[0] ?? '')?.[1] ?? '';
    expect(r.strings[0]).toBe(`v=DKIM1; k=ed25519; p=${p}`);
    expect(p).toHaveLength(44);
    const raw = createPublicKey(createPrivateKey(readFileSync(out))).export({ format: 'der', type: 'spki' }).subarray(12);
    expect(Buffer.from(p, 'base64').equals(raw)).toBe(true);
  });

  it('refuses to replace an existing key file; --force replaces it, still 0600, nothing left behind', async () => {
    const dataDir = join(root, 'overwrite');
    const file = join(dataDir, 'dkim', 'example.com.s1.key');
    expect((await run(['keygen', 'example.com', 's1', '--type', 'ed25519'], { dataDir })).status).toBe(0);
    const before = readFileSync(file, 'latin1');
    const again = await run(['keygen', 'example.com', 's1', '--type', 'ed25519'], { dataDir });
    expect(again.status).toBe(73);
    expect(again.err).toContain('exists');
    expect(again.out).toBe('');
    expect(readFileSync(file, 'latin1')).toBe(before);
    const forced = await run(['keygen', 'example.com', 's1', '--type', 'ed25519', '--force'], { dataDir });
    expect(forced.status).toBe(0);
    expect(readFileSync(file, 'latin1')).not.toBe(before);
    expect(mode(file)).toBe(0o600);
    expect(readdirSync(join(dataDir, 'dkim'))).toEqual(['example.com.s1.key']);
  });

  it('an existing file given with --out is refused too', async () => {
    const out = join(root, 'taken.key');
    writeFileSync(out, 'precious');
    expect((await run(['keygen', 'example.com', 'x', '--out', out])).status).toBe(73);
    expect(readFileSync(out, 'latin1')).toBe('precious');
  });

  it('--bits 1024 makes a 1024-bit key and notes RFC 8301 §3.2', async () => {
    const out = join(root, 'small.key');
    const r = await run(['keygen', 'example.com', 'small', '--bits', '1024', '--out', out]);
    expect(r.status).toBe(0);
    expect(createPrivateKey(readFileSync(out)).asymmetricKeyDetails?.modulusLength).toBe(1024);
    expect(r.err).toContain('RFC 8301');
  });

  it('the dkim_sign line reads back through the config parser, after the entries already configured', async () => {
    const dataDir = join(root, 'conf');
    const dkimSign = [{ domain: 'other.org', selector: 'a', keyFile: '/k/other.key' }];
    const r = await run(['keygen', 'example.com', 'mail', '--type', 'ed25519'], { dataDir, dkimSign });
    const entries = r.configLine.split(',').map((e) => dkimSignIn('/')(e.trim()));
    expect(entries).toEqual([
      { ok: true, value: dkimSign[0] },
      { ok: true, value: { domain: 'example.com', selector: 'mail', keyFile: join(dataDir, 'dkim', 'example.com.mail.key') } },
    ]);
  });

  it('a selector already configured with another file gets a warning about mail in transit', async () => {
    const r = await run(['keygen', 'example.com', 'mail', '--type', 'ed25519'], { dkimSign: [{ domain: 'example.com', selector: 'mail', keyFile: '/k/old.key' }] });
    expect(r.status).toBe(0);
    expect(r.err).toContain('/k/old.key');
    expect(r.configLine).not.toContain('/k/old.key');
  });

  it('an internationalized domain is written as its A-label (RFC 5890)', async () => {
    const dataDir = join(root, 'idn');
    const r = await run(['keygen', 'bücher.example', 'mail', '--type', 'ed25519'], { dataDir });
    expect(r.owner).toBe('mail._domainkey.xn--bcher-kva.example.');
    expect(existsSync(join(dataDir, 'dkim', 'xn--bcher-kva.example.mail.key'))).toBe(true);
  });

  it.each([
    [[]],
    [['frobnicate']],
    [['keygen']],
    [['keygen', 'example.com']],
    [['keygen', 'example.com', 'mail', 'extra']],
    [['keygen', 'example.com', 'mail', '--type', 'dsa']],
    [['keygen', 'example.com', 'mail', '--type', 'ed25519', '--bits', '2048']],
    [['keygen', 'example.com', 'mail', '--bits', '512']],
    [['keygen', 'example.com', 'mail', '--bits', '8192']],
    [['keygen', 'example.com', 'mail', '--bits', 'lots']],
    [['keygen', 'example.com', 'mail', '--out']],
    [['keygen', 'example.com', 'mail', '--verbose']],
    [['keygen', 'exa_mple.com', 'mail']],
    [['keygen', 'example..com', 'mail']],
    [['keygen', 'example.com', '_mail']],
    [['keygen', 'example.com', 'mail.']],
    [['keygen', `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.com`, `${'s'.repeat(60)}`]],
    [['show', 'example.com']],
  ])('usage error: %j → 64, nothing written', async (args) => {
    const dataDir = join(root, `usage${++dirs}`);
    const r = await run(args, { dataDir });
    expect(r.status).toBe(64);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/usage/);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('petrel dkim show', () => {
  it('prints the same record and line as keygen did', async () => {
    const dataDir = join(root, 'show');
    const made = await run(['keygen', 'example.com', 'mail'], { dataDir });
    const shown = await run(['show', 'example.com', 'mail'], { dataDir });
    expect(shown.status).toBe(0);
    expect(shown.out).toBe(made.out);
    const explicit = await run(['show', 'example.com', 'mail', join(dataDir, 'dkim', 'example.com.mail.key')]);
    expect(explicit.out).toBe(made.out);
  });

  it('a file that is not a usable key → 65; a missing file → 66', async () => {
    const junk = join(root, 'junk.key');
    writeFileSync(junk, 'not a key');
    const bad = await run(['show', 'example.com', 'mail', junk]);
    expect(bad.status).toBe(65);
    expect(bad.err).toContain('PEM');
    expect((await run(['show', 'example.com', 'mail', join(root, 'missing.key')])).status).toBe(66);
  });
});
