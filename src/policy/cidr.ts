/**
 * IP addresses and CIDR blocks, for trusted_networks and any other "is this
 * client one of ours" question. PURE: no node:net, so the relay decision can be
 * property-tested without sockets.
 *
 * RFC 4632 §3.1 (prefix notation), RFC 4291 §2.2 (IPv6 text forms, "::", an
 * embedded dotted quad), RFC 4291 §2.5.5.2 (IPv4-mapped IPv6 addresses),
 * RFC 5952 §4 (canonical IPv6 text, used when printing), RFC 4007 §11 (zone ids).
 */

export interface Cidr {
  readonly family: 4 | 6;
  /** Network address, 4 or 16 bytes, host bits zero. */
  readonly bytes: Uint8Array;
  /** Prefix length: 0–32 for IPv4, 0–128 for IPv6. */
  readonly prefix: number;
}

export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** Parses a dotted quad or an IPv6 address (a zone id such as %eth0 is dropped). */
export function parseIp(s: string): IpAddress | null {
  if (s.includes(':')) {
    const bytes = parseIPv6(s);
    return bytes ? { family: 6, bytes } : null;
  }
  const bytes = parseIPv4(s);
  return bytes ? { family: 4, bytes } : null;
}

function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    // Leading zeros are refused: inet_aton reads "010" as octal 8, so "010.0.0.1"
    // would mean different networks to different tools.
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIPv6(input: string): Uint8Array | null {
  const s = input.replace(/%[^%]*$/, '');
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (head === null || tail === null) return null;
  const total = head.length + tail.length;
  // "::" stands for one or more zero groups (RFC 4291 §2.2 item 2).
  if (halves.length === 2 ? total > 7 : total !== 8) return null;
  const words = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Colon-separated 16-bit groups; the last may be a dotted quad (two groups). */
function groups(s: string): number[] | null {
  if (s === '') return [];
  const parts = s.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] ?? '';
    if (i === parts.length - 1 && p.includes('.')) {
      const v4 = parseIPv4(p);
      if (!v4) return null;
      out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** True for ::ffff:a.b.c.d, which a dual-stack socket reports for an IPv4 client. */
function isMapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function mapToV6(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/** Parses "192.0.2.0/24", "2001:db8::/32" or a bare address (/32 or /128);
 *  the reason for a refusal is the `problem` string. */
export function checkCidr(input: string): { cidr: Cidr } | { problem: string } {
  const s = input.trim();
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!ip) return { problem: 'not an IPv4 or IPv6 address' };
  const bits = ip.family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(bits) : s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    return { problem: `prefix length must be 0 to ${bits}` };
  }
  const prefix = Number(prefixText);
  // Host bits set ("192.168.1.7/16") usually mean a typo in the prefix; silently
  // masking would trust a network far larger than the operator intended.
  if (!sameBits(ip.bytes, masked(ip.bytes, prefix), ip.bytes.length * 8)) {
    return { problem: 'host bits are set after the prefix' };
  }
  if (ip.family === 6 && isMapped(ip.bytes) && prefix >= 96) {
    return { cidr: { family: 4, bytes: ip.bytes.slice(12), prefix: prefix - 96 } };
  }
  return { cidr: { family: ip.family, bytes: ip.bytes, prefix } };
}

export function parseCidr(s: string): Cidr | null {
  const r = checkCidr(s);
  return 'cidr' in r ? r.cidr : null;
}

function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** Compares the first `prefix` bits of two equally long byte strings. */
function sameBits(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[whole] ?? 0) & mask) === ((b[whole] ?? 0) & mask);
}

/** An IPv4 address and an IPv4-mapped IPv6 address are the same host: both
 *  match IPv4 blocks, and both match an IPv6 block that covers ::ffff:a.b.c.d. */
export function cidrContains(c: Cidr, ip: string): boolean {
  const addr = parseIp(ip);
  if (!addr) return false;
  let bytes = addr.bytes;
  if (c.family === 4 && addr.family === 6) {
    if (!isMapped(bytes)) return false;
    bytes = bytes.slice(12);
  } else if (c.family === 6 && addr.family === 4) {
    bytes = mapToV6(bytes);
  }
  return sameBits(bytes, c.bytes, c.prefix);
}

export function inNetworks(ip: string, nets: readonly Cidr[]): boolean {
  return nets.some((c) => cidrContains(c, ip));
}

/** "192.0.2.0/24", "2001:db8::/32" (RFC 5952 form); a single host keeps its prefix. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.prefix}`;
}

export function formatIp(a: IpAddress): string {
  if (a.family === 4) return Array.from(a.bytes).join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((a.bytes[i] ?? 0) << 8) | (a.bytes[i + 1] ?? 0));
  const [start, len] = longestZeroRun(words);
  const hex = words.map((w) => w.toString(16));
  // RFC 5952 §4.2.2: "::" never replaces a single zero group.
  if (len < 2) return hex.join(':');
  return `${hex.slice(0, start).join(':')}::${hex.slice(start + len).join(':')}`;
}

/** First longest run of zero words (RFC 5952 §4.2.3): [start, length]. */
function longestZeroRun(words: number[]): [number, number] {
  let best: [number, number] = [0, 0];
  let runStart = -1;
  for (let i = 0; i <= words.length; i++) {
    if (i < words.length && words[i] === 0) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart > best[1]) best = [runStart, i - runStart];
      runStart = -1;
    }
  }
  return best;
}
