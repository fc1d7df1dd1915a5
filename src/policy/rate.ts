/**
 * Rate limits over a sliding time window, PURE (the caller passes the clock):
 * failed AUTH attempts per client address (password guessing; RFC 4954
 * "Security Considerations" warns of it), connections per
 * client address and messages per authenticated user (a stolen password
 * must not turn into an unlimited spam cannon).
 *
 * The window is exact: a key is at its limit when `limit` events happened in
 * the last `windowMs`. Only the newest `limit` timestamps of a key are kept
 * (older ones cannot change the answer), and the number of keys is capped, so
 * memory stays bounded whatever a botnet does.
 */

export interface Rate {
  /** Events allowed per window; 0 means no limit. */
  readonly limit: number;
  readonly windowMs: number;
}

/** Keys kept before expired ones are swept (and, if still too many, the oldest dropped). */
export const MAX_KEYS = 50_000;

export class RateWindow {
  /** Per key, the newest event times (ms), oldest first, at most `limit` of them. */
  private readonly events = new Map<string, number[]>();

  constructor(
    readonly rate: Rate,
    private readonly maxKeys = MAX_KEYS,
  ) {}

  /** Events of `key` inside the window that ends at `now`. */
  count(key: string, now: number): number {
    const times = this.events.get(key);
    if (!times) return 0;
    const since = now - this.rate.windowMs;
    return times.filter((t) => t > since).length;
  }

  /** The key has used up its window (never true without a limit). */
  reached(key: string, now: number): boolean {
    return this.rate.limit > 0 && this.count(key, now) >= this.rate.limit;
  }

  /** Records an event whatever the count (failed logins keep counting); returns the count in the window. */
  record(key: string, now: number): number {
    if (this.rate.limit === 0) return 0;
    const since = now - this.rate.windowMs;
    const times = (this.events.get(key) ?? []).filter((t) => t > since);
    times.push(now);
    if (times.length > this.rate.limit) times.splice(0, times.length - this.rate.limit);
    this.events.delete(key); // re-insert: Map order is then least recently used first
    this.events.set(key, times);
    this.bound(now);
    return times.length;
  }

  /** Records the event only if the key is under its limit; false (nothing recorded) when it is not. */
  tryRecord(key: string, now: number): boolean {
    if (this.reached(key, now)) return false;
    this.record(key, now);
    return true;
  }

  get size(): number {
    return this.events.size;
  }

  private bound(now: number): void {
    if (this.events.size <= this.maxKeys) return;
    const since = now - this.rate.windowMs;
    for (const [key, times] of this.events) if ((times[times.length - 1] ?? 0) <= since) this.events.delete(key);
    // Still too many live keys: forget the least recently active ones (a flood of addresses, each seen once).
    for (const key of this.events.keys()) {
      if (this.events.size <= this.maxKeys) break;
      this.events.delete(key);
    }
  }
}
