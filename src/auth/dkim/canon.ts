/**
 * DKIM canonicalization (RFC 6376 §3.4) and the streaming body hash
 * (RFC 6376 §3.7). Pure apart from node:crypto hashing.
 *
 * Headers work on latin1 strings so that every octet maps to one char and
 * 8-bit bytes survive unchanged. The body is never copied whole: bytes go
 * through a byte machine that defers only what canonicalization may still
 * delete (a run of WSP, a run of empty lines, a CR), which it keeps as
 * counters, so memory is constant whatever the line lengths.
 */
import { createHash, type Hash } from 'node:crypto';
import { parseHeader } from '../../message/header';
import { assertNever } from '../../smtp/assert-never';

export type Canon = 'simple' | 'relaxed';
export type HashName = 'sha256' | 'sha1';

/** One header field as written: `raw` is latin1 and includes its final CRLF. */
export interface RawField {
  readonly name: string;
  readonly raw: string;
}

/** The header fields of a message, in order, with their raw bytes (uses message/header.ts). */
export function rawFields(message: Uint8Array): { fields: RawField[]; bodyOffset: number } {
  const parsed = parseHeader(message);
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const fields = parsed.fields.map((f) => ({ name: f.name, raw: buf.toString('latin1', f.start, f.end) }));
  return { fields, bodyOffset: parsed.bodyOffset };
}

/** RFC 6376 §3.4.1 / §3.4.2: one field canonicalized, ending in CRLF. */
export function canonHeader(raw: string, canon: Canon): string {
  switch (canon) {
    case 'simple':
      return raw.endsWith('\r\n') ? raw : `${raw}\r\n`;
    case 'relaxed':
      return relaxedHeader(raw);
    default:
      return assertNever(canon);
  }
}

function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(':');
  const name = (colon < 0 ? raw : raw.slice(0, colon)).replace(/[ \t\r\n]+$/, '').toLowerCase();
  const value = (colon < 0 ? '' : raw.slice(colon + 1))
    .replace(/\r\n/g, '') // unfold: §3.4.2 interprets continuation lines without their CRLF
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
  return `${name}:${value}\r\n`;
}

/**
 * RFC 6376 §5.4.2: for each name in h=, the last not-yet-used instance,
 * scanning from the bottom; a name with no instance left contributes
 * nothing (which is what makes over-signing work). `skip` is the signature
 * field itself, which never signs itself this way.
 */
export function selectHeaders(fields: readonly RawField[], names: readonly string[], skip?: RawField): RawField[] {
  const used = new Set<RawField>(skip === undefined ? [] : [skip]);
  const out: RawField[] = [];
  for (const name of names) {
    for (let i = fields.length - 1; i >= 0; i--) {
      const f = fields[i];
      if (f === undefined || used.has(f) || f.name.toLowerCase() !== name.toLowerCase()) continue;
      used.add(f);
      out.push(f);
      break;
    }
  }
  return out;
}

/**
 * RFC 6376 §3.5 b=: the signature field with the value of b= (and the
 * whitespace around it) deleted. Works on the raw text so that simple
 * canonicalization sees every other byte unchanged; "bh=" is left alone.
 */
export function withoutB(raw: string): string {
  const colon = raw.indexOf(':');
  if (colon < 0) return raw;
  const specs = raw.slice(colon + 1).split(';');
  const out = specs.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq < 0 || spec.slice(0, eq).replace(/[ \t\r\n]+/g, '') !== 'b') return spec;
    const trailingCrlf = spec.endsWith('\r\n') ? '\r\n' : '';
    return spec.slice(0, eq + 1) + trailingCrlf;
  });
  return raw.slice(0, colon + 1) + out.join(';');
}

/** RFC 6376 §3.7: the octets the header hash covers (no CRLF after the signature field). */
export function headerHashInput(selected: readonly RawField[], sigRawWithoutB: string, canon: Canon): Buffer {
  const text = selected.map((f) => canonHeader(f.raw, canon)).join('') + canonHeader(sigRawWithoutB, canon).slice(0, -2);
  return Buffer.from(text, 'latin1');
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const OUT_SIZE = 8192;

/**
 * The body canonicalizer as a byte machine (RFC 6376 §3.4.3 simple,
 * §3.4.4 relaxed): canonical bytes go to `write` in chunks of up to 8 KiB.
 */
export class BodyCanonicalizer {
  private readonly out = Buffer.alloc(OUT_SIZE);
  private outLen = 0;
  /** CRLFs seen but not yet emitted: trailing empty lines are dropped. */
  private pendingLines = 0;
  /** Relaxed only: a WSP run not yet emitted (collapsed to one SP, dropped at line end). */
  private pendingWsp = false;
  private pendingCr = false;
  private content = false;
  private finished = false;

  constructor(
    private readonly canon: Canon,
    private readonly write: (chunk: Buffer) => void,
  ) {}

  push(chunk: Uint8Array): void {
    if (this.finished) return;
    for (let i = 0; i < chunk.length; i++) this.byte(chunk[i] ?? 0);
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.pendingCr) this.emitContent(CR);
    // A last line without CRLF gets one; an empty body is one CRLF in simple
    // (§3.4.3) and nothing in relaxed (§3.4.4, erratum 3192's reading).
    if (this.content || this.canon === 'simple') this.emitCrlf();
    this.flush();
  }

  private byte(b: number): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      if (b === LF) {
        this.pendingWsp = false; // §3.4.4: WSP at the end of a line is deleted
        this.pendingLines++;
        return;
      }
      this.emitContent(CR); // a bare CR is ordinary content
    }
    if (b === CR) this.pendingCr = true;
    else if (this.canon === 'relaxed' && (b === SP || b === TAB)) this.pendingWsp = true;
    else this.emitContent(b);
  }

  private emitContent(b: number): void {
    for (; this.pendingLines > 0; this.pendingLines--) this.emitCrlf();
    if (this.pendingWsp) {
      this.pendingWsp = false;
      this.emit(SP);
    }
    this.content = true;
    this.emit(b);
  }

  private emitCrlf(): void {
    this.emit(CR);
    this.emit(LF);
  }

  private emit(b: number): void {
    this.out[this.outLen++] = b;
    if (this.outLen === OUT_SIZE) this.flush();
  }

  private flush(): void {
    if (this.outLen > 0) this.write(Buffer.from(this.out.subarray(0, this.outLen)));
    this.outLen = 0;
  }
}

/** The digest of the first `limit` canonical octets, and the full canonical length. */
export interface BodyDigest {
  readonly hash: Buffer;
  readonly length: number;
}

/**
 * Streams a body into its DKIM body hash. `limit` is the l= count: only the
 * first `limit` canonicalized octets are hashed (RFC 6376 §3.5), while
 * `length` counts them all so a verifier can compare l= with it.
 */
export class BodyHasher {
  private readonly hash: Hash;
  private readonly canon: BodyCanonicalizer;
  private length = 0;
  private digest: Buffer | undefined;

  constructor(canon: Canon, hashName: HashName, private readonly limit?: number) {
    this.hash = createHash(hashName);
    this.canon = new BodyCanonicalizer(canon, (chunk) => this.take(chunk));
  }

  push(chunk: Uint8Array): void {
    this.canon.push(chunk);
  }

  end(): BodyDigest {
    this.canon.end();
    this.digest ??= this.hash.digest();
    return { hash: this.digest, length: this.length };
  }

  private take(chunk: Buffer): void {
    const room = this.limit === undefined ? chunk.length : Math.max(0, this.limit - this.length);
    if (room > 0) this.hash.update(room >= chunk.length ? chunk : chunk.subarray(0, room));
    this.length += chunk.length;
  }
}

/** Whole-buffer convenience over BodyHasher. */
export function bodyHash(body: Uint8Array, canon: Canon, hashName: HashName, limit?: number): BodyDigest {
  const h = new BodyHasher(canon, hashName, limit);
  h.push(body);
  return h.end();
}

/** The canonical body bytes (tests and debugging: this one does copy the body). */
export function canonBody(body: Uint8Array, canon: Canon): Buffer {
  const parts: Buffer[] = [];
  const c = new BodyCanonicalizer(canon, (chunk) => parts.push(chunk));
  c.push(body);
  c.end();
  return Buffer.concat(parts);
}
