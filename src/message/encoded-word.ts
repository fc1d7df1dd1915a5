/**
 * RFC 2047 encoded words ("=?charset?B|Q?text?=") in unstructured fields
 * (Subject) and in phrases (display names). Pure; never throws.
 *
 * RFC 2047 §2: the syntax; §4.1 B (base64) and §4.2 Q ("_" is a space,
 *   "=XX" a byte); §5: an encoded word stands alone between whitespace, in
 *   unstructured text or as a word of a phrase.
 * RFC 2047 §6.2: whitespace between two adjacent encoded words is dropped.
 *   Adjacent words in one charset are joined as bytes before decoding,
 *   because mailers split multi-byte characters across words.
 * RFC 2231 §5: "charset*language" — the language is dropped.
 * Charsets are whatever TextDecoder knows (utf-8, iso-8859-*, windows-125x,
 * koi8-r, gb18030, shift_jis ...) plus UTF-7 (RFC 2152), which it does not.
 * An unknown charset or malformed text keeps the encoded word as written and
 * adds a defect, so nothing the sender wrote is lost.
 */
import type { DefectList } from './header';

/** A word with the whitespace written before it; `encodable` false for text that is never decoded. */
export interface Piece {
  readonly ws: string;
  readonly text: string;
  readonly encodable: boolean;
}

interface Encoded {
  readonly charset: string;
  readonly bytes: Buffer;
  readonly raw: string;
}

const WORD = /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=/y;

/** Unstructured text (RFC 5322 §3.2.5) with its encoded words decoded. */
export function decodeUnstructured(text: string, defects: DefectList, field?: string): string {
  if (!text.includes('=?')) return text;
  const pieces: Piece[] = [];
  const re = /([ \t]*)([^ \t]+)/g;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    pieces.push({ ws: m[1] ?? '', text: m[2] ?? '', encodable: true });
    end = re.lastIndex;
  }
  return decodePieces(pieces, defects, field) + text.slice(end);
}

/** Joins words, decoding the encodable ones that are encoded words and dropping whitespace between two of them. */
export function decodePieces(pieces: readonly Piece[], defects: DefectList, field?: string): string {
  let out = '';
  let run: Encoded[] = [];
  const flush = (): void => {
    out += decodeRun(run, defects, field);
    run = [];
  };
  for (const p of pieces) {
    const words = p.encodable ? splitEncoded(p.text) : null;
    if (!words) {
      flush();
      out += p.ws + p.text;
      continue;
    }
    if (run.length === 0) out += p.ws;
    run.push(...words);
  }
  flush();
  return out;
}

/** The encoded words a whole token consists of (several may be written without spaces), or null. */
export function splitEncoded(token: string): Encoded[] | null {
  const words: Encoded[] = [];
  let at = 0;
  while (at < token.length) {
    WORD.lastIndex = at;
    const m = WORD.exec(token);
    if (!m) return null;
    const [raw, charset = '', enc = '', payload = ''] = m;
    const bytes = enc === 'b' || enc === 'B' ? base64(payload) : qDecode(payload);
    if (!bytes) return null;
    words.push({ charset: charset.toLowerCase(), bytes, raw });
    at = WORD.lastIndex;
  }
  return words.length > 0 ? words : null;
}

/** Adjacent words in one charset are decoded together; a charset change starts a new group. */
function decodeRun(run: readonly Encoded[], defects: DefectList, field?: string): string {
  let out = '';
  for (let i = 0; i < run.length; ) {
    let j = i + 1;
    while (j < run.length && run[j]?.charset === run[i]?.charset) j++;
    const group = run.slice(i, j);
    out += decodeGroup(group, defects, field);
    i = j;
  }
  return out;
}

function decodeGroup(group: readonly Encoded[], defects: DefectList, field?: string): string {
  const charset = group[0]?.charset ?? '';
  const bytes = Buffer.concat(group.map((w) => w.bytes));
  const text = decodeCharset(charset, bytes);
  if (text === null) {
    defects.add('unknown-charset', `encoded word in unknown charset "${charset.slice(0, 40)}"; kept as written`, field);
    return group.map((w) => w.raw).join('');
  }
  if (text.includes('\ufffd') && !bytes.includes(Buffer.from('\ufffd'))) {
    defects.add('bad-encoded-text', `bytes that are not valid ${charset}; replaced with U+FFFD`, field);
  }
  return text;
}

interface Decoder {
  decode(bytes: Uint8Array): string;
}

const decoders = new Map<string, Decoder | null>();

/** Bytes in a MIME charset to text, or null if the charset is unknown. */
export function decodeCharset(charset: string, bytes: Buffer): string | null {
  const name = charset.toLowerCase();
  if (name === 'utf-7' || name === 'unicode-1-1-utf-7') return utf7(bytes.toString('latin1'));
  let d = decoders.get(name);
  if (d === undefined) {
    d = makeDecoder(name);
    if (decoders.size < 64) decoders.set(name, d);
  }
  return d ? d.decode(bytes) : null;
}

function makeDecoder(name: string): Decoder | null {
  try {
    // WHATWG maps us-ascii and iso-8859-1 to windows-1252, a superset: right for mail too
    const d = new TextDecoder(name);
    return d.encoding === 'windows-1252' ? { decode: windows1252 } : d;
  } catch {
    return null;
  }
}

/** 0x80-0x9F of windows-1252 (Node 20's TextDecoder decodes them as Latin-1 C1 controls). */
const CP1252_HIGH = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

function windows1252(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b >= 0x80 && b <= 0x9f ? CP1252_HIGH[b - 0x80] : String.fromCharCode(b);
  return out;
}

/** RFC 2047 §4.1; null if the text has a character outside the base64 alphabet. */
function base64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  return Buffer.from(text, 'base64');
}

/** RFC 2047 §4.2: "_" is 0x20, "=XX" a byte; null for a malformed "=". */
function qDecode(text: string): Buffer | null {
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f) out[n++] = 0x20;
    else if (c !== 0x3d) out[n++] = c & 0xff;
    else {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
      out[n++] = Number.parseInt(hex, 16);
      i += 2;
    }
  }
  return out.subarray(0, n);
}

/**
 * RFC 2152 UTF-7: "+" starts modified base64 of UTF-16BE, ended by "-"
 * (absorbed) or any character outside the alphabet; "+-" is "+".
 */
export function utf7(text: string): string {
  return text.replace(/\+([A-Za-z0-9+/]*)-?/g, (whole, b64: string) => {
    if (b64 === '') return whole === '+-' ? '+' : whole;
    const bytes = Buffer.from(b64, 'base64');
    const even = Buffer.from(bytes.subarray(0, bytes.length - (bytes.length % 2)));
    return even.swap16().toString('utf16le');
  });
}
