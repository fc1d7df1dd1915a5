/**
 * The aliases file and alias expansion, PURE: text in, table out; an address
 * and a lookup function in, the final destinations (or the loop) out.
 *
 * Syntax is the one of sendmail's and Postfix's /etc/aliases (aliases(5)):
 *   name: target, target, …
 * - `#` starts a comment line; a line starting with whitespace continues the
 *   previous entry (RFC 5322-style folding); blank lines end nothing.
 * - `name` is a local part, valid in every local domain, or `name@domain`
 *   for one domain (a Petrel extension for several local domains); names
 *   compare case-insensitively, as Postfix's lookups do.
 * - A target is a local name (same domain as the alias used), a full
 *   address (local or remote), or `\name`: the mailbox itself, never
 *   expanded again (aliases(5)). An alias that lists itself also means its
 *   own mailbox ("bob: bob, bob@elsewhere" keeps a copy), as in sendmail.
 * - `|command`, `/file` and `:include:` are refused with a line-numbered
 *   problem: Petrel runs no programs and writes no files for mail senders.
 *
 * Expansion is depth-first with the current chain kept: a target already on
 * the chain is a loop (RFC 5321 §3.9 asks that forwarding loops be
 * detected; RFC 3463 5.4.6), reaching one address by two branches is not.
 */

/** One target of an alias: an address to look up again, or (`\name`, self-reference) a mailbox only. */
export interface AliasTarget {
  /** A local name (no "@") or a full address. */
  readonly address: string;
  /** `\name`: deliver to the mailbox, do not look up aliases again. */
  readonly mailboxOnly: boolean;
}

/** name (lowercased local part, or local@domain) → targets. */
export type AliasTable = ReadonlyMap<string, readonly AliasTarget[]>;

export interface AliasProblem {
  readonly line: number;
  readonly reason: string;
}

/** Every entry that parsed, plus what was wrong with the others (those are left out). */
export interface ParsedAliases {
  readonly table: AliasTable;
  readonly problems: readonly AliasProblem[];
}

interface Logical {
  readonly line: number;
  readonly text: string;
}

/** Joins continuation lines to their entry and drops comments and blank lines. */
function logicalLines(text: string): Logical[] {
  const out: { line: number; text: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (/^\s*#/.test(raw) || raw.trim() === '') return;
    const last = out[out.length - 1];
    if (/^[ \t]/.test(raw) && last) last.text += ' ' + raw.trim();
    else out.push({ line: i + 1, text: raw.trim() });
  });
  return out;
}

const NAME = /^[^\s:,@"\\|/]+(?:@[^\s:,@"\\|/]+)?$/;

function parseTarget(raw: string): AliasTarget | string {
  if (raw.startsWith('|')) return `program targets are not supported: ${raw}`;
  if (raw.startsWith('/')) return `file targets are not supported: ${raw}`;
  if (raw.toLowerCase().startsWith(':include:')) return `:include: is not supported: ${raw}`;
  const mailboxOnly = raw.startsWith('\\');
  const address = (mailboxOnly ? raw.slice(1) : raw).replace(/^<(.*)>$/, '$1');
  if (!NAME.test(address)) return `bad target "${raw}": expected name, name@domain or \\name`;
  return { address, mailboxOnly };
}

function parseEntry(l: Logical): { name: string; targets: AliasTarget[] } | string {
  const colon = l.text.indexOf(':');
  if (colon < 0) return `expected "name: target, target", found "${l.text}"`;
  const name = l.text.slice(0, colon).trim().replace(/^"(.*)"$/, '$1');
  if (!NAME.test(name)) return `bad alias name "${name}"`;
  const parts = l.text.slice(colon + 1).split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) return `alias ${name} has no targets`;
  const targets: AliasTarget[] = [];
  for (const p of parts) {
    const t = parseTarget(p);
    if (typeof t === 'string') return t;
    targets.push(t);
  }
  return { name: name.toLowerCase(), targets };
}

export function parseAliases(text: string): ParsedAliases {
  const table = new Map<string, AliasTarget[]>();
  const problems: AliasProblem[] = [];
  const lines = new Map<string, number>();
  for (const l of logicalLines(text)) {
    const e = parseEntry(l);
    if (typeof e === 'string') {
      problems.push({ line: l.line, reason: e });
      continue;
    }
    const first = lines.get(e.name);
    // Which of two definitions wins would be an accident; say so and keep the first, as newaliases does.
    if (first !== undefined) problems.push({ line: l.line, reason: `duplicate alias ${e.name} (first defined on line ${first})` });
    else {
      table.set(e.name, e.targets);
      lines.set(e.name, l.line);
    }
  }
  return { table, problems };
}

/** What one lookup of one address gives. */
export type Step<T> =
  /** An alias: look up each target in turn (local names already qualified with the domain). */
  | { readonly kind: 'alias'; readonly targets: readonly AliasTarget[] }
  /** A final destination. */
  | { readonly kind: 'final'; readonly value: T };

export type Expansion<T> =
  /** Every final destination, in first-reached order, without repeats (by `key`). */
  | { readonly kind: 'ok'; readonly finals: readonly T[] }
  /** The chain that came back to an address already on it. */
  | { readonly kind: 'loop'; readonly chain: readonly string[] }
  /** Deeper or wider than the limits: treated like a loop, but told apart in the reply. */
  | { readonly kind: 'too-many'; readonly limit: number };

export interface ExpandLimits {
  /** Nested aliases (sendmail's MAXRCPT-style guard; Postfix's default nesting is far below this). */
  readonly maxDepth: number;
  /** Final destinations of one address. */
  readonly maxFinals: number;
}

export const EXPAND_LIMITS: ExpandLimits = { maxDepth: 20, maxFinals: 1000 };

export interface ExpandOps<T> {
  /** `mailboxOnly`: the caller must not consult aliases (a `\name` target, or an alias listing itself). */
  step(address: string, mailboxOnly: boolean): Step<T>;
  /** Addresses that are the same destination (case-folded). */
  key(address: string): string;
  /** A finished value's identity, for dropping repeats. */
  finalKey(value: T): string;
}

/** Expands `address` through `ops.step` until only final destinations are left. */
export function expand<T>(address: string, ops: ExpandOps<T>, limits: ExpandLimits = EXPAND_LIMITS): Expansion<T> {
  const finals = new Map<string, T>();
  const chain: string[] = [];
  // Aliases already expanded in full: their finals are in; expanding again would be exponential on diamonds.
  const done = new Set<string>();
  const visit = (addr: string, mailboxOnly: boolean): Expansion<T> | null => {
    const k = ops.key(addr);
    if (!mailboxOnly && chain.some((c) => ops.key(c) === k)) return { kind: 'loop', chain: [...chain, addr] };
    if (!mailboxOnly && done.has(k)) return null;
    if (chain.length >= limits.maxDepth) return { kind: 'too-many', limit: limits.maxDepth };
    const s = ops.step(addr, mailboxOnly);
    if (s.kind === 'final') {
      finals.set(ops.finalKey(s.value), s.value);
      return finals.size > limits.maxFinals ? { kind: 'too-many', limit: limits.maxFinals } : null;
    }
    chain.push(addr);
    for (const t of s.targets) {
      // An alias that lists itself means its own mailbox (aliases(5), sendmail): not a loop.
      const self = ops.key(t.address) === k;
      const bad = visit(t.address, t.mailboxOnly || self);
      if (bad) return bad;
    }
    chain.pop();
    done.add(k);
    return null;
  };
  return visit(address, false) ?? { kind: 'ok', finals: [...finals.values()] };
}
