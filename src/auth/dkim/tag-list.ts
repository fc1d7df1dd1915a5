/**
 * DKIM tag=value lists (RFC 6376 §3.2), used by the DKIM-Signature field and
 * the DNS key record. Pure, bounded, never throws: a malformed list is a
 * value, so hostile input yields a permerror, not an exception.
 *
 * RFC 6376 §3.2: tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS];
 *   tag names are case-sensitive; duplicate tags make the whole list invalid;
 *   a trailing ";" is allowed. Values keep their inner whitespace (b= and p=
 *   callers strip it, RFC 6376 §3.5 "whitespace is ignored in this value").
 */

export type TagListResult =
  | { readonly ok: true; readonly tags: ReadonlyMap<string, string> }
  | { readonly ok: false; readonly reason: string };

/** A key record or signature with more tags than this is an attack; RFC 6376 defines 14. */
export const MAX_TAGS = 64;
/** Longer than any real signature (an 8192-bit b= is under 1,500 octets). */
export const MAX_TAG_LIST_LENGTH = 16 * 1024;

const TAG_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** FWS at either end of a value or name: SP, HTAB and folding line ends. */
const EDGE_FWS = /^[ \t\r\n]+|[ \t\r\n]+$/g;
/** RFC 6376 §3.2 tval is VALCHAR = %x21-3A / %x3C-7E; inner WSP/FWS allowed; 8-bit kept for z= (RFC 6376 §2.11 permits it via qp). */
const BAD_VALUE_CHAR = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

export function parseTagList(text: string): TagListResult {
  if (text.length > MAX_TAG_LIST_LENGTH) return { ok: false, reason: 'tag list too long' };
  const tags = new Map<string, string>();
  const specs = text.split(';');
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i] ?? '';
    if (spec.replace(EDGE_FWS, '') === '') {
      if (i === specs.length - 1 && i > 0) continue; // §3.2: the trailing ";" is optional
      return { ok: false, reason: 'empty tag-spec' };
    }
    const r = parseSpec(spec, tags);
    if (r !== undefined) return { ok: false, reason: r };
    if (tags.size > MAX_TAGS) return { ok: false, reason: 'too many tags' };
  }
  return { ok: true, tags };
}

/** Adds one tag-spec to `tags`; returns a reason when it is malformed. */
function parseSpec(spec: string, tags: Map<string, string>): string | undefined {
  const eq = spec.indexOf('=');
  if (eq < 0) return `tag-spec without "=": ${clip(spec)}`;
  const name = spec.slice(0, eq).replace(EDGE_FWS, '');
  if (!TAG_NAME.test(name)) return `bad tag name: ${clip(name)}`;
  if (tags.has(name)) return `duplicate tag ${name}`; // §3.2: duplicates MUST make the list invalid
  const value = spec.slice(eq + 1).replace(EDGE_FWS, '');
  if (BAD_VALUE_CHAR.test(value)) return `control character in tag ${name}`;
  tags.set(name, value);
  return undefined;
}

function clip(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s);
}

/** Removes all FWS from a base64 value (RFC 6376 §3.5 b=, bh=; §3.6.1 p=). */
export function stripFws(value: string): string {
  return value.replace(/[ \t\r\n]+/g, '');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 decode: returns undefined for anything Buffer.from would silently skip. */
export function decodeBase64(value: string): Buffer | undefined {
  const s = stripFws(value);
  if (!BASE64.test(s) || s.length % 4 === 1) return undefined;
  return Buffer.from(s, 'base64');
}

/** Colon-separated lists (h=, q=, key h= s= t=), each item trimmed of FWS. */
export function splitColonList(value: string): string[] {
  return value.split(':').map((v) => v.replace(EDGE_FWS, ''));
}
