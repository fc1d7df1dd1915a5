/**
 * The single-file promise (DESIGN.md "Zero runtime dependencies"): dist/petrel.mjs
 * copied alone into a fresh folder with no node_modules above it serves mail,
 * lists its queue and validates configuration — with plain `node`.
 * A bad configuration gives "file:line: reason" and exit status 78
 * (sysexits EX_CONFIG), never a stack trace.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, cleanup, runCli, runProgram, startPetrel, tempDir } from '../helpers/spawn';

let dir: string;
let bundle: string;

beforeAll(() => {
  dir = tempDir('petrel-bundle-');
  bundle = join(dir, 'petrel.mjs');
  copyFileSync(BUNDLE, bundle);
});

afterAll(async () => {
  await cleanup();
});

const cli = (args: string[]) => runCli(args, { cwd: dir, bundle: './petrel.mjs' });

/** Every folder from `start` up to the root. */
function ancestors(start: string): string[] {
  const out = [start];
  while (dirname(out[out.length - 1] as string) !== out[out.length - 1]) out.push(dirname(out[out.length - 1] as string));
  return out;
}

describe('dist/petrel.mjs alone in an empty folder', () => {
  it('has no node_modules anywhere above it to lean on, and imports only node: built-ins', () => {
    expect(ancestors(dir).filter((d) => existsSync(join(d, 'node_modules')))).toEqual([]);
    const source = readFileSync(bundle, 'utf8');
    const specifiers = [...source.matchAll(/^\s*import\b[^'"]*?\bfrom\s*["']([^"']+)["']/gm), ...source.matchAll(/^\s*import\s*["']([^"']+)["']/gm), ...source.matchAll(/\b(?:import|require)\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]);
    expect(specifiers.length).toBeGreaterThan(0);
    expect(specifiers.filter((s) => !s?.startsWith('node:'))).toEqual([]);
  });

  it('prints its version', async () => {
    const r = await cli(['version']);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^petrel \d+\.\d+\.\d+\n$/);
  });

  it('serves: swaks sends a message, `queue list` run from that folder shows it', async () => {
    const s = await startPetrel({ dir, bundle: './petrel.mjs', cwd: dir, settings: { data_dir: 'var' } });
    const sent = await runProgram('swaks', ['--server', `127.0.0.1:${s.port}`, '--from', 'bundle@example.org', '--to', 'user@example.test']);
    expect(sent.status).toBe(0);
    const id = /queued as (\S+)/.exec(sent.stdout)?.[1];
    expect(id).toBeDefined();
    expect(existsSync(join(dir, 'var', 'queue'))).toBe(true);

    const table = await cli(['queue', 'list', '--config', 'petrel.conf']);
    expect(table.status).toBe(0);
    expect(table.stdout).toContain(id);
    expect(table.stdout).toContain('bundle@example.org');
    const json = await cli(['queue', 'list', '--json', '--config', 'petrel.conf']);
    expect((JSON.parse(json.stdout) as { id: string }[]).map((m) => m.id)).toEqual([id]);
    expect(await s.stop()).toEqual({ code: 0, signal: null });
  });

  it('check-config with a bad value: exit 78, "file:line: reason" on stderr, no stack trace', async () => {
    const file = join(dir, 'bad.conf');
    writeFileSync(file, 'hostname = mx.example.test\n# a comment\nmax_recipients = lots\n');
    const r = await cli(['check-config', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: \\S.*\\n$`));
    expect(r.stderr).toContain('max_recipients');
    expect(r.stderr).not.toMatch(/\n\s+at |Error:/);
  });

  it('check-config with an unknown key, and serve with the same file: both 78 with file:line', async () => {
    const file = join(dir, 'typo.conf');
    writeFileSync(file, 'listen = 127.0.0.1:0\nlocal_domian = example.test\n');
    for (const command of ['check-config', 'serve']) {
      const r = await cli([command, '--config', file]);
      expect(r.status).toBe(78);
      expect(r.stderr).toMatch(/typo\.conf:2: unknown key local_domian/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('check-config with a good file prints the effective configuration and exits 0', async () => {
    const r = await cli(['check-config', '--config', 'petrel.conf']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`data_dir = ${join(dir, 'var')}\n`);
    expect(r.stdout).toContain('local_domains = example.test\n');
  });
});
