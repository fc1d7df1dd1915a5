/**
 * Organizational Domain (RFC 7489 §3.2): the registered domain under which a
 * name sits, found with the Public Suffix List algorithm
 * (https://publicsuffix.org/list/, "Formal algorithm"): the longest matching
 * rule wins, an exception rule ("!") beats every other rule, a wildcard
 * ("*.") matches any one label, and the implicit default rule "*" makes an
 * unknown TLD a public suffix. The Organizational Domain is the public suffix
 * plus one label. PURE: the rules are data, parsed once on first use.
 *
 * DMARC relaxed alignment (§3.1) compares these, so getting it wrong either
 * lets anyone under a shared suffix (github.io, co.uk) pass for everyone else
 * there, or fails a company's own subdomains.
 */
import { domainToASCII } from 'node:url';
import { PUBLIC_SUFFIX_RULES } from './public-suffixes';

/** A parsed rule list: plain rules, wildcard parents ("*.ck" → "ck") and exceptions ("!www.ck" → "www.ck"). */
export interface SuffixRules {
  readonly plain: ReadonlySet<string>;
  readonly wildcardParents: ReadonlySet<string>;
  readonly exceptions: ReadonlySet<string>;
}

/** One rule per line in PSL syntax, already lowercase A-labels (scripts/refresh-psl.mjs writes them so). */
export function parseSuffixRules(text: string): SuffixRules {
  const plain = new Set<string>();
  const wildcardParents = new Set<string>();
  const exceptions = new Set<string>();
  for (const raw of text.split('\n')) {
    const rule = raw.trim().toLowerCase();
    if (rule === '' || rule.startsWith('//')) continue;
    if (rule.startsWith('!')) exceptions.add(rule.slice(1));
    else if (rule.startsWith('*.')) wildcardParents.add(rule.slice(2));
    else plain.add(rule);
  }
  return { plain, wildcardParents, exceptions };
}

let builtin: SuffixRules | undefined;

/** The bundled list, parsed on first use (about 10,000 rules, a few milliseconds once). */
export function defaultSuffixRules(): SuffixRules {
  builtin ??= parseSuffixRules(PUBLIC_SUFFIX_RULES);
  return builtin;
}

/**
 * Lowercase, no trailing dot, A-labels: the one form every comparison uses.
 * A name whose U-labels cannot be converted stays as it is (it then matches
 * only itself, never a suffix rule).
 */
export function normalizeDomain(domain: string): string {
  let d = domain.toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (!/[^\x00-\x7f]/.test(d)) return d;
  const ascii = domainToASCII(d);
  return ascii === '' ? d : ascii;
}

export function organizationalDomain(domain: string, rules: SuffixRules = defaultSuffixRules()): string {
  const name = normalizeDomain(domain);
  const suffixStart = publicSuffixStart(name, rules);
  if (suffixStart <= 0) return name; // the name is itself a public suffix
  const labelStart = name.lastIndexOf('.', suffixStart - 2) + 1;
  return name.slice(labelStart);
}

/**
 * Offset in `name` where its public suffix begins. Walks the suffixes from
 * the longest: the first exception found prevails outright (its suffix is the
 * rule minus its leftmost label); otherwise the longest plain or wildcard
 * match; otherwise the default rule "*" (the last label).
 */
function publicSuffixStart(name: string, rules: SuffixRules): number {
  let match = -1;
  for (let start = 0; start >= 0 && start < name.length; start = nextLabel(name, start)) {
    const suffix = name.slice(start);
    const dot = name.indexOf('.', start);
    if (rules.exceptions.has(suffix)) return dot < 0 ? name.length : dot + 1;
    if (match >= 0) continue;
    if (rules.plain.has(suffix) || (dot >= 0 && rules.wildcardParents.has(name.slice(dot + 1)))) match = start;
  }
  return match >= 0 ? match : name.lastIndexOf('.') + 1;
}

function nextLabel(name: string, start: number): number {
  const dot = name.indexOf('.', start);
  return dot < 0 ? -1 : dot + 1;
}
