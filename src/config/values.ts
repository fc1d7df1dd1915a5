/**
 * Value parsers and printers for petrel.conf: one per value type (domain,
 * host:port, CIDR, duration, size …). Each parser returns the typed value or
 * what it expected, so that the caller can say "expected X, found Y" with the
 * file and line.
 *
 * RFC 1035 §2.3.1 and RFC 1123 §2.1 (host names: letters, digits, hyphens,
 * labels of at most 63 octets, 253 in all), RFC 5321 §4.1.3 (address
 * literals), RFC 3986 §3.2.2 (an IPv6 host in brackets before ":port").
 */
import { resolve } from 'node:path';
import { checkCidr, formatCidr, parseIp, type Cidr } from '../policy/cidr';

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string; found?: string };

export interface Endpoint {
  /** Host name or IP address, IPv6 without brackets. */
  host: string;
  port: number;
}

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const bad = <T>(expected: string, found?: string): Parsed<T> => ({ ok: false, expected, found });

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** A DNS host name; one trailing dot (the root) is allowed and dropped. */
export function domainName(raw: string): Parsed<string> {
  const s = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (s.length === 0 || s.length > 253 || !s.split('.').every((l) => LABEL.test(l))) {
    return bad('a domain name such as mail.example.com');
  }
  return ok(s);
}

/** A domain for local_domains/relay_domains, lowercased; also an address
 *  literal such as [192.0.2.1] or [IPv6:2001:db8::1] (RFC 5321 §4.1.3). */
export function mailDomain(raw: string): Parsed<string> {
  const lit = /^\[(?:ipv6:(.+)|([0-9.]+))\]$/i.exec(raw);
  if (lit) {
    const ip = parseIp(lit[1] ?? lit[2] ?? '');
    const wanted = lit[1] !== undefined ? 6 : 4;
    return ip?.family === wanted ? ok(raw.toLowerCase()) : bad('a domain name or an address literal such as [192.0.2.1]');
  }
  const d = domainName(raw);
  return d.ok ? ok(d.value.toLowerCase()) : bad('a domain name or an address literal such as [192.0.2.1]');
}

export function port(raw: string, allowZero = false): Parsed<number> {
  const n = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (n >= (allowZero ? 0 : 1) && n <= 65535) return ok(n);
  return bad(allowZero ? 'a port number 0-65535 (0: any free port)' : 'a port number 1-65535');
}

interface HostPort {
  host: string;
  port: string | null;
  bracketed: boolean;
}

/** Splits "host", "host:port", "[host]" or "[host]:port"; null when malformed. */
export function splitHostPort(raw: string): HostPort | null {
  if (raw.startsWith('[')) {
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(raw);
    return m ? { host: m[1] ?? '', port: m[2] ?? null, bracketed: true } : null;
  }
  const colons = raw.split(':').length - 1;
  if (colons === 0) return { host: raw, port: null, bracketed: false };
  // A bare IPv6 address has several colons; with a port it must be bracketed.
  if (colons > 1) return parseIp(raw)?.family === 6 ? { host: raw, port: null, bracketed: false } : null;
  const i = raw.indexOf(':');
  return { host: raw.slice(0, i), port: raw.slice(i + 1), bracketed: false };
}

function hostOrIp(host: string, ipOnly: boolean): boolean {
  if (parseIp(host)) return true;
  return !ipOnly && !host.includes(':') && domainName(host).ok;
}

/** A listener: "127.0.0.1:2525", "[::1]:25", "0.0.0.0:25", "localhost:2525". */
export function listenEndpoint(raw: string): Parsed<Endpoint> {
  const expected = 'host:port such as 127.0.0.1:2525 or [::1]:25';
  const hp = splitHostPort(raw);
  if (!hp || hp.port === null || !hostOrIp(hp.host, false)) return bad(expected);
  const p = port(hp.port, true);
  return p.ok ? ok({ host: hp.host, port: p.value }) : bad(expected);
}

/** A resolver: "192.0.2.53", "192.0.2.53:5353", "::1" or "[::1]:5353" (port 53 by default). */
export function dnsServer(raw: string): Parsed<Endpoint> {
  const expected = 'an IP address with an optional port, such as 127.0.0.1:53 or [::1]:53';
  const hp = splitHostPort(raw);
  if (!hp || !parseIp(hp.host)) return bad(expected);
  const p = hp.port === null ? ok(53) : port(hp.port);
  return p.ok ? ok({ host: hp.host, port: p.value }) : bad(expected);
}

export interface RelayHost {
  host: string;
  port: number;
  /** Look up MX records for host; false for "[host]" (Postfix convention) and for IP addresses. */
  mx: boolean;
}

export function relayHost(raw: string): Parsed<RelayHost | null> {
  if (raw === '') return ok(null);
  const expected = '[host]:port, [host], host:port or host';
  const hp = splitHostPort(raw);
  if (!hp || !hostOrIp(hp.host, false)) return bad(expected);
  const p = hp.port === null ? ok(25) : port(hp.port);
  if (!p.ok) return bad(expected);
  return ok({ host: hp.host, port: p.value, mx: !hp.bracketed && parseIp(hp.host) === null });
}

/** outbound_tls (RFC 3207): the same four policies as the client's TlsPolicy. */
export type OutboundTls = 'may' | 'encrypt' | 'verify' | 'none';

/** Free text such as a user name; empty: not set. */
export function optionalText(raw: string): Parsed<string | null> {
  return ok(raw === '' ? null : raw);
}

/** Placeholder printed for a secret: check-config output ends up in bug reports and terminals. */
export const HIDDEN_SECRET = '(hidden)';

export function formatSecret(s: string | null): string {
  return s === null ? '' : HIDDEN_SECRET;
}

export function cidr(raw: string): Parsed<Cidr> {
  const r = checkCidr(raw);
  return 'cidr' in r ? ok(r.cidr) : bad(`a network such as 192.0.2.0/24, 2001:db8::/32 or a single address (${r.problem})`);
}

export function positiveInt(raw: string): Parsed<number> {
  const n = /^[1-9]\d*$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) ? ok(n) : bad('a positive integer');
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Bytes, with an optional K, M or G suffix (powers of 1024). */
export function size(raw: string): Parsed<number> {
  const m = /^([1-9]\d*)([kmg]?)$/i.exec(raw);
  const n = m ? Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  return Number.isSafeInteger(n) ? ok(n) : bad('a size in bytes, optionally with K, M or G (e.g. 25M)');
}

const DURATION_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds, with an optional s, m, h or d suffix; a bare number is seconds. */
export function duration(raw: string): Parsed<number> {
  const m = /^([1-9]\d*)([smhd]?)$/i.exec(raw);
  const n = m ? Number(m[1]) * (DURATION_UNITS[(m[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  return Number.isSafeInteger(n) ? ok(n) : bad('a duration such as 30s, 5m, 1h or 5d');
}

/** A whole number, 0 allowed (0 turns the limit it sets off). */
export function count(raw: string): Parsed<number> {
  const n = /^(0|[1-9]\d*)$/.test(raw) ? Number(raw) : NaN;
  return Number.isSafeInteger(n) ? ok(n) : bad('a whole number (0: no limit)');
}

/** A rate limit: events per period, such as 100/1m or 500/1h; 0 means no limit. */
export interface RateSetting {
  count: number;
  /** Seconds. */
  per: number;
}

export function rate(raw: string): Parsed<RateSetting> {
  const expected = 'a rate such as 100/1m or 500/1h (0: no limit)';
  if (raw === '0') return ok({ count: 0, per: 60 });
  const m = /^([1-9]\d*)\s*\/\s*(\S+)$/.exec(raw);
  const per = m ? duration(m[2] ?? '') : bad<number>(expected);
  return m && per.ok && Number.isSafeInteger(Number(m[1])) ? ok({ count: Number(m[1]), per: per.value }) : bad(expected);
}

export function formatRate(r: RateSetting): string {
  return r.count === 0 ? '0' : `${r.count}/${formatDuration(r.per)}`;
}

export function yesNo(raw: string): Parsed<boolean> {
  const v = raw.toLowerCase();
  if (v === 'yes' || v === 'true' || v === 'on') return ok(true);
  if (v === 'no' || v === 'false' || v === 'off') return ok(false);
  return bad('yes or no');
}

export function oneOf<T extends string>(choices: readonly T[]): (raw: string) => Parsed<T> {
  return (raw) => {
    const hit = choices.find((c) => c === raw.toLowerCase());
    return hit !== undefined ? ok(hit) : bad(`one of ${choices.join(', ')}`);
  };
}

/** A file or directory name; relative names are relative to the config file's directory. */
export function pathIn(baseDir: string): (raw: string) => Parsed<string> {
  return (raw) => (raw === '' ? bad('a path') : ok(resolve(baseDir, raw)));
}

export function optionalPathIn(baseDir: string): (raw: string) => Parsed<string | null> {
  return (raw) => (raw === '' ? ok(null) : ok(resolve(baseDir, raw)));
}

export interface CatchAll {
  domain: string;
  user: string;
}

const USER = /^[^\s:,@"]+$/;

export function catchAll(raw: string): Parsed<CatchAll> {
  const [d = '', user = '', ...rest] = raw.split(':');
  const dom = domainName(d);
  if (!dom.ok || !USER.test(user) || rest.length > 0) return bad('domain:user such as example.com:postmaster');
  return ok({ domain: dom.value.toLowerCase(), user });
}

/** local_transport: Maildirs written by Petrel, or an LMTP server (RFC 2033) over TCP or a Unix socket. */
export type LocalTransportSetting =
  | { kind: 'maildir' }
  | { kind: 'lmtp'; host: string; port: number }
  | { kind: 'lmtp-unix'; path: string };

export function localTransportIn(baseDir: string): (raw: string) => Parsed<LocalTransportSetting> {
  const expected = 'maildir, lmtp:host:port or lmtp:unix:/path';
  return (raw) => {
    if (raw.toLowerCase() === 'maildir') return ok({ kind: 'maildir' });
    if (!/^lmtp:/i.test(raw)) return bad(expected);
    const rest = raw.slice(5);
    if (/^unix:./i.test(rest)) return ok({ kind: 'lmtp-unix', path: resolve(baseDir, rest.slice(5)) });
    const hp = splitHostPort(rest);
    if (!hp || hp.port === null || !hostOrIp(hp.host, false)) return bad(expected);
    const p = port(hp.port);
    // RFC 2033 §5: LMTP MUST NOT be used on TCP port 25 (an SMTP server there would take it for SMTP).
    if (p.ok && p.value === 25) return bad('an LMTP port other than 25 (RFC 2033 §5)');
    return p.ok ? ok({ kind: 'lmtp', host: hp.host, port: p.value }) : bad(expected);
  };
}

export function formatLocalTransport(t: LocalTransportSetting): string {
  if (t.kind === 'maildir') return 'maildir';
  return t.kind === 'lmtp' ? `lmtp:${formatEndpoint(t)}` : `lmtp:unix:${t.path}`;
}

/** recipient_delimiter: characters that separate a user from a tag (user+tag@); empty turns plus-addressing off. */
export function recipientDelimiter(raw: string): Parsed<string> {
  return /^[^\s@"<>,:A-Za-z0-9]*$/.test(raw) ? ok(raw) : bad('characters such as + or +- (no letters, digits, @ or spaces)');
}

export interface DkimSign {
  domain: string;
  selector: string;
  keyFile: string;
}

export function dkimSignIn(baseDir: string): (raw: string) => Parsed<DkimSign> {
  return (raw) => {
    const [d = '', selector = '', ...file] = raw.split(':');
    const keyFile = file.join(':');
    const dom = domainName(d);
    // RFC 6376 §3.1: a selector is one or more dot-separated labels.
    if (!dom.ok || !domainName(selector).ok || keyFile === '') {
      return bad('domain:selector:keyfile such as example.com:mail:dkim.key');
    }
    return ok({ domain: dom.value.toLowerCase(), selector, keyFile: resolve(baseDir, keyFile) });
  };
}

/** Comma-separated list, blanks around items ignored, empty value = empty list. */
export function listOf<T>(item: (raw: string) => Parsed<T>): (raw: string) => Parsed<T[]> {
  return (raw) => {
    if (raw.trim() === '') return ok([]);
    const out: T[] = [];
    for (const part of raw.split(',').map((s) => s.trim())) {
      if (part === '') return bad('a comma-separated list without empty items', raw);
      const r = item(part);
      if (!r.ok) return bad(r.expected, r.found ?? part);
      out.push(r.value);
    }
    return ok(out);
  };
}

/** Like listOf, but at least one item. */
export function nonEmptyListOf<T>(item: (raw: string) => Parsed<T>): (raw: string) => Parsed<T[]> {
  const list = listOf(item);
  return (raw) => {
    const r = list(raw);
    return r.ok && r.value.length === 0 ? bad('at least one item') : r;
  };
}

// ---- printers: the inverse of the parsers, for describeConfig ----

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export function formatRelayHost(r: RelayHost | null): string {
  if (r === null) return '';
  return r.mx && !r.host.includes(':') ? `${r.host}:${r.port}` : `[${r.host}]:${r.port}`;
}

/** The largest unit that divides the value exactly: 86400 → "1d", 90 → "90s". */
export function formatDuration(seconds: number): string {
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (seconds % n === 0) return `${seconds / n}${unit}`;
  }
  return `${seconds}s`;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

export { formatCidr };
