/**
 * A bounded cache of delivery routes that honours DNS TTLs (RFC 1035 §3.2.1,
 * RFC 2181 §8) and caches negative answers briefly (RFC 2308).
 *
 * node:dns reports TTLs for A and AAAA ({ ttl: true }) but not for MX, so a
 * route's lifetime follows these documented rules:
 * - a route to hosts lives as long as the shortest TTL among the addresses
 *   in it (the MX set itself is assumed to change no faster than its
 *   targets' addresses), floored at MIN_TTL_S and capped at MAX_TTL_S;
 * - NXDOMAIN and "no address anywhere" live NEGATIVE_TTL_S: RFC 2308 §5 would
 *   use the SOA minimum, which node:dns does not expose, so a short fixed
 *   time keeps a typo'd domain from costing a lookup per message without
 *   keeping a freshly created domain unreachable for long;
 * - a null MX (RFC 7505) has no addresses to take a TTL from and lives
 *   NULL_MX_TTL_S;
 * - temporary failures are never cached: the next attempt asks again.
 *
 * Size is bounded (least recently used entry evicted) so a flood of mail to
 * distinct domains cannot grow memory without limit. The clock is injected.
 */
import { assertNever } from '../smtp/assert-never';
import type { Route } from './mx';

export const MIN_TTL_S = 5;
export const MAX_TTL_S = 3600;
export const NEGATIVE_TTL_S = 60;
export const NULL_MX_TTL_S = 300;
export const DEFAULT_MAX_ENTRIES = 1000;

/** Milliseconds since any fixed origin (Date.now by default). */
export type Clock = () => number;

interface Entry<V> {
  readonly value: V;
  readonly expires: number;
}

/** LRU map whose entries also expire; Map keeps insertion order, so the first key is the least recent. */
export class TtlCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly maxEntries: number;
  private readonly now: Clock;

  constructor(opts: { maxEntries?: number; now?: Clock } = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (e.expires <= this.now()) return undefined;
    this.entries.set(key, e);
    return e.value;
  }

  /** A TTL of 0 or less stores nothing. */
  set(key: string, value: V, ttlSeconds: number): void {
    this.entries.delete(key);
    if (!(ttlSeconds > 0)) return;
    this.entries.set(key, { value, expires: this.now() + ttlSeconds * 1000 });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Seconds to keep `route`; `addressTtls` are the TTLs of the A/AAAA records it was built from. */
export function routeTtl(route: Route, addressTtls: readonly number[]): number {
  switch (route.kind) {
    case 'hosts': {
      const shortest = addressTtls.length > 0 ? Math.min(...addressTtls) : MIN_TTL_S;
      return Math.min(MAX_TTL_S, Math.max(MIN_TTL_S, shortest));
    }
    case 'null-mx':
      return NULL_MX_TTL_S;
    case 'no-such-domain':
    case 'unroutable':
      return NEGATIVE_TTL_S;
    case 'temporary':
      return 0;
    default:
      return assertNever(route);
  }
}
