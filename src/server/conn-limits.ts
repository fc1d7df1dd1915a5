/**
 * Connection limits: at most `total` concurrent sessions, at most `perIp`
 * from one client address. Beyond them the client gets 421 4.7.0 and the
 * connection is closed before a session exists (RFC 5321 §3.8: 421 may be
 * sent at any time; the client retries later).
 */
export class ConnectionLimits {
  private count = 0;
  private readonly byIp = new Map<string, number>();

  constructor(
    private readonly total: number,
    private readonly perIp: number,
  ) {}

  /** Takes a slot for `ip`, or returns the reason it cannot. */
  acquire(ip: string): 'ok' | 'total' | 'per-ip' {
    if (this.count >= this.total) return 'total';
    const n = this.byIp.get(ip) ?? 0;
    if (n >= this.perIp) return 'per-ip';
    this.count++;
    this.byIp.set(ip, n + 1);
    return 'ok';
  }

  release(ip: string): void {
    const n = this.byIp.get(ip) ?? 0;
    if (n <= 1) this.byIp.delete(ip);
    else this.byIp.set(ip, n - 1);
    if (this.count > 0) this.count--;
  }

  get active(): number {
    return this.count;
  }
}
