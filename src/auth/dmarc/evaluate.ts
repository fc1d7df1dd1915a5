/**
 * DMARC evaluation for one message: policy discovery, identifier alignment,
 * the pass/fail verdict and the disposition after pct sampling. PURE apart
 * from the injected DNS lookup and random source; never throws.
 *
 * RFC 7489 §3.1 (alignment: relaxed = same Organizational Domain, strict =
 * identical), §4.2 (pass when SPF or DKIM passes aligned), §6.6.2 (steps),
 * §6.6.3 (discovery: _dmarc.<From domain>, then _dmarc.<Organizational
 * Domain> only when the first set holds no DMARC record; several records or
 * an unusable one end discovery with no policy), §6.3 sp (subdomain policy,
 * used when the record came from the Organizational Domain), §6.6.4 (pct:
 * messages outside the sample get the next weaker policy: reject →
 * quarantine, quarantine → none).
 *
 * Choices, documented: an invalid record gives 'none' (§6.6.3 step 6: "no
 * DMARC processing"); a temporary DNS failure gives 'temperror' at once, with
 * no fall-back past it (the Organizational Domain's record must not replace
 * one we could not read); a From domain that is not a multi-label LDH name
 * (address literal, single label, bad label) gives 'permerror' with no query.
 * Without opts.random the sample is taken as "not sampled" unless pct=100:
 * the core has no randomness of its own, and erring weaker protects mail a
 * domain owner is still testing; production callers pass a random source.
 */
import { assertNever } from '../../smtp/assert-never';
import type { SuffixRules } from './org-domain';
import { normalizeDomain, organizationalDomain } from './org-domain';
import type { AlignmentMode, DmarcPolicy, DmarcRecord } from './record';
import { parseDmarcRecord, selectDmarcRecord } from './record';

export type { DmarcPolicy } from './record';
export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
/** Each string is one TXT record, its character-strings already joined. */
export type TxtAnswer = readonly string[] | { readonly error: 'nxdomain' | 'nodata' | 'temp' };

export interface DmarcDns {
  txt(name: string): Promise<TxtAnswer>;
}

export interface DmarcInput {
  /** RFC5322.From domain (the caller handles messages with zero or several From domains). */
  readonly fromDomain: string;
  /** SPF result and the domain it was checked for (MAIL FROM domain, or HELO for <>). */
  readonly spf: { readonly result: string; readonly domain: string };
  /** Each DKIM signature's result and d=. */
  readonly dkim: readonly { readonly result: string; readonly domain: string }[];
}

export interface DmarcOutcome {
  readonly result: DmarcResult;
  /** The p= or sp= that governs this From domain; null when no record. */
  readonly policy: DmarcPolicy | null;
  /** What to do after pct sampling: 'none' when pass / not sampled / no record. */
  readonly applied: DmarcPolicy;
  /** SPF passed and its domain is aligned with the From domain. */
  readonly spfAligned: boolean;
  /** At least one passing DKIM signature's d= is aligned with the From domain. */
  readonly dkimAligned: boolean;
  readonly orgDomain: string;
  /** Where the record was found. */
  readonly recordDomain: string | null;
  /** For logs. */
  readonly reason: string;
}

export interface DmarcOptions {
  /** Uniform in [0, 1), e.g. Math.random; see the file comment for the default. */
  readonly random?: () => number;
  readonly rules?: SuffixRules;
}

/** What discovery found at one name or over both. */
type Discovery =
  | { readonly kind: 'record'; readonly record: DmarcRecord; readonly domain: string }
  | { readonly kind: 'absent'; readonly why: string } // nothing there: fall back to the org domain
  | { readonly kind: 'unusable'; readonly why: string } // several or invalid records: stop, no policy
  | { readonly kind: 'temp'; readonly why: string };

/** RFC 1035 §2.3.4: 255 octets on the wire is 253 characters of text, and _dmarc.<name> must fit. */
const MAX_NAME = 253;
const LDH_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export async function evaluateDmarc(input: DmarcInput, dns: DmarcDns, opts: DmarcOptions = {}): Promise<DmarcOutcome> {
  try {
    return await evaluate(input, dns, opts);
  } catch (e) {
    // Never throw (a malformed input object, a throwing random source): report, do not act.
    return { ...noPolicy('temperror', `internal: ${String(e).slice(0, 120)}`), orgDomain: '' };
  }
}

async function evaluate(input: DmarcInput, dns: DmarcDns, opts: DmarcOptions): Promise<DmarcOutcome> {
  const from = normalizeDomain(input.fromDomain);
  if (!validFromDomain(from)) {
    return { ...noPolicy('permerror', `invalid From domain ${JSON.stringify(input.fromDomain.slice(0, 80))}`), orgDomain: from };
  }
  const org = organizationalDomain(from, opts.rules);
  const found = await discover(from, org, dns);
  const spfAligned = isSpfAligned(input, from, found, opts.rules);
  const dkimAligned = isDkimAligned(input, from, found, opts.rules);
  switch (found.kind) {
    case 'temp':
      return { ...noPolicy('temperror', found.why), spfAligned, dkimAligned, orgDomain: org };
    case 'absent':
    case 'unusable':
      return { ...noPolicy('none', found.why), spfAligned, dkimAligned, orgDomain: org };
    case 'record':
      return verdict(found.record, found.domain, from, org, spfAligned, dkimAligned, opts.random);
    default:
      return assertNever(found);
  }
}

function noPolicy(result: DmarcResult, reason: string): Omit<DmarcOutcome, 'orgDomain'> {
  return { result, policy: null, applied: 'none', spfAligned: false, dkimAligned: false, recordDomain: null, reason };
}

function verdict(rec: DmarcRecord, recordDomain: string, from: string, org: string, spf: boolean, dkim: boolean, random?: () => number): DmarcOutcome {
  // §6.3 sp: only a record found at the Organizational Domain, governing a subdomain of it.
  const policy = recordDomain === from ? rec.p : rec.sp;
  const base = { policy, spfAligned: spf, dkimAligned: dkim, orgDomain: org, recordDomain };
  const where = `${recordDomain === from ? 'p' : 'sp'}=${policy} at _dmarc.${recordDomain}`;
  if (spf || dkim) {
    return { ...base, result: 'pass', applied: 'none', reason: `aligned ${[spf ? 'spf' : '', dkim ? 'dkim' : ''].filter(Boolean).join('+')}; ${where}` };
  }
  const sampled = inSample(rec.pct, random);
  const applied = sampled ? policy : weaker(policy);
  const pct = rec.pct === 100 ? '' : `, pct=${rec.pct} ${sampled ? 'sampled' : 'not sampled'}`;
  return { ...base, result: 'fail', applied, reason: `no aligned pass; ${where}${pct}` };
}

/** §6.6.4: "random() < pct/100" selects exactly pct% of a uniform [0, 1) source. */
function inSample(pct: number, random?: () => number): boolean {
  if (pct >= 100) return true;
  if (random === undefined) return false;
  const r = random();
  return Number.isFinite(r) && r < pct / 100;
}

/** §6.6.4: outside the sample, reject becomes quarantine and quarantine becomes none. */
function weaker(p: DmarcPolicy): DmarcPolicy {
  switch (p) {
    case 'reject':
      return 'quarantine';
    case 'quarantine':
    case 'none':
      return 'none';
    default:
      return assertNever(p);
  }
}

/** LDH labels, at least two, not all-numeric TLD (an IPv4 literal is not a domain), fits _dmarc. + name. */
function validFromDomain(d: string): boolean {
  if (d.length === 0 || d.length > MAX_NAME - '_dmarc.'.length) return false;
  const labels = d.split('.');
  if (labels.length < 2 || /^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return false;
  return labels.every((l) => LDH_LABEL.test(l));
}

async function discover(from: string, org: string, dns: DmarcDns): Promise<Discovery> {
  const first = await lookup(from, dns);
  if (first.kind !== 'absent' || org === from) return first;
  const second = await lookup(org, dns);
  return second.kind === 'absent' ? { kind: 'absent', why: `no DMARC record at _dmarc.${from} or _dmarc.${org}` } : second;
}

async function lookup(domain: string, dns: DmarcDns): Promise<Discovery> {
  const name = `_dmarc.${domain}`;
  let answer: TxtAnswer;
  try {
    answer = await dns.txt(name);
  } catch (e) {
    return { kind: 'temp', why: `${name}: lookup failed: ${String(e).slice(0, 120)}` };
  }
  if (!Array.isArray(answer)) {
    const err = (answer as { error?: unknown } | null)?.error;
    if (err === 'nxdomain' || err === 'nodata') return { kind: 'absent', why: `${name}: ${err}` };
    return { kind: 'temp', why: `${name}: temporary DNS failure` };
  }
  return fromTxt(name, domain, answer as readonly string[]);
}

function fromTxt(name: string, domain: string, txts: readonly string[]): Discovery {
  const sel = selectDmarcRecord(txts);
  switch (sel.kind) {
    case 'none':
      return { kind: 'absent', why: `${name}: no v=DMARC1 record` };
    case 'several':
      return { kind: 'unusable', why: `${name}: ${sel.count} DMARC records` };
    case 'one': {
      const parsed = parseDmarcRecord(sel.text);
      return parsed.ok ? { kind: 'record', record: parsed.record, domain } : { kind: 'unusable', why: `${name}: invalid record: ${parsed.error}` };
    }
    default:
      return assertNever(sel);
  }
}

/** §3.1.1 / §3.1.2: without a record the default mode, relaxed, is reported. */
function modes(found: Discovery): { readonly adkim: AlignmentMode; readonly aspf: AlignmentMode } {
  return found.kind === 'record' ? found.record : { adkim: 'r', aspf: 'r' };
}

function aligned(domain: string, from: string, mode: AlignmentMode, rules?: SuffixRules): boolean {
  const d = normalizeDomain(domain);
  if (d === '') return false;
  switch (mode) {
    case 's':
      return d === from;
    case 'r':
      return d === from || organizationalDomain(d, rules) === organizationalDomain(from, rules);
    default:
      return assertNever(mode);
  }
}

function isSpfAligned(input: DmarcInput, from: string, found: Discovery, rules?: SuffixRules): boolean {
  return isPass(input.spf.result) && aligned(input.spf.domain, from, modes(found).aspf, rules);
}

function isDkimAligned(input: DmarcInput, from: string, found: Discovery, rules?: SuffixRules): boolean {
  const mode = modes(found).adkim;
  return input.dkim.some((s) => isPass(s.result) && aligned(s.domain, from, mode, rules));
}

function isPass(result: string): boolean {
  return typeof result === 'string' && result.toLowerCase() === 'pass';
}
