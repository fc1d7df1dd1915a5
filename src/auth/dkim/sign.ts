/**
 * DKIM signing (RFC 6376 §5, RFC 8463 §3, RFC 8301): given the header
 * fields, the body digest and a private key, produce the folded
 * DKIM-Signature field to prepend. Pure apart from node:crypto signing.
 *
 * Defaults follow RFC 6376 §5.4.1 (sign the fields that carry meaning) and
 * §8.15 (over-sign From: one more h= entry than there are From fields, so a
 * second From added in transit breaks the signature instead of being shown).
 * b= comes last so that the signed text is the emitted field up to "b=".
 */
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { headerHashInput, selectHeaders, type BodyDigest, type Canon, type RawField } from './canon';
import type { Algorithm } from './signature';

export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'from', 'sender', 'reply-to', 'subject', 'date', 'message-id', 'to', 'cc',
  'mime-version', 'content-type', 'content-transfer-encoding', 'content-id', 'content-description',
  'in-reply-to', 'references', 'list-id', 'list-help', 'list-unsubscribe', 'list-unsubscribe-post',
  'list-subscribe', 'list-post', 'list-owner', 'list-archive',
];
export const DEFAULT_OVERSIGNED: readonly string[] = ['from'];
/** Folding width for the emitted field (RFC 5322 §2.1.1 SHOULD 78). */
const WIDTH = 76;

export interface SignOptions {
  readonly domain: string;
  readonly selector: string;
  /** RSA (rsa-sha256) or Ed25519 (ed25519-sha256) private key. */
  readonly privateKey: KeyObject;
  readonly headerCanon?: Canon; // default relaxed
  readonly bodyCanon?: Canon; // default relaxed; must match the hasher the body went through
  /** Names to sign when present; default DEFAULT_SIGNED_HEADERS. */
  readonly headers?: readonly string[];
  /** Names signed once more than they occur; default From. */
  readonly overSign?: readonly string[];
  readonly identity?: string; // i=
  readonly timestamp?: number; // t=, Unix seconds
  readonly expiration?: number; // x=
  /** Emit l= with the body's canonical length (discouraged: §8.2). */
  readonly bodyLength?: boolean;
}

export function algorithmFor(key: KeyObject): Algorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519-sha256';
  if (key.asymmetricKeyType === 'rsa') return 'rsa-sha256'; // RFC 8301 §3.1: never rsa-sha1
  return undefined;
}

/** The complete field, "DKIM-Signature: ...\r\n", folded. Throws only on a key that is neither RSA nor Ed25519 (a config error). */
export function signMessage(fields: readonly RawField[], body: BodyDigest, opts: SignOptions): string {
  const algorithm = algorithmFor(opts.privateKey);
  if (algorithm === undefined) throw new Error(`DKIM: unsupported key type ${opts.privateKey.asymmetricKeyType}`);
  const hc = opts.headerCanon ?? 'relaxed';
  const names = signedNames(fields, opts.headers ?? DEFAULT_SIGNED_HEADERS, opts.overSign ?? DEFAULT_OVERSIGNED);
  const tags: [string, string][] = [['v', '1'], ['a', algorithm], ['c', `${hc}/${opts.bodyCanon ?? 'relaxed'}`], ['d', opts.domain], ['s', opts.selector]];
  if (opts.identity !== undefined) tags.push(['i', opts.identity]);
  if (opts.timestamp !== undefined) tags.push(['t', String(opts.timestamp)]);
  if (opts.expiration !== undefined) tags.push(['x', String(opts.expiration)]);
  if (opts.bodyLength === true) tags.push(['l', String(body.length)]);
  tags.push(['h', names.join(':')], ['bh', body.hash.toString('base64')]);
  const unsigned = foldTags('DKIM-Signature:', tags) + ' b=';
  const b = signData(fields, unsigned, names, hc, opts.privateKey);
  return `${foldValue(unsigned, b.toString('base64'))}\r\n`;
}

/** h=: each wanted name once per occurrence, plus one more for the over-signed ones. */
export function signedNames(fields: readonly RawField[], wanted: readonly string[], overSign: readonly string[]): string[] {
  const names: string[] = [];
  for (const name of wanted.map((n) => n.toLowerCase())) {
    const count = fields.filter((f) => f.name.toLowerCase() === name).length;
    const extra = overSign.some((o) => o.toLowerCase() === name) ? 1 : 0;
    for (let i = 0; i < count + extra; i++) names.push(name);
  }
  return names;
}

/**
 * The b= value for a signature field whose text (b= empty) is `sigRawWithoutB`.
 * Exported so tests can re-derive published signatures byte for byte.
 */
export function signData(fields: readonly RawField[], sigRawWithoutB: string, names: readonly string[], canon: Canon, key: KeyObject): Buffer {
  const data = headerHashInput(selectHeaders(fields, names), sigRawWithoutB, canon);
  if (key.asymmetricKeyType === 'ed25519') return cryptoSign(null, createHash('sha256').update(data).digest(), key); // RFC 8463 §3
  return cryptoSign('sha256', data, key);
}

/** Tags joined by "; ", folded before a tag that would pass WIDTH; h= may also break after a colon. */
function foldTags(head: string, tags: readonly (readonly [string, string])[]): string {
  const tokens: string[] = [];
  for (const [name, value] of tags) {
    const pieces = name === 'h' ? value.split(/(?<=:)/) : [value];
    pieces.forEach((p, i) => tokens.push(`${i === 0 ? ` ${name}=` : ''}${p}${i === pieces.length - 1 ? ';' : ''}`));
  }
  let out = head;
  let col = head.length;
  for (const token of tokens) {
    if (col + token.length > WIDTH) {
      const t = token.trimStart();
      out += `\r\n\t${t}`;
      col = 1 + t.length;
    } else {
      out += token;
      col += token.length;
    }
  }
  return out;
}

/** Appends a base64 value, breaking it into lines of WIDTH. */
function foldValue(prefix: string, value: string): string {
  const lastLine = prefix.length - prefix.lastIndexOf('\n') - 1;
  let room = Math.max(8, WIDTH - lastLine);
  let out = prefix;
  for (let i = 0; i < value.length; ) {
    out += value.slice(i, i + room);
    i += room;
    if (i < value.length) out += '\r\n\t';
    room = WIDTH - 1;
  }
  return out;
}
