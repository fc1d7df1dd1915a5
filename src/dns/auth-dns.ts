/**
 * The DNS lookups of sender authentication (SPF, DKIM, DMARC) over node:dns:
 * TXT, A, AAAA, MX and PTR, each mapped onto the answer shape the pure cores
 * take (SpfDns of src/auth/spf/check-host.ts, KeyAnswer of
 * src/auth/dkim/verify.ts).
 *
 * - Outcomes: ENOTFOUND (NXDOMAIN) → nxdomain, ENODATA (the name exists
 *   without records of the type) → nodata, EBADNAME → nxdomain (no such name
 *   can exist); SERVFAIL, REFUSED, timeouts and anything unexpected → temp,
 *   which the cores turn into temperror (RFC 7208 §2.6.6, RFC 6376 §6.1.2).
 * - TXT: each record's character-strings are joined with nothing between
 *   them (RFC 7208 §3.3, RFC 6376 §3.6.2.2). A hostile zone can answer with
 *   thousands of records: the first MAX_TXT_RECORDS are kept and a record
 *   longer than MAX_TXT_LENGTH once joined is dropped, not cut, since a cut
 *   record could read as a different, valid one.
 * - DKIM keys (RFC 6376 §3.6.2.2, "the verifier may choose"): one record is
 *   the key; of several, the first whose tag list has a p= tag, else the
 *   first (so the verifier reports why it is not a key). NXDOMAIN and NODATA
 *   are "no key" (null).
 * - Names: IDNA to A-labels (RFC 5890) only when non-ASCII (the WHATWG
 *   parser would also read "0x7f.1" as an IPv4 address and decode %41),
 *   lowercased, one root dot dropped. A name over 253 octets, with an empty
 *   or over-63-octet label, a control character, a space or a backslash
 *   (c-ares reads "\." as an escape, which would let a macro-expanded SPF
 *   name change its own label structure) is answered nxdomain, never asked.
 * - Every query is abandoned after timeoutMs × 2^tries, as in ./resolver,
 *   so a silent server costs bounded time; no method ever rejects.
 * - Answers other than temp are cached for cacheTtlS (node:dns gives no TTL
 *   for TXT, MX or PTR, and RFC 2308 negative TTLs are not exposed), in a
 *   bounded LRU; concurrent asks for the same name and type share one query.
 */
import { promises as dns } from 'node:dns';
import { domainToASCII } from 'node:url';
import type { KeyAnswer } from '../auth/dkim/verify';
import { parseTagList } from '../auth/dkim/tag-list';
import type { DnsAnswer, DnsError, SpfDns } from '../auth/spf/check-host';
import { parseIp } from '../policy/cidr';
import { TtlCache, type Clock } from './cache';
import { DEFAULT_TIMEOUT_MS, DEFAULT_TRIES, formatServer, type DnsServer } from './resolver';

/** One string per TXT record, its character-strings joined. */
export type TxtAnswer = readonly string[] | DnsError;

export interface AuthDns extends SpfDns {
  /** The same as txtJoined (SpfDns accepts joined records). */
  txt(name: string): Promise<TxtAnswer>;
  txtJoined(name: string): Promise<TxtAnswer>;
  /** The key record text at `name` (<selector>._domainkey.<domain>), null for none, {error} for a temporary failure. */
  dkimKey(name: string): Promise<KeyAnswer>;
}

export interface AuthDnsOptions {
  /** Empty: the system's resolvers. */
  readonly servers: readonly DnsServer[];
  readonly timeoutMs?: number;
  readonly tries?: number;
  /** Lifetime of a cached answer, positive or negative; 0 turns caching off. */
  readonly cacheTtlS?: number;
  readonly maxEntries?: number;
  readonly now?: Clock;
}

export const MAX_TXT_RECORDS = 32;
export const MAX_TXT_LENGTH = 16 * 1024;
export const DEFAULT_AUTH_TTL_S = 60;
/** A DNS message is at most 64 KiB (RFC 1035 §4.2.2), so a hostile zone can pin at most ~64 MiB here. */
export const DEFAULT_AUTH_MAX_ENTRIES = 1000;

type Kind = 'txt' | 'a' | 'aaaa' | 'mx' | 'ptr';

const NXDOMAIN: DnsError = Object.freeze({ error: 'nxdomain' });
const NODATA: DnsError = Object.freeze({ error: 'nodata' });
const TEMP: DnsError = Object.freeze({ error: 'temp' });

/** Throws only on a malformed server list (the config validates it first). */
export function createAuthDns(opts: AuthDnsOptions): AuthDns {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const tries = opts.tries ?? DEFAULT_TRIES;
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries });
  if (opts.servers.length > 0) resolver.setServers(opts.servers.map(formatServer));
  const cache = new TtlCache<DnsAnswer<unknown>>({ maxEntries: opts.maxEntries ?? DEFAULT_AUTH_MAX_ENTRIES, now: opts.now });
  const q = new Queries(cache, opts.cacheTtlS ?? DEFAULT_AUTH_TTL_S, timeoutMs * 2 ** tries);
  const txt = (name: string): Promise<TxtAnswer> => q.run('txt', name, async (n) => boundTxt(await resolver.resolveTxt(n)));
  return {
    txt,
    txtJoined: txt,
    a: (name) => q.run('a', name, (n) => resolver.resolve4(n)),
    aaaa: (name) => q.run('aaaa', name, (n) => resolver.resolve6(n)),
    mx: (name) => q.run('mx', name, (n) => resolver.resolveMx(n)),
    ptr: (ip) => {
      const rev = reverseName(ip);
      return rev === null ? Promise.resolve(NXDOMAIN) : q.run('ptr', rev, (n) => resolver.resolvePtr(n));
    },
    dkimKey: async (name) => pickKeyRecord(await txt(name)),
  };
}

/** Cache, shared in-flight queries and the per-query deadline. */
class Queries {
  private readonly inFlight = new Map<string, Promise<DnsAnswer<unknown>>>();

  constructor(
    private readonly cache: TtlCache<DnsAnswer<unknown>>,
    private readonly ttlS: number,
    private readonly deadlineMs: number,
  ) {}

  /** `query` gets the normalized name; the key's kind fixes T, so a hit has the type it was stored with. */
  run<T>(kind: Kind, raw: string, query: (name: string) => Promise<readonly T[]>): Promise<DnsAnswer<T>> {
    const name = queryName(raw);
    if (name === null) return Promise.resolve(NXDOMAIN);
    const key = `${kind} ${name}`;
    const hit = this.cache.get(key) as DnsAnswer<T> | undefined;
    if (hit !== undefined) return Promise.resolve(hit);
    const pending = this.inFlight.get(key) as Promise<DnsAnswer<T>> | undefined;
    if (pending) return pending;
    const p = this.ask(() => query(name))
      .then((answer) => {
        if (answer !== TEMP) this.cache.set(key, answer, this.ttlS);
        return answer;
      })
      .catch((): DnsAnswer<T> => TEMP)
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  /** One query, its error mapped, temp if it outlives the deadline. */
  private async ask<T>(query: () => Promise<readonly T[]>): Promise<DnsAnswer<T>> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<DnsAnswer<T>>((resolve) => {
      timer = setTimeout(() => resolve(TEMP), this.deadlineMs);
    });
    const answer = Promise.resolve()
      .then(query)
      .then(
        (value): DnsAnswer<T> => value,
        (e: unknown): DnsAnswer<T> => errorAnswer(e),
      );
    try {
      return await Promise.race([answer, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function errorAnswer(e: unknown): DnsError {
  const code = (e as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOTFOUND':
    case 'EBADNAME':
      return NXDOMAIN;
    case 'ENODATA':
      return NODATA;
    default:
      return TEMP;
  }
}

export function isDnsError<T>(answer: DnsAnswer<T>): answer is DnsError {
  return !Array.isArray(answer);
}

/** The first MAX_TXT_RECORDS records, joined; over-long ones dropped (measured before joining). */
function boundTxt(records: readonly (readonly string[])[]): string[] {
  return records
    .slice(0, MAX_TXT_RECORDS)
    .filter((chunks) => chunks.reduce((n, c) => n + c.length, 0) <= MAX_TXT_LENGTH)
    .map((chunks) => chunks.join(''));
}

/** RFC 6376 §3.6.2.2: the record to use as the key when a selector has several TXT records. */
export function pickKeyRecord(answer: TxtAnswer): KeyAnswer {
  if (isDnsError(answer)) return answer.error === 'temp' ? { error: 'temp' } : null;
  if (answer.length <= 1) return answer[0] ?? null;
  const withKey = answer.find((text) => {
    const list = parseTagList(text);
    return list.ok && list.tags.has('p');
  });
  return withKey ?? answer[0] ?? null;
}

/** The name to ask for, or null when it is not a name DNS could hold (see the file comment). */
export function queryName(raw: string): string | null {
  // eslint-disable-next-line no-control-regex
  const ascii = /[^\x00-\x7f]/.test(raw) ? domainToASCII(raw) : raw;
  const name = ascii.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return null;
  if (!/^[\x21-\x7e]+$/.test(name) || name.includes('\\')) return null;
  return name.split('.').every((label) => label.length > 0 && label.length <= 63) ? name : null;
}

/** The in-addr.arpa (RFC 1035 §3.5) or ip6.arpa (RFC 3596 §2.5) name of an address; null if `ip` is not one. */
export function reverseName(ip: string): string | null {
  const addr = parseIp(ip);
  if (addr === null) return null;
  if (addr.family === 4) return `${[...addr.bytes].reverse().join('.')}.in-addr.arpa`;
  const nibbles = [...addr.bytes].flatMap((b) => [(b >> 4).toString(16), (b & 15).toString(16)]);
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}
