// `petrel check-config` and loadConfig with real files in a temporary directory:
// the effective configuration on success, "file:line: reason" and 78 (EX_CONFIG) on error.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfigCommand } from '../../src/cli/check-config';
import { ConfigError, loadConfig } from '../../src/config/index';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'petrel-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function run(file: string | undefined): { status: number; out: string; err: string } {
  let out = '';
  let err = '';
  const status = checkConfigCommand(file, (s) => (out += s), (s) => (err += s));
  return { status, out, err };
}

describe('checkConfigCommand', () => {
  it('prints the effective configuration and returns 0', () => {
    write('cert.pem', 'not really a certificate');
    write('key.pem', 'not really a key');
    const file = write('good.conf', '# test\nhostname = mx.example.com\ntls_cert = cert.pem\ntls_key = key.pem\nmax_message_size = 10M\n');
    const r = run(file);
    expect(r.status).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toContain(`# petrel effective configuration (from ${file})\n`);
    expect(r.out).toContain('hostname = mx.example.com\n');
    expect(r.out).toContain(`tls_cert = ${join(dir, 'cert.pem')}\n`); // relative to the file's directory
    expect(r.out).toContain('max_message_size = 10M\n');
    expect(r.out).toContain(`users_file = ${join(dir, 'var', 'users')}\n`);
    expect(r.out).toContain('listen = 127.0.0.1:2525\n');
  });

  it('returns 78 with "file:line: reason" for a bad value', () => {
    const file = write('bad.conf', 'hostname = mx.example.com\n\nmax_recipients = none\n');
    const r = run(file);
    expect(r.status).toBe(78);
    expect(r.out).toBe('');
    expect(r.err).toBe(`${file}:3: bad value for max_recipients: expected a positive integer, found "none"\n`);
  });

  it('returns 78 for an unknown key, with a suggestion', () => {
    const file = write('typo.conf', 'loacl_domains = example.com\n');
    expect(run(file)).toMatchObject({ status: 78, err: `${file}:1: unknown key loacl_domains (did you mean local_domains?)\n` });
  });

  it('returns 78 for an unreadable certificate file, on the tls_cert line', () => {
    write('k.pem', 'key');
    const file = write('tls.conf', 'tls_key = k.pem\ntls_cert = missing.pem\n');
    const r = run(file);
    expect(r.status).toBe(78);
    expect(r.err).toBe(`${file}:2: cannot read tls_cert file ${join(dir, 'missing.pem')}: no such file or directory\n`);
  });

  it('returns 78 for a configuration file that does not exist, without a stack trace', () => {
    const file = join(dir, 'nope.conf');
    const r = run(file);
    expect(r.status).toBe(78);
    expect(r.err).toBe(`${file}:0: cannot read configuration file: no such file or directory\n`);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('returns 78 when the configuration path is a directory', () => {
    const sub = join(dir, 'a-directory');
    mkdirSync(sub);
    expect(run(sub)).toMatchObject({ status: 78, err: `${sub}:0: cannot read configuration file: is a directory\n` });
  });

  it.skipIf(process.getuid?.() === 0)('returns 78 for a file without read permission', () => {
    const file = write('secret.conf', 'max_errors = 3\n');
    chmodSync(file, 0o000);
    expect(run(file)).toMatchObject({ status: 78, err: `${file}:0: cannot read configuration file: permission denied\n` });
  });
});

describe('loadConfig', () => {
  it('with no file and no PETREL_CONFIG: the embedded defaults under the cwd', () => {
    const c = loadConfig(undefined, {});
    expect(c.source).toBeNull();
    expect(c.dataDir).toBe(join(process.cwd(), 'var'));
  });

  it('with no file: PETREL_CONFIG names it', () => {
    const file = write('env.conf', 'max_errors = 7\n');
    const c = loadConfig(undefined, { PETREL_CONFIG: file });
    expect([c.maxErrors, c.source]).toEqual([7, file]);
  });

  it('an explicit file wins over PETREL_CONFIG', () => {
    const a = write('a.conf', 'max_errors = 1\n');
    const b = write('b.conf', 'max_errors = 2\n');
    expect(loadConfig(a, { PETREL_CONFIG: b }).maxErrors).toBe(1);
  });

  it('an unreadable file is a ConfigError on line 0', () => {
    const file = join(dir, 'absent.conf');
    expect(() => loadConfig(file, {})).toThrow(ConfigError);
    try {
      loadConfig(file, {});
    } catch (e) {
      expect(e).toMatchObject({ file, line: 0 });
    }
  });
});
