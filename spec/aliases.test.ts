// The aliases file (aliases(5) syntax) and alias expansion: loops found, diamonds not mistaken for loops, bounded.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expand, parseAliases, type ExpandOps, type Step } from '../src/policy/aliases';

describe('parseAliases', () => {
  it('reads entries, comments, continuation lines, \\name and <address> targets', () => {
    const { table, problems } = parseAliases(
      [
        '# system aliases',
        'Postmaster: root',
        'root: alice,',
        '  bob@example.org,',
        '\tcarol',
        '',
        'alice: \\alice, <alice@elsewhere.example>',
        'sales@b.example: dave',
      ].join('\n'),
    );
    expect(problems).toEqual([]);
    expect(table.get('postmaster')).toEqual([{ address: 'root', mailboxOnly: false }]);
    expect(table.get('root')?.map((t) => t.address)).toEqual(['alice', 'bob@example.org', 'carol']);
    expect(table.get('alice')).toEqual([
      { address: 'alice', mailboxOnly: true },
      { address: 'alice@elsewhere.example', mailboxOnly: false },
    ]);
    expect(table.get('sales@b.example')).toEqual([{ address: 'dave', mailboxOnly: false }]);
  });

  it('refuses programs, files, :include:, empty and malformed entries with their line, and keeps the rest', () => {
    const { table, problems } = parseAliases(
      ['ok: alice', 'prog: |/usr/bin/vacation', 'file: /var/mail/x', 'inc: :include:/etc/list', 'empty:', 'no colon here', 'ok: bob'].join('\n'),
    );
    expect(problems.map((p) => p.line)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(problems[0]?.reason).toMatch(/program/);
    expect(problems[5]?.reason).toMatch(/duplicate alias ok \(first defined on line 1\)/);
    expect([...table.keys()]).toEqual(['ok']);
    expect(table.get('ok')?.[0]?.address).toBe('alice');
  });

  it('CRLF files read like LF files', () => {
    const lf = parseAliases('a: b,\n  c\nd: e\n');
    const crlf = parseAliases('a: b,\r\n  c\r\nd: e\r\n');
    expect([...crlf.table]).toEqual([...lf.table]);
  });

  it('never throws, whatever the text', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (text) => {
      const r = parseAliases(text);
      for (const [name, targets] of r.table) {
        expect(name).toBe(name.toLowerCase());
        expect(targets.length).toBeGreaterThan(0);
      }
    }));
  });
});

/** Expansion over a plain graph: names in `graph` are aliases, anything else is final. */
function ops(graph: Record<string, string[]>): ExpandOps<string> {
  return {
    step: (a, mailboxOnly): Step<string> => {
      const t = mailboxOnly ? undefined : graph[a];
      return t ? { kind: 'alias', targets: t.map((address) => ({ address, mailboxOnly: false })) } : { kind: 'final', value: a };
    },
    key: (a) => a.toLowerCase(),
    finalKey: (v) => v,
  };
}

describe('expand', () => {
  it('follows nested aliases to the final destinations, in order, without repeats', () => {
    const g = { all: ['team', 'boss'], team: ['ann', 'bob', 'boss'] };
    expect(expand('all', ops(g))).toEqual({ kind: 'ok', finals: ['ann', 'bob', 'boss'] });
  });

  it('a diamond (one address by two branches) is not a loop', () => {
    const g = { a: ['b', 'c'], b: ['d'], c: ['d'], d: ['x'] };
    expect(expand('a', ops(g))).toEqual({ kind: 'ok', finals: ['x'] });
  });

  it('a cycle is a loop, reported with its chain', () => {
    const g = { a: ['b'], b: ['c'], c: ['A'] };
    expect(expand('a', ops(g))).toEqual({ kind: 'loop', chain: ['a', 'b', 'c', 'A'] });
  });

  it('an alias that lists itself means its own mailbox (sendmail semantics), not a loop', () => {
    const g = { bob: ['bob', 'bob@remote'] };
    expect(expand('bob', ops(g))).toEqual({ kind: 'ok', finals: ['bob', 'bob@remote'] });
  });

  it('depth and width are bounded', () => {
    const chain: Record<string, string[]> = {};
    for (let i = 0; i < 50; i++) chain[`n${i}`] = [`n${i + 1}`];
    expect(expand('n0', ops(chain))).toEqual({ kind: 'too-many', limit: 20 });
    const wide = { big: Array.from({ length: 30 }, (_, i) => `u${i}`) };
    expect(expand('big', ops(wide), { maxDepth: 20, maxFinals: 10 })).toEqual({ kind: 'too-many', limit: 10 });
  });

  it('on random graphs: ok iff no cycle is reachable; finals are exactly the reachable non-aliases', () => {
    const arb = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'x', 'y'), { minLength: 1, maxLength: 3 }));
    fc.assert(fc.property(arb, (graph) => {
      const g: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(graph)) {
        const targets = v.filter((t) => t !== k); // self-reference means "own mailbox": not an edge
        if (targets.length > 0) g[k] = targets;
      }
      const r = expand('a', ops(g));
      const reach = new Set<string>();
      const walk = (n: string) => {
        if (reach.has(n)) return;
        reach.add(n);
        for (const t of g[n] ?? []) walk(t);
      };
      walk('a');
      const cyclic = [...reach].some((n) => reaches(g, n, n));
      expect(r.kind).toBe(cyclic ? 'loop' : 'ok');
      if (r.kind === 'ok') expect(new Set(r.finals)).toEqual(new Set([...reach].filter((n) => !g[n])));
    }));
  });
});

function reaches(g: Record<string, string[]>, from: string, to: string): boolean {
  const seen = new Set<string>();
  const stack = [...(g[from] ?? [])];
  while (stack.length > 0) {
    const n = stack.pop() as string;
    if (n === to) return true;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(g[n] ?? []));
  }
  return false;
}

describe('expand: cost', () => {
  it('a ladder of 18 diamonds (2^18 paths) expands each alias once', () => {
    const g: Record<string, string[]> = {};
    for (let i = 0; i < 18; i++) g[`n${i}`] = [`l${i}`, `r${i}`];
    for (let i = 0; i < 18; i++) g[`l${i}`] = g[`r${i}`] = [`n${i + 1}`];
    let steps = 0;
    const o = ops(g);
    const r = expand('n0', { ...o, step: (a, m) => (steps++, o.step(a, m)) }, { maxDepth: 100, maxFinals: 10 });
    expect(r).toEqual({ kind: 'ok', finals: ['n18'] });
    expect(steps).toBeLessThan(100);
  });
});
