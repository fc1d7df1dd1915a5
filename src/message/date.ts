/**
 * RFC 5322 §3.3 date-time for the header fields Petrel writes (Received, Date,
 * DSN Arrival-Date): always UTC, written "+0000", with the English day and month
 * names the grammar requires, e.g. "Sat, 28 Nov 2026 07:11:23 +0000".
 *
 * The day of the month is written without padding (§3.3: day = 1*2DIGIT), the year
 * with at least four digits (§3.3: year = 4*DIGIT).
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

export function formatRfc5322Date(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new RangeError('formatRfc5322Date: invalid Date');
  const day = DAYS[d.getUTCDay()];
  const month = MONTHS[d.getUTCMonth()];
  const year = String(d.getUTCFullYear()).padStart(4, '0');
  const time = [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()].map(two).join(':');
  return `${day}, ${d.getUTCDate()} ${month} ${year} ${time} +0000`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
