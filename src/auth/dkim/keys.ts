/**
 * DKIM signing keys: a dkim_sign entry's PEM text (domain:selector:keyfile;
 * load-keys.ts reads the files) made into a node:crypto key, the choice of key for a sender's domain, and the
 * public key record to publish for a key.
 *
 * - RFC 8301 §3.1: rsa-sha256 only; §3.2: RSA keys under 1024 bits are
 *   refused here (a verifier would call them invalid), and keys over
 *   MAX_RSA_BITS too (Petrel's own verifier refuses them as a CPU attack).
 *   The caller warns below 2048 bits (§3.2 SHOULD), from `bits`.
 * - RFC 8463 §3: Ed25519 keys sign ed25519-sha256; §4.2: their p= is the
 *   raw 32-octet public key, not a SubjectPublicKeyInfo.
 * - RFC 6376 §3.6.1: an RSA p= is published as the SubjectPublicKeyInfo, as
 *   the RFC's own example and every real record do.
 * - RFC 6376 §3.6.2.2 / RFC 1035 §3.3.14: a TXT character-string holds at
 *   most 255 octets, so a longer record is published as several strings.
 * - Key choice: the configured domain equal to the sender's domain, else its
 *   nearest configured parent (mail.example.com signs as d=example.com,
 *   which DMARC relaxed alignment accepts, RFC 7489 §3.1.1).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { domainToASCII } from 'node:url';
/** A dkim_sign entry (config/values.ts DkimSign), restated so the pure core imports nothing outside it. */
export interface DkimSignEntry {
  readonly domain: string;
  readonly selector: string;
  readonly keyFile: string;
}
import { MAX_RSA_BITS, MIN_RSA_BITS } from './key-record';

export interface SigningKey {
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: KeyObject;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** RSA modulus length; 256 for Ed25519. */
  readonly bits: number;
  readonly keyFile: string;
}

/** A key file that cannot be used, with the file and the domain it was configured for. */
export class DkimKeyError extends Error {
  constructor(
    readonly keyFile: string,
    readonly domain: string,
    readonly reason: string,
  ) {
    super(`DKIM key ${keyFile} for ${domain}: ${reason}`);
    this.name = 'DkimKeyError';
  }
}

/** Octets per TXT character-string (RFC 1035 §3.3). */
export const MAX_CHARACTER_STRING = 255;

/** One entry's key from its PEM text (PKCS#8, or PKCS#1 for RSA); throws DkimKeyError. */
export function signingKeyFrom(entry: DkimSignEntry, pem: string | Buffer): SigningKey {
  const fail = (reason: string): never => {
    throw new DkimKeyError(entry.keyFile, entry.domain, reason);
  };
  const key = importPrivate(pem);
  if (typeof key === 'string') return fail(key);
  const usable = signingKind(key);
  if (typeof usable === 'string') return fail(usable);
  return { domain: normalizeDomain(entry.domain), selector: entry.selector, privateKey: key, keyFile: entry.keyFile, ...usable };
}

/** PKCS#8 "ENCRYPTED PRIVATE KEY" or the legacy RFC 1421 header OpenSSL writes into PKCS#1 files. */
const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m;

function importPrivate(pem: string | Buffer): KeyObject | string {
  // Told apart by its header: OpenSSL's own error for a missing passphrase differs between versions.
  if (ENCRYPTED_PEM.test(pem.toString('latin1'))) return 'the key is encrypted; a DKIM key file must hold an unencrypted PEM key (keep it mode 0600 instead)';
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    return 'not a PEM private key (PKCS#8 "BEGIN PRIVATE KEY" or PKCS#1 "BEGIN RSA PRIVATE KEY")';
  }
}

/** The algorithm a key signs with and its size, or why it cannot sign DKIM. */
export function signingKind(key: KeyObject): { algorithm: SigningKey['algorithm']; bits: number } | string {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return { algorithm: 'ed25519-sha256', bits: 256 };
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) return `an RSA key of ${bits} bits is too short: verifiers refuse keys under ${MIN_RSA_BITS} bits (RFC 8301 §3.2); use 2048`;
      if (bits > MAX_RSA_BITS) return `an RSA key of ${bits} bits is too long: verifiers may refuse keys over ${MAX_RSA_BITS} bits`;
      return { algorithm: 'rsa-sha256', bits };
    }
    default:
      return `a ${key.asymmetricKeyType ?? 'unknown'} key cannot sign DKIM: use RSA (rsa-sha256) or Ed25519 (RFC 8463)`;
  }
}

/** A-labels, lowercase, no root dot: the form d= and the configured domains are compared in. */
export function normalizeDomain(domain: string): string {
  // eslint-disable-next-line no-control-regex
  const ascii = /[^\x00-\x7f]/.test(domain) ? domainToASCII(domain) : domain;
  return ascii.toLowerCase().replace(/\.$/, '');
}

/**
 * PURE: which of the `configured` domains signs mail from `domain`: the same
 * domain, else the nearest parent at a label boundary; null for none.
 */
export function matchSigningDomain(configured: readonly string[], domain: string): string | null {
  const wanted = normalizeDomain(domain);
  if (wanted === '') return null;
  const set = new Set(configured.map(normalizeDomain));
  for (let d = wanted; ; ) {
    if (set.has(d)) return d;
    const dot = d.indexOf('.');
    if (dot < 0) return null;
    d = d.slice(dot + 1);
  }
}

/** Every key of the matching domain, in configuration order (an RSA and an Ed25519 key may both sign, RFC 8463 §1). */
export function keysForDomain(keys: readonly SigningKey[], domain: string): SigningKey[] {
  const match = matchSigningDomain(
    keys.map((k) => k.domain),
    domain,
  );
  return match === null ? [] : keys.filter((k) => normalizeDomain(k.domain) === match);
}

export function keyForDomain(keys: readonly SigningKey[], domain: string): SigningKey | null {
  return keysForDomain(keys, domain)[0] ?? null;
}

/** The TXT record text for a key (private or public): "v=DKIM1; k=...; p=...". */
export function publicKeyRecord(key: KeyObject): string {
  const pub = key.type === 'public' ? key : createPublicKey(key);
  if (pub.asymmetricKeyType === 'ed25519') {
    const jwk = pub.export({ format: 'jwk' });
    return `v=DKIM1; k=ed25519; p=${Buffer.from(jwk.x ?? '', 'base64url').toString('base64')}`;
  }
  if (pub.asymmetricKeyType === 'rsa') return `v=DKIM1; k=rsa; p=${pub.export({ format: 'der', type: 'spki' }).toString('base64')}`;
  throw new Error(`no DKIM key record for a ${pub.asymmetricKeyType ?? 'unknown'} key`);
}

/** The record's owner name, <selector>._domainkey.<domain> (RFC 6376 §3.6.2.1). */
export function keyRecordName(selector: string, domain: string): string {
  return `${selector}._domainkey.${domain}`;
}

/** PURE: `text` (ASCII) cut into character-strings of at most `max` octets; at least one string. */
export function characterStrings(text: string, max = MAX_CHARACTER_STRING): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += max) out.push(text.slice(i, i + max));
  return out.length > 0 ? out : [''];
}

/** Zone-file form: owner name, class, type and the quoted strings in parentheses (RFC 1035 §5.1). */
export function zoneFileRecord(selector: string, domain: string, text: string): string {
  const strings = characterStrings(text).map((s) => `"${s}"`);
  return `${keyRecordName(selector, domain)}. IN TXT ( ${strings.join('\n\t')} )`;
}
