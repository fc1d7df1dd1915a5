/**
 * Streaming push parser of an RFC 5322 header section: push bytes in any
 * chunking, get the header fields in order, unfolded. Pure and bounded; it
 * never throws on input, it reports defects.
 *
 * RFC 5322 §2.2: a field is a name, a colon and a body; §2.2.3: a body is
 *   unfolded by removing each CRLF that is followed by WSP, nothing else.
 * RFC 5322 §2.1: the header section ends at the first empty line.
 * RFC 5322 §3.6.8: field-name = 1*ftext (printable US-ASCII except ":").
 * RFC 5322 §4.5 (obs-optional and friends): WSP between name and colon.
 * RFC 5322 §2.1.1: lines are at most 998 octets (longer ones: a defect).
 * RFC 6532 §3.2: 8-bit field bodies are UTF-8; anything else is decoded as
 *   Latin-1 so that no byte is lost, and reported.
 * A bare LF is taken as a line end (files on disk are often LF-only); a
 * bare CR is not a line end and is kept, with a defect.
 *
 * Bounds: the section is at most `maxBytes` and `maxFields`; past either,
 * fields stop being stored (a defect says so) and the parser only scans,
 * in constant memory, for the empty line that ends the section.
 */
import { assertNever } from '../smtp/assert-never';

/** One problem found in the input; parsing went on. */
export interface Defect {
  readonly code: string;
  /** The field it was found in, if any. */
  readonly field?: string;
  readonly detail: string;
}

export interface HeaderField {
  /** As written, minus WSP before the colon (obs syntax). */
  readonly name: string;
  /** Unfolded (line ends before WSP removed), leading WSP after the colon removed. */
  readonly value: string;
  /** Absolute byte offsets: the field's first byte, and just past its last line end. */
  readonly start: number;
  readonly end: number;
}

export interface HeaderLimits {
  readonly maxBytes: number;
  readonly maxFields: number;
}

/** 1 MiB: far above any real header section (Postfix's header_size_limit is 100 KiB per field). */
export const MAX_HEADER_BYTES = 1024 * 1024;
/** A header with more fields than this is an attack, not mail. */
export const MAX_HEADER_FIELDS = 10_000;
/** Defects kept per parse; one more says that others were dropped. */
export const MAX_DEFECTS = 100;
/** RFC 5322 §2.1.1: MUST be no more than 998 characters, excluding the CRLF. */
export const MAX_LINE = 998;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const COLON = 0x3a;

type State =
  | 'lineStart' // at a line's first byte: WSP continues the field, CR/LF may end the section, else a new field
  | 'startCr' // the line so far is one CR: LF makes it the empty line
  | 'inLine' // inside a line, storing it
  | 'lineCr' // a CR inside a line: LF ends the line, anything else makes it a bare CR
  | 'body'; // the section has ended: nothing more is read

/** Collects defects up to MAX_DEFECTS. */
export class DefectList {
  readonly items: Defect[] = [];
  private dropped = false;

  add(code: string, detail: string, field?: string): void {
    if (this.items.length < MAX_DEFECTS) this.items.push(field === undefined ? { code, detail } : { code, field, detail });
    else if (!this.dropped) {
      this.dropped = true;
      this.items.push({ code: 'too-many-defects', detail: `more than ${MAX_DEFECTS} defects; the rest are not listed` });
    }
  }
}

/** A byte buffer that grows by doubling; the bound on stored bytes caps it at twice that bound. */
class ByteBuf {
  bytes = Buffer.alloc(256);
  length = 0;

  push(b: number): void {
    if (this.length === this.bytes.length) {
      const next = Buffer.alloc(this.bytes.length * 2);
      this.bytes.copy(next, 0, 0, this.length);
      this.bytes = next;
    }
    this.bytes[this.length++] = b;
  }

  view(): Buffer {
    return this.bytes.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
    if (this.bytes.length > 64 * 1024) this.bytes = Buffer.alloc(256); // give back what a huge field took
  }
}

export class HeaderParser {
  readonly defects = new DefectList();
  private state: State = 'lineStart';
  private readonly field = new ByteBuf();
  /** The stored field's first line has ended and was checked to be "name:". */
  private named = false;
  private fieldStart = 0;
  private lineLength = 0;
  private offset = 0;
  private sectionBytes = 0;
  private fieldCount = 0;
  /** The current line is not stored: it is over a bound, or a stray continuation. */
  private skipping = false;
  private flags = { bareCr: false, nul: false, long: false };
  private out: HeaderField[] = [];
  private bodyAt = -1;
  /** Bytes already consumed that belong to the body (a non-field line that ended the section). */
  bodyPrefix: Buffer = Buffer.alloc(0);

  constructor(private readonly limits: HeaderLimits = { maxBytes: MAX_HEADER_BYTES, maxFields: MAX_HEADER_FIELDS }) {}

  /** True once the header section has ended. */
  get done(): boolean {
    return this.state === 'body';
  }

  /** Absolute offset of the first body byte, or -1 before the section ends. */
  get bodyOffset(): number {
    return this.bodyAt;
  }

  /** Feeds the next bytes; returns the fields they completed. Bytes after the section are not read. */
  push(chunk: Uint8Array): HeaderField[] {
    for (let i = 0; i < chunk.length && this.state !== 'body'; i++) this.step(chunk[i] as number);
    return this.take();
  }

  /** The input ended: completes the last field. A section without an empty line is legal (no body). */
  end(): HeaderField[] {
    switch (this.state) {
      case 'body':
        return this.take();
      case 'startCr': // a last line that is one bare CR
        this.defects.add('bare-cr', 'a CR not followed by LF at the end of the input');
        this.endSection(this.offset - 1);
        return this.take();
      case 'lineCr':
        this.bareCr();
        break;
      case 'inLine':
      case 'lineStart':
        break;
      default:
        assertNever(this.state);
    }
    if (!this.skipping && !this.named && this.field.length > 0) this.checkFirstLine();
    if ((this.state as State) !== 'body') this.endSection(this.offset); // checkFirstLine may have ended it
    return this.take();
  }

  private take(): HeaderField[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private step(b: number): void {
    this.offset++;
    switch (this.state) {
      case 'lineStart':
        return this.atLineStart(b);
      case 'startCr':
        if (b === LF) return this.endSection(this.offset);
        this.state = 'inLine';
        this.bareCr();
        return this.inLine(b);
      case 'inLine':
        return this.inLine(b);
      case 'lineCr':
        if (b === LF) return this.lineEnded();
        this.state = 'inLine';
        this.bareCr();
        return this.inLine(b);
      case 'body':
        return;
      default:
        return assertNever(this.state);
    }
  }

  /** RFC 5322 §2.2.3: a line led by WSP continues the field; any other line ends it. */
  private atLineStart(b: number): void {
    this.lineLength = 0;
    if (b === SP || b === TAB) {
      if (this.field.length === 0 && !this.skipping) {
        this.defects.add('leading-continuation', 'a folded line with no field before it; ignored');
        this.skipping = true;
      }
    } else {
      this.finishField();
      this.fieldStart = this.offset - 1;
      if (b === LF) return this.endSection(this.offset);
      if (b === CR) {
        this.state = 'startCr';
        return;
      }
    }
    this.state = 'inLine';
    this.inLine(b);
  }

  private inLine(b: number): void {
    if (b === CR) {
      this.state = 'lineCr';
      return;
    }
    if (b === LF) return this.lineEnded();
    if (b === 0) this.flags.nul = true;
    if (++this.lineLength === MAX_LINE + 1) this.flags.long = true;
    this.store(b);
  }

  /** A CR not followed by LF is content (RFC 5322 §2.2 allows neither alone); kept, reported. */
  private bareCr(): void {
    this.flags.bareCr = true;
    this.store(CR);
  }

  private lineEnded(): void {
    if (this.state === 'lineCr') this.store(CR);
    this.store(LF);
    this.state = 'lineStart';
    if (!this.skipping && !this.named) this.checkFirstLine();
  }

  private store(b: number): void {
    if (this.skipping) return;
    if (++this.sectionBytes > this.limits.maxBytes) {
      this.defects.add('header-too-large', `header section over ${this.limits.maxBytes} bytes; the rest of it is not parsed`);
      this.resetField();
      this.skipping = true;
      return;
    }
    this.field.push(b);
  }

  /**
   * The first line of a field has ended: is it "name:"? An mbox "From " line
   * at the very start is skipped; any other line that is not a field ends the
   * section and starts the body (what Python's email calls a missing separator).
   */
  private checkFirstLine(): void {
    const raw = this.field.view();
    if (nameEnd(raw) >= 0) {
      this.named = true;
      return;
    }
    if (this.fieldStart === 0 && startsWith(raw, 'From ')) {
      this.defects.add('mbox-from-line', 'an mbox "From " line before the header section; skipped');
      this.resetField();
      return;
    }
    this.defects.add('missing-separator', 'a line that is not a header field ended the header section; the body starts with it');
    this.bodyPrefix = Buffer.from(raw);
    this.resetField();
    this.state = 'body';
    this.bodyAt = this.fieldStart;
  }

  private resetField(): void {
    this.field.clear();
    this.named = false;
    this.flags = { bareCr: false, nul: false, long: false };
  }

  /** At the start of the next field (or the section's end): the stored field is complete. */
  private finishField(): void {
    if (this.skipping) {
      this.skipping = this.sectionBytes > this.limits.maxBytes || this.fieldCount >= this.limits.maxFields;
      this.resetField();
      return;
    }
    if (this.field.length === 0) return;
    const field = buildField(this.field.view(), this.fieldStart, this.defects);
    if (field) {
      this.reportFlags(field.name);
      this.out.push(field);
    }
    this.fieldCount++;
    this.resetField();
    if (this.fieldCount >= this.limits.maxFields) {
      this.defects.add('too-many-fields', `only the first ${this.limits.maxFields} header fields are parsed`);
      this.skipping = true;
    }
  }

  private reportFlags(name: string): void {
    const f = this.flags;
    if (f.bareCr) this.defects.add('bare-cr', 'a CR not followed by LF (kept in the value)', name);
    if (f.nul) this.defects.add('nul', 'a NUL byte in the field', name);
    if (f.long) this.defects.add('line-too-long', `a line longer than ${MAX_LINE} octets (RFC 5322 §2.1.1)`, name);
  }

  private endSection(at: number): void {
    this.finishField();
    this.state = 'body';
    this.bodyAt = at;
  }
}

/** Index of the colon after `name *WSP`, or -1 if the line does not start a field. */
export function nameEnd(raw: Uint8Array): number {
  let i = 0;
  while (i < raw.length && isFtext(raw[i] as number)) i++;
  if (i === 0) return -1;
  let j = i;
  while (j < raw.length && (raw[j] === SP || raw[j] === TAB)) j++;
  return raw[j] === COLON ? j : -1;
}

/** RFC 5322 §3.6.8: ftext = %d33-57 / %d59-126. */
function isFtext(b: number): boolean {
  return b >= 33 && b <= 126 && b !== COLON;
}

function startsWith(raw: Uint8Array, prefix: string): boolean {
  for (let i = 0; i < prefix.length; i++) if (raw[i] !== prefix.charCodeAt(i)) return false;
  return true;
}

function buildField(raw: Buffer, start: number, defects: DefectList): HeaderField | null {
  const colon = nameEnd(raw);
  if (colon < 0) return null;
  let n = colon;
  while (n > 0 && (raw[n - 1] === SP || raw[n - 1] === TAB)) n--;
  const name = raw.toString('latin1', 0, n);
  const body = unfold(raw.subarray(colon + 1));
  let from = 0;
  while (from < body.length && (body[from] === SP || body[from] === TAB)) from++;
  return { name, value: decodeText(body.subarray(from), defects, name), start, end: start + raw.length };
}

/** RFC 5322 §2.2.3: removes every line end (CRLF, or a bare LF) that is followed by WSP, and the final one. */
export function unfold(raw: Uint8Array): Buffer {
  const out = Buffer.alloc(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    const crlf = b === CR && raw[i + 1] === LF;
    const lineEnd = crlf || b === LF;
    if (lineEnd) {
      const next = raw[crlf ? i + 2 : i + 1];
      if (next === undefined || next === SP || next === TAB) {
        if (crlf) i++;
        continue;
      }
    }
    out[n++] = b;
  }
  return out.subarray(0, n);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** RFC 6532: UTF-8 if the bytes are UTF-8, else Latin-1 (every byte kept) with a defect. */
export function decodeText(bytes: Uint8Array, defects: DefectList, field?: string): string {
  let ascii = true;
  for (const b of bytes) if (b >= 0x80) ascii = false;
  if (ascii) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  try {
    return utf8.decode(bytes);
  } catch {
    defects.add('non-utf8-header', '8-bit bytes that are not UTF-8 (RFC 6532); read as Latin-1', field);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  }
}

/** Parses a whole header section held in memory. */
export function parseHeader(bytes: Uint8Array, limits?: HeaderLimits): { fields: HeaderField[]; defects: Defect[]; bodyOffset: number } {
  const p = new HeaderParser(limits);
  const fields = [...p.push(bytes), ...p.end()];
  return { fields, defects: p.defects.items, bodyOffset: p.bodyOffset };
}
