/**
 * The protocol core does no I/O (DESIGN.md "Layout", STYLE §3 rule 1): every .ts
 * file under src/smtp and src/message imports no socket, file, DNS, process or
 * timer module, reads no clock and schedules nothing, and its relative imports
 * stay inside those two folders (so purity cannot be borrowed from elsewhere).
 * That is what lets the spec/ properties run the session on millions of inputs,
 * and what makes its behaviour a function of its inputs alone.
 *
 * The clock: src/message/date.ts and received.ts take the time as a Date argument;
 * the adapter (src/server/decisions.ts) reads the clock, never the core.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// src/auth: the DKIM, SPF and DMARC cores are pure too (DNS answers, the clock and chance are given to them).
const PURE = ['src/smtp', 'src/message', 'src/auth/dkim', 'src/auth/spf', 'src/auth/dmarc'];
/** Single pure modules elsewhere that the core may import (scanned like the rest). */
const PURE_FILES = ['src/policy/cidr', 'src/auth/auth-results', 'src/auth/message-observer', 'src/auth/inbound', 'src/auth/outbound-sign'];

const IO_MODULES = [
  'net', 'tls', 'fs', 'fs/promises', 'dns', 'dns/promises', 'child_process', 'timers', 'timers/promises',
  'http', 'https', 'http2', 'dgram', 'cluster', 'worker_threads', 'process', 'os', 'readline',
];

/** Uses of the clock, timers and the process: each is a hidden input or a side effect. */
const FORBIDDEN: readonly [string, RegExp][] = [
  ['setTimeout', /\bsetTimeout\b/],
  ['setInterval', /\bsetInterval\b/],
  ['setImmediate', /\bsetImmediate\b/],
  ['queueMicrotask', /\bqueueMicrotask\b/],
  ['process.', /\bprocess\s*\./],
  ['Date.now(', /\bDate\s*\.\s*now\s*\(/],
  ['new Date(', /\bnew\s+Date\b/],
  ['performance.now(', /\bperformance\s*\.\s*now\b/],
  ['Math.random(', /\bMath\s*\.\s*random\b/],
  ['require(', /\brequire\s*\(/],
  ['dynamic import(', /\bimport\s*\(/],
];

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

/** Source without comments, so a doc comment may name what the code must not do. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

function specifiers(src: string): string[] {
  const found: string[] = [];
  const statements = /^\s*(?:import|export)\s[\w*\s{},$]*?\bfrom\s*['"]([^'"\n]+)['"]|^\s*import\s*['"]([^'"\n]+)['"]/gm;
  for (const m of src.matchAll(statements)) found.push(m[1] ?? m[2] ?? '');
  return found;
}

function problems(file: string, text = readFileSync(join(ROOT, file), 'utf8')): string[] {
  const src = code(text);
  const out: string[] = [];
  for (const spec of specifiers(src)) {
    const bare = spec.replace(/^node:/, '');
    if (IO_MODULES.includes(bare)) out.push(`imports ${spec}`);
    else if (spec.startsWith('.')) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
      if (!PURE.some((p) => target.startsWith(`${p}/`)) && !PURE_FILES.includes(target)) out.push(`imports ${spec}, outside the pure core`);
    } else if (!spec.startsWith('node:')) out.push(`imports package ${spec} (zero runtime dependencies)`);
  }
  for (const [name, re] of FORBIDDEN) if (re.test(src)) out.push(`uses ${name}`);
  return out.map((p) => `${file}: ${p}`);
}

describe('8. the pure core does no I/O', () => {
  const files = [...PURE.flatMap(tsFiles), ...PURE_FILES.map((f) => `${f}.ts`)];

  it('finds the core files', () => {
    expect(files).toContain(join('src/smtp', 'server-session.ts'));
    expect(files).toContain(join('src/message', 'received.ts'));
    const session = code(readFileSync(join(ROOT, 'src/smtp/server-session.ts'), 'utf8'));
    expect(specifiers(session)).toEqual(expect.arrayContaining(['./verbs', './transaction', './session-types']));
  });

  it('no I/O module, timer, clock or process in src/smtp and src/message', () => {
    expect(files.flatMap((f) => problems(f))).toEqual([]);
  });

  it('date.ts and received.ts take the time as an argument', () => {
    const date = readFileSync(join(ROOT, 'src/message/date.ts'), 'utf8');
    expect(date).toMatch(/export function formatRfc5322Date\(d: Date\)/);
    expect(readFileSync(join(ROOT, 'src/message/received.ts'), 'utf8')).toMatch(/\bdate: Date;/);
  });

  it('the scanner is not blind: it flags what it must', () => {
    const sample = [
      "import { x } from 'node:net';",
      "import y from 'fs';",
      "import { z } from '../queue/log';",
      "import { ok } from './reply';",
      "import 'node:dns';",
      "const words = ['from', 'x'];",
      '/* setTimeout in a comment is fine */',
      'const t = setTimeout(f, 1); // so is process.exit() here',
      'const n = Date.now();',
      'new Date();',
    ].join('\n');
    expect(problems('src/smtp/x.ts', sample)).toEqual([
      'src/smtp/x.ts: imports node:net',
      'src/smtp/x.ts: imports fs',
      'src/smtp/x.ts: imports ../queue/log, outside the pure core',
      'src/smtp/x.ts: imports node:dns',
      'src/smtp/x.ts: uses setTimeout',
      'src/smtp/x.ts: uses Date.now(',
      'src/smtp/x.ts: uses new Date(',
    ]);
  });
});
