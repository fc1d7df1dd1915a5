/**
 * Queue ids: 10 Crockford base32 characters of ms since the epoch, then 5 of a
 * per-ms sequence, so ids are unique, sortable by arrival, and safe in logs,
 * file-free CLI arguments and RFC 5321 §4.4 "id" clauses of Received fields.
 */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export class IdClock {
  private lastMs = 0;
  private seq = 0;

  /** Never hands out an id that sorts before one seen in the log (the clock may step back). */
  observe(id: string): void {
    this.lastMs = Math.max(this.lastMs, idTime(id));
  }

  next(now = Date.now()): string {
    let ms = now;
    if (ms <= this.lastMs) {
      ms = this.lastMs; // same ms, or the clock stepped back: keep ids increasing
      this.seq += 1;
      if (this.seq >= 32 ** 5) {
        ms += 1;
        this.seq = 0;
      }
    } else this.seq = 0;
    this.lastMs = ms;
    return base32(ms, 10) + base32(this.seq, 5);
  }
}

function base32(n: number, width: number): string {
  let s = '';
  let v = n;
  for (let i = 0; i < width; i++) {
    s = CROCKFORD[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return s;
}

/** The time part of an id IdClock made (0 for any other id, so foreign ids cannot push the clock ahead). */
function idTime(id: string): number {
  if (!/^[0-9A-HJKMNP-TV-Z]{15}$/.test(id)) return 0;
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(ch);
  return ms;
}
