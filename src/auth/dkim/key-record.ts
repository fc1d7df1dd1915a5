/**
 * The DKIM public key record published in DNS TXT at
 * <selector>._domainkey.<domain> (RFC 6376 §3.6.1), parsed into a usable
 * node:crypto key. Pure apart from node:crypto key import; never throws.
 *
 * RFC 8301 §3.2: RSA keys under 1024 bits MUST NOT be considered valid.
 * RFC 8463 §4.2: an ed25519 p= is the raw 32-octet public key.
 * RFC 6376 §3.6.1 describes an rsa p= as RSAPublicKey, while every real
 * record (and the RFC's own example) holds a SubjectPublicKeyInfo: both are
 * accepted, as go-msgauth and dkimpy do.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeBase64, parseTagList, splitColonList } from './tag-list';
import type { KeyType } from './signature';

export interface DkimKey {
  readonly keyType: KeyType;
  readonly key: KeyObject;
  /** RSA modulus length; 256 for ed25519. */
  readonly bits: number;
  /** Key h=: acceptable hashes; undefined means any (§3.6.1). */
  readonly hashes: readonly string[] | undefined;
  /** Key t=y: the domain is testing DKIM. */
  readonly testing: boolean;
  /** Key t=s: i= must use d= exactly, no subdomain (§3.6.1). */
  readonly strict: boolean;
  readonly notes: string | undefined;
}

export type KeyRecordResult =
  | { readonly ok: true; readonly key: DkimKey }
  | { readonly ok: false; readonly reason: string; readonly revoked: boolean };

/** RFC 8301 §3.2 floor. Tests lower it to run the historic 512-bit vectors. */
export const MIN_RSA_BITS = 1024;
/** Above this an RSA verify is a CPU attack (RFC 8301 §3.2 only requires up to 4096). */
export const MAX_RSA_BITS = 8192;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4), before the 32 raw octets. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface KeyRecordOptions {
  readonly minRsaBits?: number;
}

export function parseKeyRecord(text: string, options: KeyRecordOptions = {}): KeyRecordResult {
  const list = parseTagList(text);
  if (!list.ok) return bad(`key record: ${list.reason}`);
  const t = list.tags;
  const v = t.get('v');
  // §3.6.1 v=: if present it MUST be the first tag and MUST be "DKIM1".
  if (v !== undefined && (v !== 'DKIM1' || t.keys().next().value !== 'v')) return bad(`key record: bad version v=${v}`);
  const k = t.get('k') ?? 'rsa';
  if (k !== 'rsa' && k !== 'ed25519') return bad(`key record: unknown key type k=${k}`);
  const s = t.get('s');
  if (s !== undefined && !splitColonList(s).some((x) => x === '*' || x === 'email')) return bad(`key record: service s=${s} excludes email`);
  const p = t.get('p');
  if (p === undefined) return bad('key record: no p= tag');
  if (p.replace(/[ \t\r\n]/g, '') === '') return { ok: false, reason: 'key revoked (empty p=)', revoked: true }; // §3.6.1
  const der = decodeBase64(p);
  if (der === undefined) return bad('key record: p= is not base64');
  const key = importKey(k, der);
  if (typeof key === 'string') return bad(key);
  const minBits = options.minRsaBits ?? MIN_RSA_BITS;
  if (k === 'rsa' && key.bits < minBits) return bad(`RSA key of ${key.bits} bits is under ${minBits} (RFC 8301 §3.2)`);
  if (k === 'rsa' && key.bits > MAX_RSA_BITS) return bad(`RSA key of ${key.bits} bits is over ${MAX_RSA_BITS}`);
  const flags = splitColonList(t.get('t') ?? '');
  const h = t.get('h');
  return {
    ok: true,
    key: {
      keyType: k,
      ...key,
      hashes: h === undefined ? undefined : splitColonList(h),
      testing: flags.includes('y'),
      strict: flags.includes('s'),
      notes: t.get('n'),
    },
  };
}

function bad(reason: string): KeyRecordResult {
  return { ok: false, reason, revoked: false };
}

function importKey(k: KeyType, der: Buffer): { key: KeyObject; bits: number } | string {
  if (k === 'ed25519') {
    if (der.length !== 32) return `key record: ed25519 p= is ${der.length} octets, not 32`;
    const key = tryImport(Buffer.concat([ED25519_SPKI_PREFIX, der]), 'spki');
    return key === undefined ? 'key record: bad ed25519 key' : { key, bits: 256 };
  }
  const key = tryImport(der, 'spki') ?? tryImport(der, 'pkcs1');
  if (key === undefined || key.asymmetricKeyType !== 'rsa') return 'key record: p= is not an RSA public key';
  return { key, bits: key.asymmetricKeyDetails?.modulusLength ?? 0 };
}

function tryImport(der: Buffer, type: 'spki' | 'pkcs1'): KeyObject | undefined {
  try {
    return createPublicKey({ key: der, format: 'der', type });
  } catch {
    return undefined; // hostile or truncated DER is a permerror, not a crash
  }
}
