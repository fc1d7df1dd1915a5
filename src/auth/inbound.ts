/**
 * Inbound sender authentication of one received message: SPF for the
 * envelope, DKIM for each signature the observer parsed, DMARC over both,
 * the Authentication-Results field to prepend (RFC 8601) and what to do.
 * Pure: DNS, the clock and randomness are injected; it never throws.
 *
 * - SPF (RFC 7208 §2.4): check_host() for the MAIL FROM domain; for the null
 *   reverse-path, the HELO identity as postmaster@HELO (§2.3, §2.4).
 * - DKIM (RFC 6376 §6.1): keys are fetched in parallel with SPF; RSA keys
 *   under 1024 bits are refused (RFC 8301 §3.2).
 * - DMARC (RFC 7489 §6.6): only with exactly one From domain; zero or several
 *   give permerror (§6.6.1) and so never a rejection.
 * - DNS failures come back as temperror and never cause a reject: a lookup
 *   that throws or rejects is a temporary failure too, and any unexpected
 *   error yields a verdict of temperror results, never an exception.
 *
 * Not handled here: a DNS call that never settles. The adapter
 * (src/dns/auth-dns.ts) puts a deadline on every query; a DNS object
 * without one would make this promise wait as long as it does.
 *
 * A message whose header section was too large to observe (observed = null)
 * is reported as dkim=permerror and dmarc=permerror, reason "header section
 * too large": nothing was verified, and retrying would not change that.
 */
import { renderAuthResults } from './auth-results';
import { keyName, verifySignature, type KeyAnswer, type VerifyResult } from './dkim/verify';
import { evaluateDmarc, type DmarcOutcome, type TxtAnswer } from './dmarc/evaluate';
import type { ObservedMessage, ObservedSignature } from './message-observer';
import { checkHost, type DnsAnswer, type SpfDns, type SpfOutcome } from './spf/check-host';
import { reply, type Reply } from '../smtp/reply';
import { assertNever } from '../smtp/assert-never';

/** What this module asks of DNS (src/dns/auth-dns.ts provides it). */
export type InboundDns = SpfDns & {
  txtJoined(name: string): Promise<TxtAnswer>;
  dkimKey(name: string): Promise<KeyAnswer>;
};

export interface InboundFacts {
  readonly clientIp: string;
  readonly helo: string;
  /** '' for the null reverse-path <>. */
  readonly mailFrom: string;
  readonly authservId: string;
  /** Unix seconds. */
  readonly now: number;
}

export type Enforcement = 'reject' | 'quarantine' | 'none';
export type InboundAction = 'accept' | 'quarantine' | 'reject';

export interface InboundOptions {
  readonly enforcement: Enforcement;
  /** For DMARC pct= sampling (RFC 7489 §6.6.4); uniform in [0, 1). */
  readonly random?: () => number;
}

export interface InboundVerdict {
  /** The Authentication-Results field to prepend, CRLF-terminated. */
  readonly header: Buffer;
  readonly spf: SpfOutcome;
  readonly dkim: readonly VerifyResult[];
  readonly dmarc: DmarcOutcome | null;
  readonly action: InboundAction;
  readonly logFields: Record<string, unknown>;
}

/** A DKIM key record is a few hundred octets (RSA-8192 is under 1,500): more is an attack on the parser. */
export const MAX_KEY_RECORD = 16 * 1024;
/** RFC 8301 §3.2: verifiers MUST NOT consider RSA keys under 1024 bits valid. */
const MIN_RSA_BITS = 1024;
const TOO_LARGE = 'header section too large';

/** The identity SPF checks and the domain DMARC aligns it with (RFC 7489 §4.1: HELO for <>). */
interface SpfIdentity {
  readonly kind: 'mailfrom' | 'helo';
  readonly domain: string;
  readonly sender: string;
}

export async function evaluateInbound(observed: ObservedMessage | null, facts: InboundFacts, dns: InboundDns, opts: InboundOptions): Promise<InboundVerdict> {
  try {
    return await evaluate(observed, facts, dns, opts);
  } catch (e) {
    return failedVerdict(facts, `internal: ${String(e).slice(0, 200)}`);
  }
}

async function evaluate(observed: ObservedMessage | null, facts: InboundFacts, dns: InboundDns, opts: InboundOptions): Promise<InboundVerdict> {
  const id = spfIdentity(facts);
  // The DMARC record is needed last but can be asked for first: the adapter shares the query in flight.
  const from = observed?.fromDomains.length === 1 ? observed.fromDomains[0] : undefined;
  if (from !== undefined) void safeTxt(dns, `_dmarc.${from}`);
  const [spf, dkim] = await Promise.all([runSpf(facts, id, dns), runDkim(observed, facts.now, dns)]);
  const dmarc = await runDmarc(observed, id, spf, dkim, dns, opts.random);
  const action = decide(dmarc, opts.enforcement);
  const header = render(facts, id, spf, dkim, dmarc, observed);
  return { header, spf, dkim, dmarc, action, logFields: logFields(id, spf, dkim, dmarc, action) };
}

/** RFC 7208 §2.4: MAIL FROM when there is one; else (§2.3) postmaster@HELO. */
export function spfIdentity(facts: Pick<InboundFacts, 'mailFrom' | 'helo'>): SpfIdentity {
  const at = facts.mailFrom.lastIndexOf('@');
  if (facts.mailFrom === '' || at < 0) return { kind: 'helo', domain: facts.helo, sender: `postmaster@${facts.helo}` };
  return { kind: 'mailfrom', domain: facts.mailFrom.slice(at + 1), sender: facts.mailFrom };
}

async function runSpf(facts: InboundFacts, id: SpfIdentity, dns: SpfDns): Promise<SpfOutcome> {
  try {
    return await checkHost(facts.clientIp, id.domain, id.sender, facts.helo, guardedSpfDns(dns), { now: facts.now });
  } catch (e) {
    return { result: 'temperror', reason: `internal: ${String(e).slice(0, 200)}` };
  }
}

async function runDkim(observed: ObservedMessage | null, now: number, dns: InboundDns): Promise<VerifyResult[]> {
  if (observed === null) return [{ result: 'permerror', reason: TOO_LARGE }];
  return Promise.all(observed.signatures.map((s) => verifyOne(observed, s, now, dns)));
}

async function verifyOne(observed: ObservedMessage, s: ObservedSignature, now: number, dns: InboundDns): Promise<VerifyResult> {
  switch (s.kind) {
    case 'unusable':
      return s.sig === undefined ? { result: 'permerror', reason: s.reason } : { result: 'permerror', reason: s.reason, sig: s.sig };
    case 'parsed': {
      const answer = await fetchKey(dns, keyName(s.sig));
      if (typeof answer === 'string' && answer.length > MAX_KEY_RECORD) return { result: 'permerror', reason: `key record over ${MAX_KEY_RECORD} octets`, sig: s.sig };
      try {
        return verifySignature(observed.fields, s.field, s.sig, s.body, answer, { now, minRsaBits: MIN_RSA_BITS });
      } catch (e) {
        return { result: 'temperror', reason: `internal: ${String(e).slice(0, 200)}`, sig: s.sig };
      }
    }
    default:
      return assertNever(s);
  }
}

/** The key record; a lookup that throws, rejects or answers nonsense is a temporary failure. */
async function fetchKey(dns: InboundDns, name: string): Promise<KeyAnswer> {
  try {
    const a: unknown = await dns.dkimKey(name);
    if (typeof a === 'string' || a === null) return a;
    if (typeof a === 'object' && 'error' in a) return { error: String(a.error) };
    return { error: 'malformed answer' };
  } catch (e) {
    return { error: `lookup failed: ${String(e).slice(0, 100)}` };
  }
}

/**
 * One lookup, its answer checked for shape: a method that throws or rejects,
 * or an answer that is neither a list nor a DNS error, is a temporary failure
 * (RFC 7208 §2.6.6, RFC 7489 §6.6.3: temperror), never "none".
 */
async function guarded<T>(lookup: () => Promise<DnsAnswer<T>>): Promise<DnsAnswer<T>> {
  try {
    const a: unknown = await lookup();
    if (Array.isArray(a)) return a as T[];
    if (typeof a === 'object' && a !== null && 'error' in a && (a.error === 'nxdomain' || a.error === 'nodata')) return { error: a.error };
    return { error: 'temp' };
  } catch {
    return { error: 'temp' };
  }
}

function guardedSpfDns(dns: SpfDns): SpfDns {
  return {
    txt: (name) => guarded(() => dns.txt(name)),
    a: (name) => guarded(() => dns.a(name)),
    aaaa: (name) => guarded(() => dns.aaaa(name)),
    mx: (name) => guarded(() => dns.mx(name)),
    ptr: (ip) => guarded(() => dns.ptr(ip)),
  };
}

async function safeTxt(dns: InboundDns, name: string): Promise<TxtAnswer> {
  const a = await guarded(() => dns.txtJoined(name));
  if (!Array.isArray(a)) return a as Exclude<typeof a, readonly unknown[]>; // nxdomain / nodata / temp, as answered
  return a.every((s) => typeof s === 'string') ? (a as readonly string[]) : { error: 'temp' };
}

async function runDmarc(observed: ObservedMessage | null, id: SpfIdentity, spf: SpfOutcome, dkim: readonly VerifyResult[], dns: InboundDns, random?: () => number): Promise<DmarcOutcome> {
  if (observed === null) return unevaluated(`${TOO_LARGE}; From not read`);
  const [fromDomain, ...more] = observed.fromDomains;
  if (fromDomain === undefined) return unevaluated('no From domain (RFC 7489 §6.6.1)');
  if (more.length > 0) return unevaluated(`${observed.fromDomains.length} From domains (RFC 7489 §6.6.1): ${observed.fromDomains.join(', ').slice(0, 200)}`);
  const signed = dkim.flatMap((r) => (r.sig === undefined ? [] : [{ result: r.result, domain: r.sig.domain }]));
  const input = { fromDomain, spf: { result: spf.result, domain: id.domain }, dkim: signed };
  return evaluateDmarc(input, { txt: (name) => safeTxt(dns, name) }, random === undefined ? {} : { random });
}

function unevaluated(reason: string): DmarcOutcome {
  return { result: 'permerror', policy: null, applied: 'none', spfAligned: false, dkimAligned: false, orgDomain: '', recordDomain: null, reason };
}

/** Only a DMARC fail acts, never an error (RFC 7489 §6.6.2: temperror and permerror mean no policy applied). */
export function decide(dmarc: DmarcOutcome | null, enforcement: Enforcement): InboundAction {
  if (dmarc === null || dmarc.result !== 'fail' || dmarc.applied === 'none') return 'accept';
  switch (enforcement) {
    case 'none':
      return 'accept';
    case 'quarantine':
      return 'quarantine';
    case 'reject':
      return dmarc.applied;
    default:
      return assertNever(enforcement);
  }
}

/**
 * The reply for a rejected message (RFC 7489 §6.7 suggests a 5xy at the end
 * of DATA, naming DMARC so the sender's postmaster can tell why; 5.7.1, as
 * the large receivers answer, rather than RFC 7372's 5.7.26); null when the
 * message is to be accepted or quarantined.
 */
export function rejectReply(verdict: Pick<InboundVerdict, 'action' | 'dmarc'>): Reply | null {
  if (verdict.action !== 'reject') return null;
  const domain = verdict.dmarc?.recordDomain ?? verdict.dmarc?.orgDomain ?? '';
  return reply(550, '5.7.1', `Message rejected by the DMARC policy of ${domain}`.trimEnd());
}

function render(facts: InboundFacts, id: SpfIdentity, spf: SpfOutcome, dkim: readonly VerifyResult[], dmarc: DmarcOutcome | null, observed: ObservedMessage | null): Buffer {
  const spfPart = { result: spf.result, ...(id.kind === 'mailfrom' ? { mailfrom: facts.mailFrom } : { helo: facts.helo }), ...notPass(spf.result, spf.reason) };
  const dkimPart = dkim.length === 0 ? [{ result: 'none' }] : dkim.map(dkimEntry);
  // With several author domains, all of them (the renderer quotes the list); with none, an empty value.
  const fromDomain = observed === null ? '' : observed.fromDomains.join(',');
  const dmarcPart = dmarc === null ? undefined : { result: dmarc.result, fromDomain, policy: dmarc.policy };
  return renderAuthResults({ authservId: facts.authservId, spf: spfPart, dkim: dkimPart, ...(dmarcPart === undefined ? {} : { dmarc: dmarcPart }) });
}

function dkimEntry(r: VerifyResult): { result: string; domain?: string; selector?: string; b?: string; reason?: string } {
  const reason = 'reason' in r ? notPass(r.result, r.reason) : {};
  if (r.sig === undefined) return { result: r.result, ...reason };
  // RFC 6008 §4: enough leading characters of b= to tell the signatures apart.
  return { result: r.result, domain: r.sig.domain, selector: r.sig.selector, b: r.sig.signature.toString('base64').slice(0, 12), ...reason };
}

/** A reason helps whoever reads a failure; a pass needs none. */
function notPass(result: string, reason: string): { reason?: string } {
  return result === 'pass' ? {} : { reason };
}

function logFields(id: SpfIdentity, spf: SpfOutcome, dkim: readonly VerifyResult[], dmarc: DmarcOutcome | null, action: InboundAction): Record<string, unknown> {
  return {
    spf: spf.result,
    spf_domain: id.domain,
    dkim: dkim.map((r) => ({ d: r.sig?.domain ?? null, result: r.result })),
    dmarc: dmarc?.result ?? null,
    dmarc_applied: dmarc?.applied ?? null,
    action,
  };
}

/** The verdict when evaluation itself failed: everything temperror, the message accepted. */
function failedVerdict(facts: InboundFacts, reason: string): InboundVerdict {
  const spf: SpfOutcome = { result: 'temperror', reason };
  const dkim: VerifyResult[] = [{ result: 'temperror', reason }];
  let header: Buffer;
  try {
    header = renderAuthResults({ authservId: facts.authservId, spf: { result: 'temperror' }, dkim: [{ result: 'temperror' }] });
  } catch {
    // RFC 8601 §2.2: authserv-id is a value (token or quoted-string); anything unsafe is dropped.
    const safeId = facts.authservId.replace(/[^A-Za-z0-9.-]/g, '') || 'localhost';
    header = Buffer.from(`Authentication-Results: ${safeId};\r\n\tspf=temperror;\r\n\tdkim=temperror\r\n`, 'latin1');
  }
  return { header, spf, dkim, dmarc: null, action: 'accept', logFields: { spf: 'temperror', dkim: [{ d: null, result: 'temperror' }], dmarc: null, dmarc_applied: null, action: 'accept', error: reason } };
}
