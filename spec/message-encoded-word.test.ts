/**
 * RFC 2047 decoding (src/message/encoded-word.ts): B and Q, charsets through
 * TextDecoder plus UTF-7, §6.2 whitespace between adjacent encoded words,
 * multi-byte characters split across words, unknown charsets kept as written.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeUnstructured, utf7 } from '../src/message/encoded-word';
import { DefectList } from '../src/message/header';

function dec(s: string): { text: string; codes: string[] } {
  const d = new DefectList();
  const text = decodeUnstructured(s, d, 'Subject');
  return { text, codes: d.items.map((x) => x.code) };
}

describe('RFC 2047 encoded words', () => {
  it.each([
    ['=?iso-8859-1?q?this=20is=20some=20text?=', 'this is some text'],
    ['=?US-ASCII?Q?Keith_Moore?=', 'Keith Moore'],
    ['=?ISO-8859-1?Q?Andr=E9?= Pirard', 'André Pirard'],
    ['=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=', 'If you can read this you understand the example.'],
    ['(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)', '(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)'],
    ['=?ISO-8859-1?Q?a?= b', 'a b'],
    ['=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=', 'ab'],
    ['=?ISO-8859-1?Q?a_b?=', 'a b'],
    ['=?UTF-8?B?44GT44KT44Gr44Gh44Gv?=', 'こんにちは'],
    ['=?utf-8*en?Q?hello?=', 'hello'],
    ['=?windows-1252?Q?=80uro?=', '€uro'],
    ['=?koi8-r?B?8NLJ18XU?=', 'Привет'],
    ['=?utf-7?Q?Fr+APY-sche?=', 'Frösche'],
    ['plain  text  kept ', 'plain  text  kept '],
  ])('%s', (s, text) => expect(dec(s)).toEqual({ text, codes: [] }));

  it('a UTF-8 character split across two encoded words is joined before decoding', () => {
    expect(dec('=?utf-8?Q?Gr=C3?= =?utf-8?Q?=BC=C3=9Fe?=').text).toBe('Grüße');
  });

  it('several encoded words written without spaces decode as one run', () => {
    expect(dec('=?utf-8?Q?a?==?utf-8?Q?b?=').text).toBe('ab');
  });

  it('an unknown charset keeps the word as written, with a defect; malformed words are plain text', () => {
    expect(dec('=?x-nonsense?Q?abc?= d')).toEqual({ text: '=?x-nonsense?Q?abc?= d', codes: ['unknown-charset'] });
    expect(dec('=?utf-8?Q?bad=ZZ?=').text).toBe('=?utf-8?Q?bad=ZZ?=');
    expect(dec('=?utf-8?B?not*base64?=').text).toBe('=?utf-8?B?not*base64?=');
    expect(dec('=?utf-8?X?abc?=').text).toBe('=?utf-8?X?abc?=');
  });

  it('bytes invalid in the charset become U+FFFD, with a defect', () => {
    expect(dec('=?utf-8?Q?=FF?=')).toEqual({ text: '\ufffd', codes: ['bad-encoded-text'] });
  });

  it('UTF-7 (RFC 2152): "+-" is "+", base64 runs end at "-" or a non-base64 character', () => {
    expect(utf7('1 +- 1')).toBe('1 + 1');
    expect(utf7('Hi Mom -+Jjo--!')).toBe('Hi Mom -\u263a-!');
    expect(utf7('+ZeVnLIqe-')).toBe('日本語');
  });

  it('property: B-encoding any text in UTF-8, in words of any split, decodes back', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.integer({ min: 1, max: 12 }), (s, size) => {
        const b = Buffer.from(s, 'utf8');
        const words: string[] = [];
        for (let i = 0; i < b.length; i += size) words.push(`=?UTF-8?B?${b.subarray(i, i + size).toString('base64')}?=`);
        expect(dec(words.join(' ')).text).toBe(s);
      }),
    );
  });

  it('property: arbitrary text never throws', () => {
    fc.assert(fc.property(fc.string({ maxLength: 100 }), (s) => void dec(`=?${s}?= ${s}`)));
  });
});
