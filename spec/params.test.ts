/**
 * Executable specification of the MAIL / RCPT argument parser (src/smtp/params.ts):
 * keyword, path and ESMTP parameters (RFC 5321 §4.1.1.2, §4.1.1.3, §4.1.2;
 * SIZE RFC 1870, BODY RFC 6152, SMTPUTF8 RFC 6531), as example tables with their
 * clause, then fast-check properties.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseMailArgs, parseRcptArgs, type ArgsParse } from '../src/smtp/params';
import { renderReply } from '../src/smtp/reply';

const MAX = 10_000_000;
const mail = (arg: string) => parseMailArgs(arg, { maxSize: MAX });
const rcpt = (arg: string, smtputf8 = false) => parseRcptArgs(arg, { smtputf8 });

function value<T>(r: ArgsParse<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${renderReply(r.reply)}`);
  return r.value;
}

/** "501 5.5.4" for a refusal, "ok" for a success. */
function outcome<T>(r: ArgsParse<T>): string {
  return r.ok ? 'ok' : `${r.reply.code} ${r.reply.enhanced ?? ''}`;
}

describe('MAIL FROM accepted', () => {
  it('RFC 5321 §4.1.1.2 plain reverse-path, no parameters', () => {
    const v = value(mail('FROM:<a@b.example>'));
    expect(v.path.mailbox).toMatchObject({ localPart: 'a', domain: 'b.example' });
    expect(v).toEqual({ path: v.path, smtputf8: false });
  });

  it('RFC 5234 §2.3 "FROM:" is case-insensitive', () => {
    expect(value(mail('from:<a@b.example>')).path.mailbox?.localPart).toBe('a');
    expect(value(mail('FrOm:<a@b.example>')).path.mailbox?.localPart).toBe('a');
  });

  it('RFC 5321 §4.1.1.2 one space after the colon is tolerated (common client habit)', () => {
    expect(value(mail('FROM: <a@b.example>')).path.mailbox?.domain).toBe('b.example');
  });

  it('RFC 5321 §4.5.5 null reverse-path', () => {
    expect(value(mail('FROM:<>')).path.mailbox).toBeNull();
    expect(value(mail('FROM:<> BODY=8BITMIME')).body).toBe('8BITMIME');
  });

  it('RFC 1870 §3 SIZE and RFC 6152 §2 BODY, keywords and values case-insensitive', () => {
    expect(value(mail('FROM:<a@b.example> SIZE=1000 BODY=8BITMIME'))).toMatchObject({ size: 1000, body: '8BITMIME' });
    expect(value(mail('FROM:<a@b.example> size=0 body=7bit'))).toMatchObject({ size: 0, body: '7BIT' });
  });

  it('RFC 5321 §4.1.2 several spaces between parameters and trailing spaces are tolerated', () => {
    expect(value(mail('FROM:<a@b.example>   SIZE=5   BODY=7BIT  '))).toMatchObject({ size: 5, body: '7BIT' });
  });

  it('RFC 1870 §6 SIZE equal to the maximum is accepted', () => {
    expect(value(mail(`FROM:<a@b.example> SIZE=${MAX}`)).size).toBe(MAX);
  });

  it('RFC 6531 §3.4 SMTPUTF8 allows a UTF-8 reverse-path', () => {
    const v = value(mail('FROM:<用户@例子.广告> SMTPUTF8'));
    expect(v.smtputf8).toBe(true);
    expect(v.path.mailbox?.utf8).toBe(true);
    expect(value(mail('FROM:<a@b.example> smtputf8')).smtputf8).toBe(true);
  });

  it('RFC 5321 Appendix C source route accepted, then ignored', () => {
    expect(value(mail('FROM:<@relay.example:a@b.example>')).path.route).toEqual(['relay.example']);
  });
});

describe('MAIL FROM refused', () => {
  const cases: [string, string, string][] = [
    ['RFC 5321 §4.1.1.2 "FROM:" missing', '<a@b.example>', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 "FROM" without colon', 'FROM <a@b.example>', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 space before the colon', 'FROM :<a@b.example>', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 "TO:" in MAIL', 'TO:<a@b.example>', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 empty argument', '', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 nothing after "FROM:"', 'FROM:', '501 5.5.4'],
    ['RFC 5321 §4.1.2 path without angle brackets', 'FROM:a@b.example', '501 5.5.4'],
    ['RFC 5321 §4.1.1.2 only one space tolerated after the colon', 'FROM:  <a@b.example>', '501 5.5.4'],
    ['RFC 5321 §4.1.2 bad sender syntax', 'FROM:<a@@b.example>', '501 5.1.7'],
    ['RFC 5321 §4.1.2 unclosed path', 'FROM:<a@b.example', '501 5.1.7'],
    ['RFC 5321 §4.1.1.3 bare <postmaster> is for RCPT only', 'FROM:<postmaster>', '501 5.1.7'],
    ['RFC 5321 §4.5.3.1.1 local part too long', `FROM:<${'a'.repeat(65)}@b.example>`, '501 5.1.7'],
    ['RFC 5321 §4.1.2 parameters need a space after ">"', 'FROM:<a@b.example>SIZE=1', '501 5.5.4'],
    ['RFC 5321 §4.1.2 esmtp-keyword missing', 'FROM:<a@b.example> =1', '501 5.5.4'],
    ['RFC 5321 §4.1.2 esmtp-keyword must start with ALPHA / DIGIT', 'FROM:<a@b.example> -X=1', '501 5.5.4'],
    ['RFC 5321 §4.1.2 esmtp-value must not be empty', 'FROM:<a@b.example> SIZE=', '501 5.5.4'],
    ['RFC 5321 §4.1.2 esmtp-value must not contain "="', 'FROM:<a@b.example> BODY=7BIT=1', '501 5.5.4'],
    ['RFC 5321 §4.1.2 malformed beats unknown: "=" in a value', 'FROM:<a@b.example> X-FOO=a=b', '501 5.5.4'],
    ['RFC 5321 §4.1.2 parameters separated by SP, not HTAB', 'FROM:<a@b.example> SIZE=1\tBODY=7BIT', '501 5.5.4'],
    ['RFC 5321 §4.1.2 control character in a parameter', 'FROM:<a@b.example> X\x00=1', '501 5.5.4'],
    ['RFC 1869 §4.2 duplicate parameter', 'FROM:<a@b.example> SIZE=1 SIZE=2', '501 5.5.4'],
    ['RFC 1869 §4.2 duplicate parameter in another case', 'FROM:<a@b.example> body=7bit BODY=7BIT', '501 5.5.4'],
    ['RFC 5321 §4.1.1.11 unknown parameter', 'FROM:<a@b.example> FOO=bar', '555 5.5.4'],
    ['RFC 5321 §4.1.1.11 DSN RET is not advertised', 'FROM:<a@b.example> RET=HDRS', '555 5.5.4'],
    ['RFC 5321 §4.1.1.11 AUTH is not a MAIL parameter here', 'FROM:<a@b.example> AUTH=<>', '555 5.5.4'],
    ['RFC 1870 §3 SIZE needs a value', 'FROM:<a@b.example> SIZE', '501 5.5.4'],
    ['RFC 1870 §3 SIZE is digits only', 'FROM:<a@b.example> SIZE=12k', '501 5.5.4'],
    ['RFC 1870 §3 SIZE is not negative', 'FROM:<a@b.example> SIZE=-1', '501 5.5.4'],
    ['RFC 1870 §3 SIZE has at most 20 digits', `FROM:<a@b.example> SIZE=${'1'.repeat(21)}`, '501 5.5.4'],
    ['RFC 1870 §6.1 SIZE above the maximum', `FROM:<a@b.example> SIZE=${MAX + 1}`, '552 5.3.4'],
    ['RFC 1870 §6.1 SIZE of 20 digits above the maximum', `FROM:<a@b.example> SIZE=${'9'.repeat(20)}`, '552 5.3.4'],
    ['RFC 6152 §2 BODY needs a value', 'FROM:<a@b.example> BODY', '501 5.5.4'],
    ['RFC 3030 §3 BINARYMIME is not advertised', 'FROM:<a@b.example> BODY=BINARYMIME', '501 5.5.4'],
    ['RFC 6152 §2 BODY values are 7BIT and 8BITMIME only', 'FROM:<a@b.example> BODY=8BIT', '501 5.5.4'],
    ['RFC 6531 §3.4 SMTPUTF8 takes no value', 'FROM:<a@b.example> SMTPUTF8=yes', '501 5.5.4'],
    ['RFC 6531 §3.5 UTF-8 reverse-path without SMTPUTF8', 'FROM:<ñ@b.example>', '553 5.6.7'],
    ['RFC 6531 §3.5 UTF-8 domain without SMTPUTF8', 'FROM:<a@bücher.example> BODY=8BITMIME', '553 5.6.7'],
    ['RFC 5321 §4.1.1.11 unknown keyword is reported before the size limit', `FROM:<a@b.example> SIZE=${MAX + 1} X-FOO`, '555 5.5.4'],
    ['RFC 5321 §4.1.2 path errors come before parameter errors', 'FROM:<a b@c.example> FOO', '501 5.1.7'],
  ];
  it.each(cases)('%s: %j → %s', (_name, arg, expected) => {
    expect(outcome(mail(arg))).toBe(expected);
  });

  it('reply texts are informative', () => {
    const text = (arg: string) => {
      const r = mail(arg);
      return r.ok ? '' : r.reply.lines.join(' ');
    };
    expect(text('<a@b.example>')).toMatch(/Syntax: MAIL FROM:<address>/);
    expect(text('FROM:<a@@b.example>')).toMatch(/^Bad sender address syntax/);
    expect(text(`FROM:<a@b.example> SIZE=${MAX + 1}`)).toBe('Message size exceeds fixed maximum message size');
    expect(text('FROM:<ñ@b.example>')).toBe('Non-ASCII addresses require SMTPUTF8');
    expect(text('FROM:<a@b.example> x-foo=1')).toMatch(/X-FOO/);
  });
});

describe('RCPT TO', () => {
  it('RFC 5321 §4.1.1.3 plain forward-path', () => {
    expect(value(rcpt('TO:<a@b.example>')).path.mailbox).toMatchObject({ localPart: 'a', domain: 'b.example' });
    expect(value(rcpt('to: <a@b.example>')).path.mailbox?.domain).toBe('b.example');
  });

  it('RFC 5321 §4.1.1.3 bare <Postmaster> is accepted, any case', () => {
    expect(value(rcpt('TO:<Postmaster>')).path.mailbox).toMatchObject({ localPart: 'Postmaster', domainKind: 'none' });
    expect(value(rcpt('TO:<POSTMASTER>')).path.mailbox?.domain).toBe('');
  });

  it('RFC 6531 §3.5 UTF-8 forward-path when the transaction uses SMTPUTF8', () => {
    expect(value(rcpt('TO:<用户@例子.广告>', true)).path.mailbox?.utf8).toBe(true);
  });

  const cases: [string, string, boolean, string][] = [
    ['RFC 5321 §4.1.1.3 "TO:" missing', '<a@b.example>', false, '501 5.5.4'],
    ['RFC 5321 §4.1.1.3 "FROM:" in RCPT', 'FROM:<a@b.example>', false, '501 5.5.4'],
    ['RFC 5321 §4.1.2 path without angle brackets', 'TO:a@b.example', false, '501 5.5.4'],
    ['RFC 5321 §4.1.1.3 null path is never a recipient', 'TO:<>', false, '501 5.1.3'],
    ['RFC 5321 §4.1.2 bad recipient syntax', 'TO:<a b@c.example>', false, '501 5.1.3'],
    ['RFC 5321 §4.1.3 bad address literal', 'TO:<a@[300.1.1.1]>', false, '501 5.1.3'],
    ['RFC 5321 §4.1.2 malformed parameter', 'TO:<a@b.example> =x', false, '501 5.5.4'],
    ['RFC 3461 §4 NOTIFY is not advertised', 'TO:<a@b.example> NOTIFY=NEVER', false, '555 5.5.4'],
    ['RFC 3461 §4 ORCPT is not advertised', 'TO:<a@b.example> ORCPT=rfc822;a@b.example', false, '555 5.5.4'],
    ['RFC 1870 SIZE is a MAIL parameter, not RCPT', 'TO:<a@b.example> SIZE=1', false, '555 5.5.4'],
    ['RFC 6531 §3.5 UTF-8 forward-path without SMTPUTF8', 'TO:<ñ@b.example>', false, '553 5.6.7'],
    ['RFC 6531 §3.3 even with SMTPUTF8, quoted-pair stays ASCII', 'TO:<"\\ñ"@b.example>', true, '501 5.1.3'],
  ];
  it.each(cases)('%s: %j → %s', (_name, arg, smtputf8, expected) => {
    expect(outcome(rcpt(arg, smtputf8))).toBe(expected);
  });

  it('reply texts are informative', () => {
    const r = rcpt('TO:<>');
    expect(r.ok ? '' : r.reply.lines[0]).toMatch(/^Bad recipient address syntax/);
    const s = rcpt('TO<a@b.example>');
    expect(s.ok ? '' : s.reply.lines[0]).toBe('Syntax: RCPT TO:<address>');
  });
});

// ---------------------------------------------------------------------------
// Properties

/** RFC 5321 §4.2 Reply-line with an RFC 3463 enhanced code. */
const REPLY_LINE = /^[2-5]\d\d [245]\.\d{1,3}\.\d{1,3} /;
const PARAM_CODES = new Set([501, 552, 553, 555]);

function checkReply<T>(r: ArgsParse<T>): void {
  if (r.ok) return;
  expect(renderReply(r.reply)).toMatch(REPLY_LINE);
  expect(PARAM_CODES.has(r.reply.code)).toBe(true);
  expect(r.reply.enhanced?.[0]).toBe(String(r.reply.code)[0]);
}

const argAlphabet = fc.constantFrom(...'<>@.:=," \\[]-aZ09ñ\x00\r\t'.split(''), 'FROM:', 'TO:', 'SIZE=', 'BODY=', 'SMTPUTF8', '8BITMIME', 'postmaster');
const argLike = fc.array(argAlphabet, { maxLength: 30 }).map((a) => a.join(''));
const anyArg = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), argLike, argLike.map((s) => `FROM:<a@b.example> ${s}`), argLike.map((s) => `TO:<a@b.example> ${s}`));

describe('properties', () => {
  it('never throws, and every refusal is a well-formed 5xx reply with a matching enhanced code', () => {
    fc.assert(
      fc.property(anyArg, fc.boolean(), fc.nat(), (arg, smtputf8, maxSize) => {
        checkReply(parseMailArgs(arg, { maxSize }));
        checkReply(parseRcptArgs(arg, { smtputf8 }));
      }),
      { numRuns: 5000 },
    );
  });

  const keywordCase = (k: string) => fc.mixedCase(fc.constant(k));
  const sizeParam = fc.tuple(keywordCase('SIZE'), fc.nat(MAX)).map(([k, n]) => ({ text: `${k}=${n}`, size: n }));
  const bodyParam = fc.tuple(keywordCase('BODY'), fc.constantFrom('7BIT', '8BITMIME'), fc.boolean()).map(([k, b, lower]) => ({
    text: `${k}=${lower ? b.toLowerCase() : b}`,
    body: b,
  }));
  const utf8Param = keywordCase('SMTPUTF8').map((k) => ({ text: k, smtputf8: true }));

  it('RFC 5321 §4.1.2 any set of valid parameters, in any order and spacing, is accepted with its values', () => {
    const params = fc.tuple(fc.option(sizeParam), fc.option(bodyParam), fc.option(utf8Param)).chain((opts) =>
      fc.shuffledSubarray(opts.filter((o) => o !== null), { minLength: opts.filter((o) => o !== null).length }),
    );
    fc.assert(
      fc.property(params, fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }), (ps, gaps) => {
        const text = ps.map((p, i) => ' '.repeat(gaps[i] ?? 1) + p.text).join('');
        const v = value(mail(`FROM:<a@b.example>${text}`));
        const merged = Object.assign({}, ...ps) as { size?: number; body?: string; smtputf8?: boolean };
        expect(v.size).toBe(merged.size);
        expect(v.body).toBe(merged.body);
        expect(v.smtputf8).toBe(merged.smtputf8 === true);
      }),
      { numRuns: 1000 },
    );
  });

  it('RFC 1869 §4.2 repeating any parameter is refused with 501 5.5.4', () => {
    const param = fc.oneof(sizeParam, bodyParam, utf8Param).map((p) => p.text);
    fc.assert(
      fc.property(param, param, (a, b) => {
        const same = a.split('=')[0]?.toUpperCase() === b.split('=')[0]?.toUpperCase();
        fc.pre(same);
        expect(outcome(mail(`FROM:<a@b.example> ${a} ${b}`))).toBe('501 5.5.4');
      }),
      { numRuns: 300 },
    );
  });
});
