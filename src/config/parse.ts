/**
 * Reads petrel.conf: `key = value` lines, `#` comments (a whole line, or after
 * a value when preceded by whitespace, so "a#b" stays a value), blank lines,
 * comma-separated lists. The first problem becomes a ConfigError carrying the
 * file and line; nothing is guessed, since a mistyped key silently ignored
 * is how an MTA becomes an open relay.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { defaultConfig, defaultValues } from './defaults';
import { ConfigError, fsReason } from './errors';
import { fieldByKey, schema, type Config, type Field } from './schema';
import { validate } from './validate';

interface Entry {
  key: string;
  value: string;
  line: number;
}

function lex(text: string, file: string): Entry[] {
  const out: Entry[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const eq = raw.indexOf('=');
    if (eq < 0) throw new ConfigError(file, line, `expected "key = value", found "${trimmed}"`);
    const key = raw.slice(0, eq).trim();
    if (key === '') throw new ConfigError(file, line, 'missing key before "="');
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new ConfigError(file, line, `bad key "${key}": expected a name such as max_recipients`);
    out.push({ key, value: stripComment(raw.slice(eq + 1)).trim(), line });
  });
  return out;
}

function stripComment(value: string): string {
  const m = /\s#/.exec(value);
  return m ? value.slice(0, m.index) : value;
}

/** Parses the text of a configuration file named `file` (used for messages and relative paths). */
export function parseConfig(text: string, file: string): Config {
  const baseDir = dirname(resolve(file));
  const s = schema(baseDir);
  const byKey = fieldByKey(s);
  const values: Record<Field, unknown> = defaultValues(baseDir);
  const lines = new Map<Field, number>();
  for (const e of lex(text, file)) {
    const f = byKey.get(e.key);
    if (f === undefined) throw new ConfigError(file, e.line, unknownKey(e.key, [...byKey.keys()]));
    const first = lines.get(f);
    if (first !== undefined) throw new ConfigError(file, e.line, `duplicate key ${e.key} (first set on line ${first})`);
    lines.set(f, e.line);
    const r = s[f].parse(e.value);
    if (!r.ok) {
      const found = r.found ?? e.value;
      throw new ConfigError(file, e.line, `bad value for ${e.key}: expected ${r.expected}, found ${found === '' ? 'nothing' : `"${found}"`}`);
    }
    values[f] = r.value;
  }
  const config = { ...values, source: resolve(file) } as Config;
  if (!lines.has('usersFile')) config.usersFile = resolve(config.dataDir, 'users');
  if (!lines.has('maildirRoot')) config.maildirRoot = resolve(config.dataDir, 'mail');
  validate(config, lines, file);
  return config;
}

function unknownKey(key: string, known: string[]): string {
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== null ? `unknown key ${key} (did you mean ${best}?)` : `unknown key ${key}`;
}

/** Levenshtein distance: insertions, deletions and substitutions each cost 1. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, (prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/**
 * The configuration for a command: `file` (from --config), else
 * env.PETREL_CONFIG, else the embedded defaults with paths under the cwd.
 */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const path = file ?? (env['PETREL_CONFIG'] || undefined);
  if (path === undefined) return defaultConfig(process.cwd());
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, 0, `cannot read configuration file: ${fsReason(e)}`);
  }
  return parseConfig(text, path);
}
