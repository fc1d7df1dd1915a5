/**
 * RFC 5322 date-time to ISO 8601 UTC ("2001-05-04T18:05:44Z"), or null.
 * Pure; never throws. (Writing dates is ./date.ts.)
 *
 * RFC 5322 §3.3:  date-time = [ day-of-week "," ] date time [CFWS]
 *                 date = day month year, time = hour ":" minute [ ":" second ] zone
 *                 zone = ( "+" / "-" ) 4DIGIT
 * RFC 5322 §4.3 (obsolete forms, which a parser MUST accept):
 *   - CFWS (comments, folding) anywhere between the tokens;
 *   - a two-digit year is 1950-2049 (00-49 → 20xx, 50-99 → 19xx), a
 *     three-digit year is year + 1900;
 *   - obs-zone: "UT" / "GMT" (+0000), "EST" -0500, "EDT" -0400, "CST" -0600,
 *     "CDT" -0500, "MST" -0700, "MDT" -0600, "PST" -0800, "PDT" -0700, and the
 *     military letters, which "SHOULD all be considered equivalent to -0000"
 *     because their signs were published backwards (RFC 1123 §5.2.14).
 * Leniencies, each with a defect: a missing zone (taken as UTC), an unknown
 * zone name (taken as UTC), a missing comma after the day name, no space
 * before the zone ("12:34-0800"), a day name that does not match the date.
 */
import type { DefectList } from './header';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** Minutes east of UTC for the named zones of §4.3. */
const ZONES: Readonly<Record<string, number>> = {
  ut: 0, gmt: 0, z: 0,
  est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420,
};

const DATE =
  /^(?:([a-z]+)\s*(,)?\s*)?(\d{1,2})\s*([a-z]+)\s*(\d{2,4})\s+(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?\s*(?:([+-])(\d{4})|([a-z]+))?$/i;

/** The date-time in `value`, in UTC, or null when it is not one. */
export function parseDate(value: string, defects: DefectList, field = 'Date'): string | null {
  const text = stripComments(value).replace(/\s+/g, ' ').trim();
  const m = DATE.exec(text);
  if (!m) {
    defects.add('invalid-date', `not an RFC 5322 date-time: ${JSON.stringify(value.slice(0, 100))}`, field);
    return null;
  }
  const [, dayName, comma, d, mon, y, hh, mm, ss, sign, digits, zoneName] = m;
  const month = MONTHS.indexOf((mon ?? '').toLowerCase());
  const year = fullYear(y ?? '');
  const zone = zoneOffset(sign, digits, zoneName, defects, field);
  const parts = { year, month, day: Number(d), hour: Number(hh), minute: Number(mm), second: Number(ss ?? '0') };
  if (month < 0 || zone === null || !inRange(parts)) {
    defects.add('invalid-date', `a field of the date is out of range: ${JSON.stringify(value.slice(0, 100))}`, field);
    return null;
  }
  const ms = Date.UTC(year, month, parts.day, parts.hour, parts.minute, parts.second) - zone * 60_000;
  if (dayName !== undefined) checkDayName(dayName, comma, parts, defects, field);
  return isoUtc(ms);
}

const DAY_MS = 86_400_000;

/** ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (civil-from-days, H. Hinnant), without reading any clock. */
export function isoUtc(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  const secs = Math.floor((ms - days * DAY_MS) / 1000);
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const time = `${p2(Math.floor(secs / 3600))}:${p2(Math.floor(secs / 60) % 60)}:${p2(secs % 60)}`;
  return `${String(y).padStart(4, '0')}-${p2(m)}-${p2(d)}T${time}Z`;
}

/** §4.3: 2 digits → 1950-2049, 3 digits → + 1900. */
function fullYear(y: string): number {
  const n = Number(y);
  if (y.length === 2) return n < 50 ? 2000 + n : 1900 + n;
  if (y.length === 3) return 1900 + n;
  return n;
}

function zoneOffset(sign: string | undefined, digits: string | undefined, name: string | undefined, defects: DefectList, field: string): number | null {
  if (sign !== undefined && digits !== undefined) {
    const h = Number(digits.slice(0, 2));
    const m = Number(digits.slice(2));
    if (m > 59) return null;
    return (sign === '-' ? -1 : 1) * (h * 60 + m);
  }
  if (name === undefined) {
    defects.add('date-without-zone', 'no time zone; taken as UTC', field);
    return 0;
  }
  const known = ZONES[name.toLowerCase()];
  if (known !== undefined) return known;
  if (/^[a-ik-z]$/i.test(name)) return 0; // military zone: -0000 (§4.3)
  defects.add('unknown-zone', `unknown time zone "${name.slice(0, 10)}"; taken as UTC`, field);
  return 0;
}

interface Parts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** §3.3: hour 00-23, minute 00-59, second 00-60 (a leap second), a day the month has; year ≥ 1900. */
function inRange(p: Parts): boolean {
  const days = Math.round((Date.UTC(p.year, p.month + 1, 1) - Date.UTC(p.year, p.month, 1)) / DAY_MS);
  return p.year >= 1900 && p.year <= 9999 && p.day >= 1 && p.day <= days && p.hour <= 23 && p.minute <= 59 && p.second <= 60;
}

function checkDayName(name: string, comma: string | undefined, p: Parts, defects: DefectList, field: string): void {
  const days = Math.floor(Date.UTC(p.year, p.month, p.day) / DAY_MS);
  const wanted = DAYS[(((days + 4) % 7) + 7) % 7]; // 1970-01-01 was a Thursday
  if (name.toLowerCase() !== wanted) defects.add('date-day-mismatch', `"${name.slice(0, 10)}" is not the day of that date`, field);
  else if (comma === undefined) defects.add('date-syntax', 'no comma after the day name', field);
}

/** §3.2.2 comments, nested, with quoted-pairs; an unclosed one runs to the end. */
function stripComments(s: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && depth > 0) i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) {
      if (--depth === 0) out += ' ';
    } else if (depth === 0) out += c;
  }
  return out;
}
