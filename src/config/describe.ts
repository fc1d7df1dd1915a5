/**
 * The effective configuration as petrel.conf text, every key, defaults
 * included: what `petrel check-config` prints. It parses back to the same
 * configuration (a property spec/config.test.ts checks).
 */
import { fields, schema, type Config } from './schema';

export function describeConfig(c: Config): string {
  const s = schema('/');
  const head = `# petrel effective configuration (${c.source === null ? 'embedded defaults' : `from ${c.source}`})`;
  const out = [head];
  for (const f of fields(s)) {
    const spec = s[f] as { key: string; format: (v: unknown) => string };
    const text = spec.format(c[f]);
    out.push(text === '' ? `${spec.key} =` : `${spec.key} = ${text}`);
  }
  if (!c.queueFsync) out.push('# queue_fsync = no: UNSAFE, acknowledged mail can be lost in a crash (benchmark analysis only)');
  return out.join('\n') + '\n';
}
