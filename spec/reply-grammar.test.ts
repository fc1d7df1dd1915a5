/**
 * Every reply the server session can send is well formed on the wire.
 *
 * RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                              Reply-code [ SP textstring ] CRLF
 *   with Reply-code = %x32-35 %x30-35 %x30-39 here (2yz–5yz), one code for all
 *   lines, textstring = 1*( %d09 / %d32-126 ).
 * RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the CRLF.
 * RFC 2034 §4 / RFC 3463 §2: with ENHANCEDSTATUSCODES every line of a 2xx, 4xx or
 *   5xx reply starts with class.subject.detail, class equal to the code's first
 *   digit; the greeting and the EHLO/HELO replies are the exceptions.
 * RFC 5321 §3.8: the server closes the connection only after a 221 (QUIT) or a
 *   421, or when the client is gone.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { R, renderReply, type Reply } from '../src/smtp/reply';
import type { Output } from '../src/smtp/session-types';
import { SessionDriver, choice, config, cuts, facts, sessionInput, scripted, splitAt, toDecision } from './helpers/session-driver';

const LINE = /^([2-5][0-5]\d)(?:([- ])(.*))?$/s;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/** Problems with one reply's wire form; `exempt` means RFC 2034 does not ask for an enhanced code. */
function grammarProblems(r: Reply, exempt: boolean): string[] {
  const wire = renderReply(r);
  if (!wire.endsWith('\r\n')) return [`does not end in CRLF: ${JSON.stringify(wire)}`];
  const lines = wire.slice(0, -2).split('\r\n');
  const problems: string[] = [];
  lines.forEach((line, i) => problems.push(...lineProblems(line, i === lines.length - 1, lines[0]?.slice(0, 3) ?? '', exempt)));
  return problems.map((p) => `${p} in ${JSON.stringify(wire)}`);
}

function lineProblems(line: string, last: boolean, code: string, exempt: boolean): string[] {
  const m = LINE.exec(line);
  if (!m) return ['line does not start with a reply code 2yz-5yz'];
  const [, lineCode = '', sep = ' ', text = ''] = m;
  const problems: string[] = [];
  if (lineCode !== code) problems.push('codes differ between lines');
  if ((sep === ' ') !== last) problems.push(last ? 'last line not "code SP"' : 'inner line not "code -"');
  // eslint-disable-next-line no-control-regex
  if (/[^\t\x20-\x7e]/.test(text)) problems.push('text outside textstring (HT, 32-126): CR, LF, NUL, control or 8-bit');
  if (Buffer.byteLength(line, 'latin1') + 2 > 512) problems.push('line over 512 octets');
  const cls = code[0];
  if (cls === '3' || exempt) return problems;
  const e = ENHANCED.exec(text);
  if (!e) problems.push('no enhanced status code (RFC 2034)');
  else if (e[1] !== cls) problems.push(`enhanced class ${e[1]} differs from code class ${cls}`);
  return problems;
}

/** Replies with their exemption: the greeting (first output) and the reply right after a 'helo' event. */
function classify(outputs: readonly Output[]): { reply: Reply; exempt: boolean }[] {
  const found: { reply: Reply; exempt: boolean }[] = [];
  outputs.forEach((o, i) => {
    if (o.type !== 'reply') return;
    const prev = outputs[i - 1];
    const exempt = i === 0 || (prev?.type === 'event' && prev.event === 'helo');
    found.push({ reply: o.reply, exempt });
  });
  return found;
}

describe('the checker itself', () => {
  it('rejects what the grammar forbids', () => {
    expect(grammarProblems({ code: 250, enhanced: '2.0.0', lines: ['ok'] }, false)).toEqual([]);
    expect(grammarProblems({ code: 250, lines: ['ok'] }, false)).not.toEqual([]);
    expect(grammarProblems({ code: 550, enhanced: '4.7.1', lines: ['x'] }, false)).not.toEqual([]);
    expect(grammarProblems({ code: 199, enhanced: '2.0.0', lines: ['x'] }, false)).not.toEqual([]);
    expect(lineProblems('250 2.0.0 \u00fc', true, '250', false)).not.toEqual([]);
    expect(lineProblems(`250 2.0.0 ${'x'.repeat(600)}`, true, '250', false)).not.toEqual([]);
  });

  it('renderReply itself keeps every line inside the grammar: 8-bit text and overlong text are made safe', () => {
    expect(renderReply({ code: 250, enhanced: '2.0.0', lines: ['gr\u00fc\u00df'] })).toBe('250 2.0.0 gr??\r\n');
    expect(grammarProblems({ code: 250, enhanced: '2.0.0', lines: ['x'.repeat(600)] }, false)).toEqual([]);
  });
});

describe('2. every reply matches RFC 5321 §4.2 and RFC 2034', () => {
  it('the named replies in R', () => {
    for (const [name, make] of Object.entries(R)) {
      const r = (make as (host: string) => Reply)('mx.test');
      expect(grammarProblems(r, false), name).toEqual([]);
    }
  });

  it('every reply of sessions fed commands, junk and random decisions, with any hostname and client address', () => {
    const hostname = fc.domain().filter((h) => h.length <= 255);
    const clientIp = fc.oneof(fc.ipV4(), fc.ipV6());
    fc.assert(
      fc.property(sessionInput, cuts, config, facts, hostname, clientIp, fc.array(choice, { maxLength: 8 }), (bytes, at, cfg, f, host, ip, ch) => {
        const d = new SessionDriver({ config: { ...cfg, hostname: host }, facts: { ...f, clientIp: ip }, policy: scripted(ch) }).start();
        d.feed(...splitAt(bytes, at));
        if (!d.session.closed) d.timeout();
        for (const { reply, exempt } of classify(d.outputs)) expect(grammarProblems(reply, exempt)).toEqual([]);
      }),
      { numRuns: 800 },
    );
  });

  it('regression: refusal texts are ASCII only (params.ts and path.ts write "\u00a7" into 501 replies; found by this spec)', () => {
    // Shrunk counterexamples: a bare CR inside MAIL's parameters makes them malformed; "<>" is no recipient.
    const shrunk = ['EHLO client.test\r\nMAIL FROM:<a@b.test> X=1\rEHLO client.test\r\n', 'EHLO c\r\nmail from:<a@b.test> SIZE=100\r\nRCPT TO:<>\r\n'];
    for (const input of shrunk) {
      const d = new SessionDriver().start().feed(input, 'RSET\r\nMAIL FROM:<a@b.test> SMTPUTF8=yes\r\nMAIL FROM:<a@-b.test>\r\n');
      for (const { reply, exempt } of classify(d.outputs)) expect(grammarProblems(reply, exempt)).toEqual([]);
    }
  });

  it('no reply but the greeting and the EHLO/HELO replies goes without an enhanced code', () => {
    const d = new SessionDriver().start().feed('HELO c\r\nEHLO c\r\nNOOP\r\n');
    expect(classify(d.outputs).map((x) => x.exempt)).toEqual([true, true, true, false]);
  });
});

describe('RFC 5321 §3.8: the server closes only after 221 or 421', () => {
  /** Problems: a server-initiated close without a closing reply, or a 221/421 left open. */
  function closeProblems(outputs: readonly Output[]): string[] {
    const replies = outputs.filter((o) => o.type === 'reply' || o.type === 'close');
    const problems: string[] = [];
    replies.forEach((o, i) => {
      const next = replies[i + 1];
      const prev = replies[i - 1];
      if (o.type === 'reply' && (o.reply.code === 221 || o.reply.code === 421) && next?.type !== 'close') problems.push(`${o.reply.code} without close`);
      if (o.type === 'close' && o.reason !== 'client disconnected') {
        const code = prev?.type === 'reply' ? prev.reply.code : undefined;
        if (code !== 221 && code !== 421) problems.push(`close "${o.reason}" after ${code ?? 'no reply'}`);
      }
    });
    return problems;
  }

  it('for any input and decisions, and after timeout or shutdown', () => {
    fc.assert(
      fc.property(sessionInput, config, fc.array(choice, { maxLength: 8 }), fc.constantFrom('timeout', 'shutdown', 'eof'), (bytes, cfg, ch, end) => {
        const d = new SessionDriver({ config: cfg, policy: scripted(ch) }).start().feed(bytes);
        if (end === 'timeout') d.timeout();
        else if (end === 'shutdown') d.shutdown();
        else d.eof();
        expect(closeProblems(d.outputs)).toEqual([]);
      }),
      { numRuns: 600 },
    );
  });

  it('regression: a BDAT without a chunk size closes with a 421, not a bare 501 (found by this spec)', () => {
    const d = new SessionDriver().start().feed('BDAT x\r\n');
    expect(closeProblems(d.outputs)).toEqual([]);
  });

  it('a refusal decision goes out as given, enhanced code and all', () => {
    const d = new SessionDriver({ policy: () => toDecision({ accept: false, code: 451 }) }).start().feed('EHLO c\r\nMAIL FROM:<a@b.test>\r\n');
    expect(d.wire.split('\r\n').at(-2)).toBe('451 4.7.1 Refused by policy');
  });
});
