/**
 * The DKIM-Signature header field (RFC 6376 §3.5), parsed and validated into
 * a value. Pure; never throws: every defect is a permerror reason
 * (RFC 6376 §6.1.1 lists what makes a signature unusable).
 *
 * Algorithms: rsa-sha256 (RFC 6376), ed25519-sha256 (RFC 8463 §3) and
 * rsa-sha1, which is parsed so that the verifier can refuse it by name
 * (RFC 8301 §3.1).
 */
import { decodeBase64, parseTagList, splitColonList, stripFws } from './tag-list';
import type { Canon, HashName } from './canon';

export type Algorithm = 'rsa-sha256' | 'rsa-sha1' | 'ed25519-sha256';
export type KeyType = 'rsa' | 'ed25519';

export interface DkimSignature {
  readonly algorithm: Algorithm;
  readonly signature: Buffer; // b=
  readonly bodyHash: Buffer; // bh=
  readonly headerCanon: Canon;
  readonly bodyCanon: Canon;
  readonly domain: string; // d=, lowercased
  readonly signedHeaders: readonly string[]; // h=, lowercased, in order
  readonly identity: string; // i=, decoded; default "@" + d (§3.5)
  readonly bodyLength: number | undefined; // l=
  readonly selector: string; // s=
  readonly timestamp: number | undefined; // t=, seconds
  readonly expiration: number | undefined; // x=, seconds
  readonly copiedHeaders: string | undefined; // z=, raw
}

export type SignatureResult = { readonly ok: true; readonly sig: DkimSignature } | { readonly ok: false; readonly reason: string };

export function keyTypeOf(a: Algorithm): KeyType {
  return a === 'ed25519-sha256' ? 'ed25519' : 'rsa';
}

export function hashOf(a: Algorithm): HashName {
  return a === 'rsa-sha1' ? 'sha1' : 'sha256';
}

const ALGORITHMS: readonly string[] = ['rsa-sha256', 'rsa-sha1', 'ed25519-sha256'];
const REQUIRED = ['v', 'a', 'b', 'bh', 'd', 'h', 's'] as const;
/** §3.5: l=, t=, x= are at most 76 decimal digits; we cap at what a double holds exactly. */
const DECIMAL = /^[0-9]{1,15}$/;
/** §3.5 selector / d= are domain names: sub-domain *("." sub-domain). */
const DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** Parses the field's value (unfolded, as HeaderField.value gives it). */
export function parseSignature(value: string): SignatureResult {
  const list = parseTagList(value);
  if (!list.ok) return list;
  const t = list.tags;
  for (const name of REQUIRED) if (!t.has(name)) return fail(`missing required tag ${name}=`);
  if (t.get('v') !== '1') return fail(`unsupported version v=${t.get('v')}`); // §6.1.1
  const a = t.get('a') ?? '';
  if (!ALGORITHMS.includes(a)) return fail(`unknown algorithm a=${a}`);
  const parts = parseParts(t);
  if (typeof parts === 'string') return fail(parts);
  return { ok: true, sig: { algorithm: a as Algorithm, ...parts } };
}

function fail(reason: string): SignatureResult {
  return { ok: false, reason };
}

type Parts = Omit<DkimSignature, 'algorithm'>;

/** The tags past v= and a=; returns a reason string on the first defect. */
function parseParts(t: ReadonlyMap<string, string>): Parts | string {
  const signature = decodeBase64(t.get('b') ?? '');
  const bodyHash = decodeBase64(t.get('bh') ?? '');
  if (signature === undefined || signature.length === 0) return 'b= is not base64';
  if (bodyHash === undefined || bodyHash.length === 0) return 'bh= is not base64';
  const canon = parseCanon(t.get('c'));
  if (canon === undefined) return `bad canonicalization c=${t.get('c')}`;
  const domain = (t.get('d') ?? '').toLowerCase();
  const selector = (t.get('s') ?? '').toLowerCase();
  if (!DOMAIN.test(domain)) return `bad domain d=${domain}`;
  if (!DOMAIN.test(selector)) return `bad selector s=${selector}`;
  const signedHeaders = splitColonList(t.get('h') ?? '').map((h) => h.toLowerCase());
  if (signedHeaders.some((h) => h === '')) return 'empty name in h=';
  if (!signedHeaders.includes('from')) return 'h= does not sign From'; // §6.1.1
  const identity = parseIdentity(t.get('i'), domain);
  if (identity === undefined) return 'i= is not within d='; // §6.1.1
  const nums = parseNumbers(t);
  if (typeof nums === 'string') return nums;
  const q = t.get('q');
  if (q !== undefined && !splitColonList(q).includes('dns/txt')) return `no supported query method in q=${q}`; // §3.5
  return { signature, bodyHash, ...canon, domain, selector, signedHeaders, identity, ...nums, copiedHeaders: t.get('z') };
}

function parseCanon(c: string | undefined): { headerCanon: Canon; bodyCanon: Canon } | undefined {
  if (c === undefined) return { headerCanon: 'simple', bodyCanon: 'simple' }; // §3.5 default
  const [h, b = 'simple', extra] = c.split('/');
  if (extra !== undefined || !isCanon(h) || !isCanon(b)) return undefined;
  return { headerCanon: h, bodyCanon: b };
}

function isCanon(s: string | undefined): s is Canon {
  return s === 'simple' || s === 'relaxed';
}

/** i= is dkim-quoted-printable (§2.11); its domain must be d= or a subdomain of it. */
function parseIdentity(i: string | undefined, domain: string): string | undefined {
  if (i === undefined) return `@${domain}`;
  const decoded = decodeQp(stripFws(i));
  const at = decoded.lastIndexOf('@');
  if (at < 0) return undefined;
  const idDomain = decoded.slice(at + 1).toLowerCase();
  return idDomain === domain || idDomain.endsWith(`.${domain}`) ? decoded : undefined;
}

/** RFC 6376 §2.11 dkim-quoted-printable: "=XX" hex escapes, nothing else special. */
export function decodeQp(s: string): string {
  return s.replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

type Numbers = { bodyLength: number | undefined; timestamp: number | undefined; expiration: number | undefined };

function parseNumbers(t: ReadonlyMap<string, string>): Numbers | string {
  const out: Numbers = { bodyLength: undefined, timestamp: undefined, expiration: undefined };
  const map = [['l', 'bodyLength'], ['t', 'timestamp'], ['x', 'expiration']] as const;
  for (const [tag, key] of map) {
    const v = t.get(tag);
    if (v === undefined) continue;
    if (!DECIMAL.test(v)) return `${tag}= is not a decimal number`;
    out[key] = Number(v);
  }
  // §3.5 x=: "the value of the "x=" tag MUST be greater than the value of the "t=" tag"
  if (out.timestamp !== undefined && out.expiration !== undefined && out.expiration < out.timestamp) return 'x= is before t=';
  return out;
}
