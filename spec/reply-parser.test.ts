/**
 * Executable spec of the outbound client's reply parser (src/smtp/reply-parser.ts):
 * RFC 5321 §4.2 reply lines (multi-line "250-" … "250 ", one code throughout),
 * RFC 3463 enhanced codes, independence from how TCP splits the stream, the
 * bounds that keep a hostile server from growing our memory, and no throw on
 * any input.
 */
import { splitAt } from './helpers/chunks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { renderReply, type Reply } from '../src/smtp/reply';
import { REPLY_LIMITS, ReplyParser, type ReplyEvent } from '../src/smtp/reply-parser';

const b = (s: string) => Buffer.from(s, 'latin1');

function parse(...chunks: (string | Buffer)[]): ReplyEvent[] {
  const p = new ReplyParser();
  return chunks.flatMap((c) => p.push(typeof c === 'string' ? b(c) : c));
}


const replyOf = (code: number, enhanced: string | undefined, ...lines: string[]): ReplyEvent => ({
  type: 'reply',
  reply: enhanced === undefined ? { code, lines } : { code, enhanced, lines },
});

describe('reply lines (RFC 5321 §4.2)', () => {
  it('a single-line reply with an enhanced code', () => {
    expect(parse('250 2.1.0 Sender OK\r\n')).toEqual([replyOf(250, '2.1.0', 'Sender OK')]);
  });

  it('a single-line reply without one', () => {
    expect(parse('220 mx.example ESMTP\r\n')).toEqual([replyOf(220, undefined, 'mx.example ESMTP')]);
  });

  it('a multi-line EHLO reply keeps every line, the first being the domain', () => {
    const wire = '250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n';
    expect(parse(wire)).toEqual([replyOf(250, undefined, 'mx.example greets you', 'PIPELINING', 'SIZE 1000', '8BITMIME')]);
  });

  it('the enhanced code comes from the first line and is stripped wherever it is repeated', () => {
    const wire = '550-5.1.1 No such user\r\n550-5.1.1 here\r\n550 and nothing more\r\n';
    expect(parse(wire)).toEqual([replyOf(550, '5.1.1', 'No such user', 'here', 'and nothing more')]);
  });

  it('an enhanced code whose class differs from the reply code is only text (RFC 3463 §2)', () => {
    expect(parse('550 4.1.1 odd\r\n')).toEqual([replyOf(550, undefined, '4.1.1 odd')]);
  });

  it('a code alone, or a code with an empty text, is a complete reply', () => {
    expect(parse('250\r\n354 \r\n')).toEqual([replyOf(250, undefined, ''), replyOf(354, undefined, '')]);
  });

  it('several pipelined replies in one chunk come out in order', () => {
    const out = parse('250 2.1.0 ok\r\n550 5.1.1 no\r\n354 go ahead\r\n');
    expect(out.map((e) => (e.type === 'reply' ? e.reply.code : e.reason))).toEqual([250, 550, 354]);
  });

  it('a bare LF ends a line too (replies carry no content, so leniency cannot smuggle)', () => {
    expect(parse('250-a\n250 b\n')).toEqual([replyOf(250, undefined, 'a', 'b')]);
  });

  it('UTF-8 text is decoded', () => {
    expect(parse(Buffer.from('550 5.1.1 Benutzer unbekannt: jösé\r\n', 'utf8'))).toEqual([replyOf(550, '5.1.1', 'Benutzer unbekannt: jösé')]);
  });
});

describe('garbage is a protocol error, never a throw', () => {
  it.each([
    ['not a reply', 'hello there\r\n'],
    ['1yz code', '150 nope\r\n'],
    ['6yz code', '650 nope\r\n'],
    ['letters in the code', '25x ok\r\n'],
    ['bad separator', '250+ok\r\n'],
    ['too short', '25\r\n'],
    ['empty line', '\r\n'],
  ])('%s', (_name, wire) => {
    const out = parse(wire);
    expect(out).toHaveLength(1);
    expect(out[0]?.type).toBe('error');
  });

  it('a code that changes inside a multi-line reply is an error, not two replies', () => {
    const out = parse('250-first\r\n550 second\r\n');
    expect(out).toEqual([{ type: 'error', reason: 'reply code changed inside a multi-line reply' }]);
  });

  it('after an error the parser stays failed and ignores everything', () => {
    const p = new ReplyParser();
    expect(p.push(b('junk\r\n'))[0]?.type).toBe('error');
    expect(p.push(b('250 ok\r\n'))).toEqual([]);
    expect(p.failed).toBe('malformed reply line');
  });

  it('replies before the garbage still come out', () => {
    const out = parse('250 ok\r\njunk\r\n');
    expect(out.map((e) => e.type)).toEqual(['reply', 'error']);
  });
});

describe('limits (a reply is bounded in line length, lines and bytes)', () => {
  it(`a line over ${REPLY_LIMITS.line} octets is an error`, () => {
    const out = parse(`250 ${'x'.repeat(REPLY_LIMITS.line)}\r\n`);
    expect(out).toEqual([{ type: 'error', reason: `reply line longer than ${REPLY_LIMITS.line} octets` }]);
  });

  it('a line exactly at the limit is fine', () => {
    const text = 'x'.repeat(REPLY_LIMITS.line - 6);
    expect(parse(`250 ${text}\r\n`)).toEqual([replyOf(250, undefined, text)]);
  });

  it('an endless line without LF is refused while it streams in, not buffered', () => {
    const p = new ReplyParser();
    const events: ReplyEvent[] = [];
    for (let i = 0; i < 100 && events.length === 0; i++) events.push(...p.push(b('250 '.padEnd(1000, 'x'))));
    expect(events.map((e) => e.type)).toEqual(['error']);
  });

  it(`more than ${REPLY_LIMITS.lines} lines is an error`, () => {
    const lines = Array.from({ length: REPLY_LIMITS.lines }, (_, i) => `250-line ${i}\r\n`).join('');
    expect(parse(`${lines}250 last\r\n`)).toEqual([{ type: 'error', reason: `reply longer than ${REPLY_LIMITS.lines} lines` }]);
    expect(parse(`${lines.slice(0, -'250-line 99\r\n'.length)}250 last\r\n`)[0]?.type).toBe('reply');
  });

  it(`more than ${REPLY_LIMITS.bytes} octets is an error`, () => {
    const line = `250-${'y'.repeat(4000)}\r\n`;
    const out = parse(line.repeat(20), '250 end\r\n');
    expect(out).toEqual([{ type: 'error', reason: `reply longer than ${REPLY_LIMITS.bytes} octets` }]);
  });
});

// ---------------------------------------------------------------------------
// Properties

const code = fc.integer({ min: 200, max: 599 }).filter((c) => c % 100 < 60);
/** Text that renderReply reproduces exactly: no CR/LF, no trailing space, not starting like an enhanced code. */
const text = fc.stringMatching(/^(?:[A-Za-z<>@][ -~]{0,30}[!-~])?$/);
const reply: fc.Arbitrary<Reply> = fc
  .record({
    code,
    enhanced: fc.option(fc.tuple(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999 })), { nil: undefined }),
    lines: fc.array(text, { minLength: 1, maxLength: 6 }),
  })
  .map(({ code, enhanced, lines }) =>
    // RFC 3463 §3.1: enhanced classes are 2, 4 and 5 only.
    enhanced === undefined || code < 400 && code >= 300 ? { code, lines } : { code, enhanced: `${Math.floor(code / 100)}.${enhanced[0]}.${enhanced[1]}`, lines },
  );
const cuts = fc.array(fc.nat(), { maxLength: 16 });

describe('properties', () => {
  it('parse(render(replies)) gives the replies back, however the bytes are split', () => {
    fc.assert(
      fc.property(fc.array(reply, { maxLength: 6 }), cuts, (replies, at) => {
        const wire = b(replies.map(renderReply).join(''));
        const out = parse(...splitAt(wire, at));
        expect(out).toEqual(replies.map((r) => ({ type: 'reply', reply: r })));
      }),
      { numRuns: 500 },
    );
  });

  it('any bytes, any chunking: same events as in one piece, never a throw, at most one error and it is last', () => {
    const noisy = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
      fc.array(fc.oneof(reply.map(renderReply), fc.constantFrom('\r', '\n', '250', '-', ' ', '5.1.1', 'x')), { maxLength: 30 }).map((a) => b(a.join(''))),
    );
    fc.assert(
      fc.property(noisy, cuts, (wire, at) => {
        const whole = parse(wire);
        const split = parse(...splitAt(wire, at));
        expect(split).toEqual(whole);
        const errors = split.filter((e) => e.type === 'error');
        expect(errors.length).toBeLessThanOrEqual(1);
        if (errors.length === 1) expect(split[split.length - 1]?.type).toBe('error');
      }),
      { numRuns: 1000 },
    );
  });

  it('one byte at a time gives the same result as one piece', () => {
    fc.assert(
      fc.property(fc.array(reply, { maxLength: 4 }), (replies) => {
        const wire = b(replies.map(renderReply).join(''));
        const bytes = [...wire].map((x) => Buffer.from([x]));
        expect(parse(...bytes)).toEqual(parse(wire));
      }),
      { numRuns: 200 },
    );
  });
});
