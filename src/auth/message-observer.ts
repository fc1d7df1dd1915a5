/**
 * The streaming message observer: sits between the DATA/BDAT decoder and the
 * queue, sees every byte of a message once, and gathers what sender
 * authentication needs without keeping a copy of the body.
 *
 * - The header section is held (bounded) until it ends (RFC 5322 §2.1: the
 *   first empty line; message/header.ts decides, so the fields are exactly
 *   those rawFields() finds in the whole message).
 * - RFC 8601 §5: Authentication-Results fields carrying our own authserv-id
 *   are removed before the message is stored, since our users' MUAs trust
 *   them; everything else is released byte for byte.
 * - RFC 6376 §6.1.1: up to `maxSignatures` DKIM-Signature fields are parsed;
 *   a field that does not parse is kept as a permerror. One BodyHasher runs
 *   per distinct (body canonicalization, hash, l=) need (§3.7), plus the
 *   relaxed/sha256 one a signer needs (§5.4), so the body streams through
 *   each hash once, whatever the chunking.
 * - A header section that has not ended within `maxHeaderBytes` (the parser
 *   reads one byte more to tell) is released unchanged and nothing is
 *   observed: the stream goes on with no further work. Memory while holding:
 *   at most maxHeaderBytes plus the last chunk.
 *
 * Pure: no I/O, no clock. It never throws on any input (bare CR or LF
 * included: the session refuses such a message later).
 */
import { BodyHasher, type BodyDigest, type RawField } from './dkim/canon';
import { hashOf, parseSignature, type DkimSignature } from './dkim/signature';
import { unfoldValue } from './dkim/verify';
import { authservIdOf } from './auth-results';
import { parseAddressList } from '../message/address-list';
import { DefectList, HeaderParser, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, type HeaderField } from '../message/header';
import { ChunkList } from '../message/chunk-list';
import { assertNever } from '../smtp/assert-never';

/** Postfix's header_size_limit: a header section past it is not mail anyone needs to authenticate. */
export const DEFAULT_MAX_HEADER_BYTES = 100 * 1024;
/** Each signature can cost a DNS query and a body hash: an attacker's 1,000 signatures must cost 8. */
export const DEFAULT_MAX_SIGNATURES = 8;

export interface ObserverOptions {
  /** Ours, as Authentication-Results writes it (RFC 8601 §2.5). */
  readonly authservId: string;
  /** Inbound: strip forged Authentication-Results and hash for the DKIM-Signatures found. */
  readonly verify: boolean;
  /** Outbound: hash the body for a relaxed/sha256 signature. */
  readonly sign: boolean;
  readonly maxHeaderBytes?: number;
  readonly maxSignatures?: number;
}

/** One DKIM-Signature field: parsed with the digest of the body its c=/a=/l= call for, or unusable. */
export type ObservedSignature =
  | { readonly kind: 'parsed'; readonly field: RawField; readonly sig: DkimSignature; readonly body: BodyDigest }
  | { readonly kind: 'unusable'; readonly field: RawField; readonly reason: string; readonly sig?: DkimSignature };

export interface ObservedMessage {
  /** Every header field as received, forged ones included: what signers signed (verification uses these). */
  readonly fields: readonly RawField[];
  /** The fields as stored: `fields` minus the removed Authentication-Results (a signer signs these). */
  readonly storedFields: readonly RawField[];
  /** Offset of the first body byte in the message as received. */
  readonly bodyOffset: number;
  readonly signatures: readonly ObservedSignature[];
  /** DKIM-Signature fields past maxSignatures, not evaluated. */
  readonly ignoredSignatures: number;
  /** relaxed/sha256 over the whole body when `sign`; else null. */
  readonly signingBody: BodyDigest | null;
  /** Number of From fields (RFC 5322 §3.6 allows exactly one). */
  readonly fromFields: number;
  /** Distinct domains of the From mailboxes, lowercased, in order of appearance. */
  readonly fromDomains: readonly string[];
  readonly removedAuthResults: number;
}

type Phase =
  | 'header' // holding chunks until the header section ends
  | 'body' // header released; body bytes stream through the hashers
  | 'through' // too large a header, or nothing asked for: bytes pass unchanged, nothing observed
  | 'ended'; // end() was called

/** A signature waiting for its body digest: `need` names its hasher. */
interface Pending {
  readonly field: RawField;
  readonly sig: DkimSignature;
  readonly need: string;
}

const SIGNING_NEED = needKey('relaxed', 'sha256', undefined);

export class MessageObserver {
  private phase: Phase;
  private readonly maxHeader: number;
  private readonly maxSignatures: number;
  private readonly parser: HeaderParser;
  private held = new ChunkList();
  private seen = 0;
  private parsed: HeaderField[] = [];
  private readonly hashers = new Map<string, BodyHasher>();
  private header: Omit<ObservedMessage, 'signatures' | 'signingBody'> | null = null;
  private pending: (Pending | ObservedSignature)[] = [];
  private result: ObservedMessage | null = null;

  constructor(private readonly opts: ObserverOptions) {
    this.maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxSignatures = opts.maxSignatures ?? DEFAULT_MAX_SIGNATURES;
    this.phase = opts.verify || opts.sign ? 'header' : 'through';
    this.parser = new HeaderParser({ maxBytes: Math.max(MAX_HEADER_BYTES, this.maxHeader), maxFields: MAX_HEADER_FIELDS });
  }

  /**
   * The bytes to store now, in order; [] while the header section is held.
   * Held chunks are kept by reference: the caller must not reuse their memory.
   */
  push(chunk: Buffer): Buffer[] {
    switch (this.phase) {
      case 'header':
        return this.holdHeader(chunk);
      case 'body':
        for (const h of this.hashers.values()) h.push(chunk);
        return [chunk];
      case 'through':
      case 'ended': // a caller bug; the bytes are still never lost
        return [chunk];
      default:
        return assertNever(this.phase);
    }
  }

  /** The input ended: what is still held (a message with no empty line is all header), and the digests are final. */
  end(): Buffer[] {
    let out: Buffer[] = [];
    if (this.phase === 'header') {
      this.parsed.push(...this.parser.end());
      out = this.headerEnded();
    }
    if (this.phase === 'body') this.finish();
    this.phase = 'ended';
    return out;
  }

  /** After end(): what was observed, or null when the header section was too large (or nothing was asked). */
  get observed(): ObservedMessage | null {
    return this.result;
  }

  private holdHeader(chunk: Buffer): Buffer[] {
    // The parser never reads past maxHeader + 1 bytes: enough to tell that the section is too large.
    const room = this.maxHeader + 1 - this.seen;
    this.parsed.push(...this.parser.push(room >= chunk.length ? chunk : chunk.subarray(0, room)));
    this.held.push(chunk);
    this.seen += chunk.length;
    if (this.parser.done) return this.parser.bodyOffset <= this.maxHeader ? this.headerEnded() : this.giveUp();
    return this.seen > this.maxHeader ? this.giveUp() : [];
  }

  private giveUp(): Buffer[] {
    const out = this.held.take();
    this.parsed = [];
    this.phase = 'through';
    return out;
  }

  /** The section is complete: decide what to remove, set up the hashers, hash the body bytes already held. */
  private headerEnded(): Buffer[] {
    const parts = this.held.take();
    const all = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    const removed = this.opts.verify ? ourAuthResults(this.parsed, this.opts.authservId) : [];
    this.header = this.describe(all, removed);
    if (this.opts.verify) this.pending = this.parseSignatures(this.header.fields);
    if (this.opts.sign) this.hasherFor(SIGNING_NEED, () => new BodyHasher('relaxed', 'sha256'));
    this.parsed = [];
    this.phase = 'body';
    const body = all.subarray(this.header.bodyOffset);
    for (const h of this.hashers.values()) h.push(body);
    if (removed.length > 0) return without(all, removed);
    return all.length === 0 ? [] : [all];
  }

  private describe(all: Buffer, removed: readonly HeaderField[]): Omit<ObservedMessage, 'signatures' | 'signingBody'> {
    const fields = this.parsed.map((f) => ({ name: f.name, raw: all.toString('latin1', f.start, f.end) }));
    const signatures = countNamed(fields, 'dkim-signature');
    return {
      fields,
      storedFields: fields.filter((_f, i) => !removed.includes(this.parsed[i] as HeaderField)),
      bodyOffset: this.parser.bodyOffset,
      ignoredSignatures: this.opts.verify ? Math.max(0, signatures - this.maxSignatures) : 0,
      fromFields: countNamed(fields, 'from'),
      fromDomains: fromDomains(this.parsed),
      removedAuthResults: removed.length,
    };
  }

  private parseSignatures(fields: readonly RawField[]): (Pending | ObservedSignature)[] {
    const sigFields = fields.filter((f) => f.name.toLowerCase() === 'dkim-signature').slice(0, this.maxSignatures);
    return sigFields.map((field) => {
      const parsed = parseSignature(unfoldValue(field.raw));
      if (!parsed.ok) return { kind: 'unusable', field, reason: parsed.reason };
      const sig = parsed.sig;
      // RFC 8301 §3.1: refused before any hashing, so an rsa-sha1 signature costs no SHA-1 pass over the body.
      if (sig.algorithm === 'rsa-sha1') return { kind: 'unusable', field, reason: 'rsa-sha1 is not allowed (RFC 8301 §3.1)', sig };
      const need = needKey(sig.bodyCanon, hashOf(sig.algorithm), sig.bodyLength);
      this.hasherFor(need, () => new BodyHasher(sig.bodyCanon, hashOf(sig.algorithm), sig.bodyLength));
      return { field, sig, need };
    });
  }

  private hasherFor(need: string, make: () => BodyHasher): void {
    if (!this.hashers.has(need)) this.hashers.set(need, make());
  }

  private finish(): void {
    const digests = new Map<string, BodyDigest>();
    for (const [need, h] of this.hashers) digests.set(need, h.end());
    const header = this.header;
    if (header === null) return;
    const signatures = this.pending.map((p): ObservedSignature => ('need' in p ? { kind: 'parsed', field: p.field, sig: p.sig, body: digests.get(p.need) as BodyDigest } : p));
    this.result = { ...header, signatures, signingBody: this.opts.sign ? (digests.get(SIGNING_NEED) ?? null) : null };
    this.pending = [];
  }
}

/** Authentication-Results fields that claim to be ours (RFC 8601 §5), in order. */
function ourAuthResults(fields: readonly HeaderField[], authservId: string): HeaderField[] {
  const ours = authservId.toLowerCase();
  return fields.filter((f) => f.name.toLowerCase() === 'authentication-results' && authservIdOf(f.value)?.toLowerCase() === ours);
}

/** `all` with the given fields cut out, as views (no copy); `removed` is in message order. */
function without(all: Buffer, removed: readonly HeaderField[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const f of removed) {
    if (f.start > from) out.push(all.subarray(from, f.start));
    from = f.end;
  }
  if (from < all.length) out.push(all.subarray(from));
  return out;
}

function needKey(canon: string, hash: string, limit: number | undefined): string {
  return `${canon}/${hash}/${limit ?? ''}`;
}

function countNamed(fields: readonly { name: string }[], lower: string): number {
  return fields.filter((f) => f.name.toLowerCase() === lower).length;
}

/**
 * RFC 7489 §3.1.1 / RFC 6376 §8.15: the Author Domains are the domains of
 * every mailbox in every From field; the caller decides what more than one means.
 */
export function fromDomains(fields: readonly HeaderField[]): string[] {
  const defects = new DefectList();
  const out: string[] = [];
  for (const f of fields) {
    if (f.name.toLowerCase() !== 'from') continue;
    for (const mb of parseAddressList(f.value, defects, f.name)) {
      const at = mb.address.lastIndexOf('@');
      const domain = at < 0 ? '' : mb.address.slice(at + 1).toLowerCase().replace(/\.$/, '');
      if (domain !== '' && !out.includes(domain)) out.push(domain);
    }
  }
  return out;
}
