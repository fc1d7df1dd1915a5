/**
 * DMARC policy records: "v=DMARC1; p=...; ..." TXT text → a record with
 * every default filled in. PURE and total: any string gives a record or an
 * error value, never an exception.
 *
 * RFC 7489 §6.3 (tags and defaults; unknown tags ignored; syntax errors in
 * tags other than v and p fall back to the default), §6.4 (ABNF: tag names
 * and keywords are case-insensitive quoted literals, "DMARC1" is %x-exact),
 * §6.6.3 steps 2 and 5 (selection: exactly one record that starts with
 * v=DMARC1, else no policy) and step 6 (p missing or invalid, or sp invalid:
 * with a valid rua act as p=none, else no DMARC processing).
 *
 * Leniency, documented: §6.3 says v and p "MUST appear in that order"; p is
 * accepted anywhere after v (published records such as "v=DMARC1; rua=...;
 * p=none" exist and other receivers honour them). A pct outside 0-100 or not
 * an integer is ignored and the default 100 applies.
 */

export type DmarcPolicy = 'none' | 'quarantine' | 'reject';
export type AlignmentMode = 'r' | 's';

export interface DmarcRecord {
  readonly p: DmarcPolicy;
  /** Policy for subdomains when the record was found at the Organizational Domain; defaults to p. */
  readonly sp: DmarcPolicy;
  readonly adkim: AlignmentMode;
  readonly aspf: AlignmentMode;
  /** Percentage of failing messages the policy applies to (§6.6.4). */
  readonly pct: number;
  /** Failure reporting options (0, 1, d, s); not acted on here. */
  readonly fo: readonly string[];
  readonly rf: readonly string[];
  /** Aggregate report interval, seconds. */
  readonly ri: number;
  readonly rua: readonly string[];
  readonly ruf: readonly string[];
  /** True when p was missing or invalid and a valid rua made it p=none (§6.6.3 step 6). */
  readonly impliedPolicy: boolean;
}

export type DmarcParse = { readonly ok: true; readonly record: DmarcRecord } | { readonly ok: false; readonly error: string };

/** TXT records can be long, but a policy with more than this is an attack on the parser. */
export const MAX_RECORD_LENGTH = 4096;
/** Report URIs kept per list; real records name one or two. */
export const MAX_REPORT_URIS = 8;
const MAX_URI_LENGTH = 512;
const MAX_TAGS = 32;
const DEFAULT_RI = 86400;

/** §6.4 dmarc-version = "v" *WSP "=" *WSP %x44 %x4d %x41 %x52 %x43 %x31, then a separator or the end. */
const VERSION = /^[ \t]*[vV][ \t]*=[ \t]*DMARC1[ \t]*(;|$)/;

export function isDmarcRecord(text: string): boolean {
  return VERSION.test(text);
}

export type DmarcSelection =
  | { readonly kind: 'one'; readonly text: string }
  | { readonly kind: 'none' }
  | { readonly kind: 'several'; readonly count: number };

/** §6.6.3 steps 2 and 5: other TXT records (SPF, verification tokens) are discarded first. */
export function selectDmarcRecord(txts: readonly string[]): DmarcSelection {
  const found = txts.filter((t) => typeof t === 'string' && isDmarcRecord(t));
  if (found.length === 0) return { kind: 'none' };
  if (found.length > 1) return { kind: 'several', count: found.length };
  return { kind: 'one', text: found[0] ?? '' };
}

export function parseDmarcRecord(text: string): DmarcParse {
  if (text.length > MAX_RECORD_LENGTH) return { ok: false, error: 'record too long' };
  if (!isDmarcRecord(text)) return { ok: false, error: 'does not start with v=DMARC1' };
  const tags = splitTags(text);
  if (tags.size > MAX_TAGS) return { ok: false, error: 'too many tags' };
  const rua = uriList(tags.get('rua'));
  const p = policyOf(tags.get('p'));
  const spTag = tags.get('sp');
  const sp = spTag === undefined ? p : policyOf(spTag);
  if (p === null || sp === null) {
    // §6.6.3 step 6: "act as if a record containing a valid v tag and p=none was retrieved".
    if (rua.length === 0) return { ok: false, error: p === null ? 'missing or invalid p= and no valid rua=' : 'invalid sp= and no valid rua=' };
    return { ok: true, record: build(tags, 'none', 'none', rua, true) };
  }
  return { ok: true, record: build(tags, p, sp, rua, false) };
}

function build(tags: ReadonlyMap<string, string>, p: DmarcPolicy, sp: DmarcPolicy, rua: readonly string[], impliedPolicy: boolean): DmarcRecord {
  return {
    p,
    sp,
    adkim: modeOf(tags.get('adkim')),
    aspf: modeOf(tags.get('aspf')),
    pct: intOf(tags.get('pct'), 0, 100) ?? 100,
    fo: colonList(tags.get('fo'), /^[01ds]$/, ['0']),
    rf: colonList(tags.get('rf'), /^[a-z][a-z0-9-]*$/, ['afrf']),
    ri: intOf(tags.get('ri'), 0, 0xffffffff) ?? DEFAULT_RI,
    rua,
    ruf: uriList(tags.get('ruf')),
    impliedPolicy,
  };
}

/**
 * §6.4 dmarc-sep = *WSP ";" *WSP. Names are lowercased (quoted ABNF literals
 * are case-insensitive); a malformed tag-spec is skipped, not fatal (§6.3);
 * for a repeated tag the first one counts.
 */
function splitTags(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const spec of text.split(';')) {
    const eq = spec.indexOf('=');
    if (eq < 0) continue;
    const name = spec.slice(0, eq).trim().toLowerCase();
    if (!/^[a-z][a-z0-9_]*$/.test(name) || tags.has(name)) continue;
    tags.set(name, spec.slice(eq + 1).trim());
  }
  return tags;
}

function policyOf(v: string | undefined): DmarcPolicy | null {
  const s = v?.toLowerCase();
  return s === 'none' || s === 'quarantine' || s === 'reject' ? s : null;
}

function modeOf(v: string | undefined): AlignmentMode {
  return v?.toLowerCase() === 's' ? 's' : 'r';
}

/** 1*DIGIT within [min, max]; anything else is a syntax error → the caller's default. */
function intOf(v: string | undefined, min: number, max: number): number | null {
  if (v === undefined || !/^[0-9]{1,10}$/.test(v)) return null;
  const n = Number(v);
  return n >= min && n <= max ? n : null;
}

function colonList(v: string | undefined, item: RegExp, dflt: readonly string[]): readonly string[] {
  if (v === undefined) return dflt;
  const items = v.split(':').map((s) => s.trim().toLowerCase());
  return items.length > 0 && items.length <= 8 && items.every((s) => item.test(s)) ? items : dflt;
}

/**
 * §6.4 dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ], comma
 * separated. Only the shape "scheme:rest" (RFC 3986 §3.1) is checked; invalid
 * entries are dropped, the list is capped.
 */
function uriList(v: string | undefined): readonly string[] {
  if (v === undefined) return [];
  const out: string[] = [];
  for (const raw of v.split(',')) {
    const uri = raw.trim();
    if (uri.length > MAX_URI_LENGTH) continue;
    const bare = uri.replace(/![0-9]+[kmgt]?$/i, '');
    if (/^[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+$/.test(bare)) out.push(uri);
    if (out.length === MAX_REPORT_URIS) break;
  }
  return out;
}
