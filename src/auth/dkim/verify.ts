/**
 * Verification of one DKIM-Signature (RFC 6376 §6.1, RFC 8463 §3, RFC 8301).
 * Pure: the caller parses the header, streams the body through the hasher
 * that `bodyHasherFor` returns, fetches the key record and passes a clock.
 * DNS failures (temperror) are the caller's to report; a key answer of
 * `{ error }` is mapped to temperror for convenience.
 *
 * Order of checks, each ending verification (§6.1.1-§6.1.3): signature
 * syntax and time → key record → body hash → header signature.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import { BodyHasher, headerHashInput, selectHeaders, withoutB, type BodyDigest, type RawField } from './canon';
import { parseKeyRecord } from './key-record';
import { hashOf, keyTypeOf, parseSignature, type DkimSignature } from './signature';
import type { DkimKey } from './key-record';

export type VerifyResult =
  | { readonly result: 'pass'; readonly sig: DkimSignature; readonly testing: boolean }
  | { readonly result: 'fail'; readonly reason: string; readonly sig: DkimSignature }
  | { readonly result: 'permerror'; readonly reason: string; readonly sig?: DkimSignature }
  | { readonly result: 'temperror'; readonly reason: string; readonly sig?: DkimSignature };

/** What the caller's DNS lookup gave: TXT strings joined, null for NXDOMAIN/no TXT, or a temporary failure. */
export type KeyAnswer = string | null | { readonly error: string };

export interface VerifyOptions {
  /** Current time, Unix seconds (injected: the core reads no clock). */
  readonly now: number;
  /** RFC 8301 §3.2 floor; default 1024. */
  readonly minRsaBits?: number;
  /** RFC 8301 §3.1 forbids rsa-sha1; only a test of the historic vectors sets this. */
  readonly allowSha1?: boolean;
  /** Seconds a t= may lie in the future before the signature is refused (clock skew); default 300. */
  readonly futureSkew?: number;
}

/** The hasher a signature's c= and l= call for; push the body into it, then pass end() to verify. */
export function bodyHasherFor(sig: DkimSignature): BodyHasher {
  return new BodyHasher(sig.bodyCanon, hashOf(sig.algorithm), sig.bodyLength);
}

/** The DNS name to fetch for a signature (§3.6.2.1). */
export function keyName(sig: DkimSignature): string {
  return `${sig.selector}._domainkey.${sig.domain}`;
}

/**
 * Verifies `sigField` (one of `fields`, a DKIM-Signature) against the
 * message's header fields, the body digest for this signature and the key.
 */
export function verifySignature(fields: readonly RawField[], sigField: RawField, sig: DkimSignature, body: BodyDigest, keyAnswer: KeyAnswer, opts: VerifyOptions): VerifyResult {
  const perm = (reason: string): VerifyResult => ({ result: 'permerror', reason, sig });
  const time = checkTime(sig, opts);
  if (time !== undefined) return perm(time);
  if (sig.algorithm === 'rsa-sha1' && opts.allowSha1 !== true) return perm('rsa-sha1 is not allowed (RFC 8301 §3.1)');
  if (keyAnswer !== null && typeof keyAnswer === 'object') return { result: 'temperror', reason: `key lookup: ${keyAnswer.error}`, sig };
  if (keyAnswer === null) return perm(`no key record at ${keyName(sig)}`);
  const parsed = parseKeyRecord(keyAnswer, opts.minRsaBits === undefined ? {} : { minRsaBits: opts.minRsaBits });
  if (!parsed.ok) return perm(parsed.reason);
  const keyProblem = checkKey(sig, parsed.key);
  if (keyProblem !== undefined) return perm(keyProblem);
  if (sig.bodyLength !== undefined && sig.bodyLength > body.length) return { result: 'fail', reason: 'l= is longer than the body', sig };
  if (!body.hash.equals(sig.bodyHash)) return { result: 'fail', reason: 'body hash does not match bh=', sig };
  const data = headerHashInput(selectHeaders(fields, sig.signedHeaders, sigField), withoutB(sigField.raw), sig.headerCanon);
  if (!checkCrypto(sig, parsed.key, data)) return { result: 'fail', reason: 'signature does not verify', sig };
  return { result: 'pass', sig, testing: parsed.key.testing };
}

/** §3.5 t= and x=: expired signatures are refused; so is one dated in the future beyond the skew. */
function checkTime(sig: DkimSignature, opts: VerifyOptions): string | undefined {
  if (sig.expiration !== undefined && sig.expiration < opts.now) return 'signature expired (x=)';
  if (sig.timestamp !== undefined && sig.timestamp > opts.now + (opts.futureSkew ?? 300)) return 'signature timestamp (t=) is in the future';
  return undefined;
}

/** §6.1.2: the key must fit the signature's algorithm and identity. */
function checkKey(sig: DkimSignature, key: DkimKey): string | undefined {
  if (key.keyType !== keyTypeOf(sig.algorithm)) return `key type ${key.keyType} does not match a=${sig.algorithm}`;
  if (key.hashes !== undefined && !key.hashes.includes(hashOf(sig.algorithm))) return `key h= does not allow ${hashOf(sig.algorithm)}`;
  if (key.strict) {
    const idDomain = sig.identity.slice(sig.identity.lastIndexOf('@') + 1).toLowerCase();
    if (idDomain !== sig.domain) return 'key t=s forbids an i= subdomain';
  }
  return undefined;
}

function checkCrypto(sig: DkimSignature, key: DkimKey, data: Buffer): boolean {
  try {
    if (key.keyType === 'ed25519') {
      // RFC 8463 §3: Ed25519 signs the SHA-256 digest of the data, not the data.
      return cryptoVerify(null, createHash('sha256').update(data).digest(), key.key, sig.signature);
    }
    return cryptoVerify(hashOf(sig.algorithm), data, key.key, sig.signature);
  } catch {
    return false; // a malformed b= of the wrong length is a failed signature
  }
}

/** Parse-and-verify for a caller holding the whole message (tests, CLI): one result per DKIM-Signature, in order. */
export function verifyMessage(message: Uint8Array, fields: readonly RawField[], bodyOffset: number, lookup: (name: string) => KeyAnswer, opts: VerifyOptions): VerifyResult[] {
  const body = message.subarray(bodyOffset);
  return fields
    .filter((f) => f.name.toLowerCase() === 'dkim-signature')
    .map((f) => {
      const parsed = parseSignature(unfoldValue(f.raw));
      if (!parsed.ok) return { result: 'permerror', reason: parsed.reason } as const;
      const h = bodyHasherFor(parsed.sig);
      h.push(body);
      return verifySignature(fields, f, parsed.sig, h.end(), lookup(keyName(parsed.sig)), opts);
    });
}

/** The field value with line ends removed (what HeaderField.value holds). */
export function unfoldValue(raw: string): string {
  return raw.slice(raw.indexOf(':') + 1).replace(/\r?\n/g, '');
}
