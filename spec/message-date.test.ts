/**
 * RFC 5322 date-time parsing (src/message/date-parse.ts): §3.3 and the
 * obsolete forms of §4.3, to ISO 8601 UTC. Round trip against the writer
 * (src/message/date.ts) and against any zone offset.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatRfc5322Date } from '../src/message/date';
import { parseDate } from '../src/message/date-parse';
import { DefectList } from '../src/message/header';

function parse(s: string): { iso: string | null; codes: string[] } {
  const d = new DefectList();
  const iso = parseDate(s, d);
  return { iso, codes: d.items.map((x) => x.code) };
}

describe('RFC 5322 §3.3 dates', () => {
  it.each([
    ['Fri, 21 Nov 1997 09:55:06 -0600', '1997-11-21T15:55:06Z'],
    ['Tue, 1 Jul 2003 10:52:37 +0200', '2003-07-01T08:52:37Z'],
    ['Thu, 13 Feb 1969 23:32:54 -0330', '1969-02-14T03:02:54Z'],
    ['4 May 2001 18:05:44 +0000', '2001-05-04T18:05:44Z'],
    ['Sat, 31 Dec 2016 23:59:60 +0000', '2017-01-01T00:00:00Z'],
  ])('%s → %s', (s, iso) => expect(parse(s)).toEqual({ iso, codes: [] }));
});

describe('RFC 5322 §4.3 obsolete forms', () => {
  it.each([
    ['Thu,\r\n 13\r\n Feb\r\n 1969\r\n 23:32\r\n -0330 (Newfoundland Time)', '1969-02-14T03:02:00Z'],
    ['21 Nov 97 09:55:06 GMT', '1997-11-21T09:55:06Z'],
    ['Fri, 21 Nov 1997 09(comment):   55  :  06 -0600', '1997-11-21T15:55:06Z'],
    ['Fri, 1 Jan 49 00:00:00 UT', '2049-01-01T00:00:00Z'],
    ['Mon, 1 Jan 101 00:00:00 EST', '2001-01-01T05:00:00Z'],
    ['Wed, 1 Jul 1998 12:00:00 PDT', '1998-07-01T19:00:00Z'],
    ['Wed, 1 Jul 1998 12:00:00 Z', '1998-07-01T12:00:00Z'],
    ['Wed, 1 Jul 1998 12:00:00 M', '1998-07-01T12:00:00Z'],
    ['wed, 1 JUL 1998 12:00:00 cdt', '1998-07-01T17:00:00Z'],
  ])('%j → %s', (s, iso) => expect(parse(s)).toEqual({ iso, codes: [] }));
});

describe('malformed dates: null or a reading with a defect, never an exception', () => {
  it.each([
    ['Whenever', null, ['invalid-date']],
    ['Fri, 31 Feb 1997 09:55:06 -0600', null, ['invalid-date']],
    ['Fri, 21 Nov 1997 24:00:00 -0600', null, ['invalid-date']],
    ['Fri, 21 Nov 1997 09:55:06 +0060', null, ['invalid-date']],
    ['Fri, 21 Foo 1997 09:55:06 +0000', null, ['invalid-date']],
    ['01 Jan 2001 00:01+0000', '2001-01-01T00:01:00Z', []],
    ['Mon, 21 Nov 1997 09:55:06 -0600', '1997-11-21T15:55:06Z', ['date-day-mismatch']],
    ['Fri 21 Nov 1997 09:55:06 -0600', '1997-11-21T15:55:06Z', ['date-syntax']],
    ['Fri, 21 Nov 1997 09:55:06', '1997-11-21T09:55:06Z', ['date-without-zone']],
    ['Fri, 21 Nov 1997 09:55:06 CEST', '1997-11-21T09:55:06Z', ['unknown-zone']],
  ])('%j', (s, iso, codes) => expect(parse(s)).toEqual({ iso, codes }));

  it('property: arbitrary text never throws', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => void parse(s)));
  });
});

describe('property: parse ∘ format is the identity (to the second)', () => {
  const instant = fc.integer({ min: Date.UTC(1900, 0, 2), max: Date.UTC(9999, 11, 30) }).map((ms) => Math.floor(ms / 1000) * 1000);

  it('for the dates Petrel writes (+0000)', () => {
    fc.assert(
      fc.property(instant, (ms) => {
        expect(parse(formatRfc5322Date(new Date(ms))).iso).toBe(new Date(ms).toISOString().replace('.000Z', 'Z'));
      }),
    );
  });

  it('for any numeric zone: the local time written with its offset is the same instant', () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }), (ms, offset) => {
        const local = new Date(ms + offset * 60_000);
        const sign = offset < 0 ? '-' : '+';
        const a = Math.abs(offset);
        const zone = `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
        const text = formatRfc5322Date(local).replace('+0000', zone);
        const r = parse(text);
        if (local.getUTCFullYear() < 1900 || local.getUTCFullYear() > 9999) return;
        expect(r.iso).toBe(new Date(ms).toISOString().replace('.000Z', 'Z'));
      }),
    );
  });
});
