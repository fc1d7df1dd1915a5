// formatLine's fast paths (plain keys written without JSON.stringify, primitive values without the replacer)
// must produce exactly the object the slow path would: every line parses back to its fields.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatLine } from '../src/observe/log';

const value = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }));

describe('formatLine', () => {
  it('parses back to ts, level, event and every field, with reserved names renamed', () => {
    fc.assert(
      fc.property(fc.string(), fc.dictionary(fc.string(), value, { maxKeys: 6 }), (event, fields) => {
        const parsed = JSON.parse(formatLine('2026-01-01T00:00:00.000Z', 'info', event, {}, fields)) as Record<string, unknown>;
        const want: Record<string, unknown> = { ts: '2026-01-01T00:00:00.000Z', level: 'info', event };
        for (const [k, v] of Object.entries(fields)) {
          // defineProperty: a field named __proto__ is an own property in the parsed line, not a prototype
          const key = ['ts', 'level', 'event'].includes(k) ? `field_${k}` : k;
          Object.defineProperty(want, key, { value: Object.is(v, -0) ? 0 : v, enumerable: true, writable: true, configurable: true });
        }
        expect(parsed).toEqual(want);
      }),
      // a counterexample fast-check once found: a field named __proto__
      { examples: [['', JSON.parse('{"__proto__":0}') as Record<string, never>]] },
    );
  });

  it('escapes keys that need it and drops undefined values', () => {
    const line = formatLine('t', 'warn', 'e', { a: 1 }, { 'q"k\n': 'v', gone: undefined, err: new Error('boom') });
    expect(JSON.parse(line)).toEqual({ ts: 't', level: 'warn', event: 'e', a: 1, 'q"k\n': 'v', err: { message: 'boom' } });
  });
});
