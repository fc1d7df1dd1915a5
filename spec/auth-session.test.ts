// AUTH in the pure session (src/smtp/verbs-auth.ts, RFC 4954 §4): lines inside
// an exchange are SASL responses and never commands; any chunking gives the same
// transcript; sessions with AUTH keep every adapter invariant and close only
// after 421; submission refuses MAIL until AUTH. The policy's answers are
// scripted here; the real ones are covered by spec/dialogs/auth-*.smtp.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { reply } from '../src/smtp/reply';
import type { Decision, Question } from '../src/smtp/session-types';
import { SessionDriver, cuts, sessionInput, splitAt, type Policy } from './helpers/session-driver';

const AUTH_CONFIG = { authMechanisms: ['PLAIN', 'LOGIN'] };
const TLS = { tls: true };

/** A policy that challenges every auth question (the exchange never ends by itself) and accepts the rest. */
const challengeForever: Policy = (q) => (q.kind === 'auth' ? { accept: true, reply: reply(334, undefined, 'Zm9v') } : { accept: true });

type AuthAnswer = 'challenge' | 'ok' | 'bad' | 'blocked' | 'malformed';
const answer = fc.constantFrom<AuthAnswer>('challenge', 'challenge', 'ok', 'bad', 'blocked', 'malformed');

function authDecision(a: AuthAnswer): Decision {
  switch (a) {
    case 'challenge':
      return { accept: true, reply: reply(334, undefined, '') };
    case 'ok':
      return { accept: true, user: 'alice@example.com' };
    case 'bad':
      return { accept: false, reply: reply(535, '5.7.8', 'Authentication credentials invalid') };
    case 'blocked':
      return { accept: false, reply: reply(421, '4.7.0', 'Too many failed authentication attempts') };
    case 'malformed':
      return { accept: false, reply: reply(501, '5.5.2', 'Malformed') };
  }
}

function scriptedAuth(answers: readonly AuthAnswer[]): Policy {
  let n = 0;
  return (q) => (q.kind === 'auth' ? authDecision(answers[n++ % Math.max(answers.length, 1)] ?? 'ok') : { accept: true });
}

const authQuestions = (qs: Question[]) => qs.flatMap((q) => (q.kind === 'auth' ? [q] : []));

/** Response lines: anything without CR or LF, commands included. */
const responseLine = fc.oneof(
  fc.constantFrom('MAIL FROM:<evil@attacker.example>', 'RCPT TO:<x@y>', 'DATA', 'QUIT', 'RSET', 'STARTTLS', 'AUTH PLAIN', '=', '', 'YWxpY2U='),
  fc.string({ unit: 'binary-ascii', maxLength: 30 }).filter((s) => !/[\r\n]/.test(s) && s !== '*'),
);

describe('inside an AUTH exchange every line is a SASL response', () => {
  it('commands sent as responses are handed to the policy as responses and never run', () => {
    fc.assert(fc.property(fc.array(responseLine, { minLength: 1, maxLength: 6 }), (lines) => {
      const d = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: challengeForever }).start();
      d.feed('EHLO c\r\nAUTH LOGIN\r\n', ...lines.map((l) => `${l}\r\n`));
      const asked = authQuestions(d.questions);
      expect(d.questions.every((q) => q.kind === 'auth')).toBe(true);
      expect(asked.at(-1)?.responses).toEqual(lines);
      expect(d.session.closed).toBe(false);
      expect(d.violations).toEqual([]);
    }));
  });

  it('"*" ends the exchange with 501 5.0.0 and the next line is a command again', () => {
    const d = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: challengeForever }).start();
    d.feed('EHLO c\r\nAUTH LOGIN\r\nabc\r\n*\r\nNOOP\r\n');
    expect(d.codes.slice(-4)).toEqual([334, 334, 501, 250]);
    expect(d.replies.at(-2)?.enhanced).toBe('5.0.0');
  });

  it('a response over 12288 octets is read to its end, answered once with 500 5.5.6, and not buffered', () => {
    const d = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: challengeForever }).start();
    d.feed('EHLO c\r\nAUTH PLAIN\r\n');
    for (let i = 0; i < 40; i++) d.feed('A'.repeat(1000));
    expect(d.session.buffered).toBeLessThanOrEqual(12288);
    d.feed('\r\nNOOP\r\n');
    expect(d.codes.slice(-2)).toEqual([500, 250]);
    expect(d.replies.at(-2)?.enhanced).toBe('5.5.6');
    // A response of exactly 12288 octets with its CRLF is still a response.
    d.feed(`AUTH PLAIN\r\n${'B'.repeat(12286)}\r\n`);
    expect(authQuestions(d.questions).at(-1)?.responses).toEqual(['B'.repeat(12286)]);
  });

  it('"=" as the initial response is an empty response; its absence is no response', () => {
    const d = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: scriptedAuth(['bad']) }).start();
    d.feed('EHLO c\r\nAUTH PLAIN =\r\nAUTH plain\r\nAUTH LOGIN abc=\r\n');
    expect(authQuestions(d.questions).map((q) => [q.mechanism, q.responses])).toEqual([['PLAIN', ['']], ['PLAIN', []], ['LOGIN', ['abc=']]]);
  });
});

describe('AUTH with any input, chunking and answers', () => {
  const withAuth = fc.array(fc.oneof(fc.constantFrom('AUTH PLAIN\r\n', 'AUTH LOGIN\r\n', 'AUTH PLAIN AGEAYg==\r\n', '*\r\n', 'YWJj\r\n', 'MAIL FROM:<a@b.test>\r\n', 'RCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n'), sessionInput.map((b) => b.toString('latin1'))), { maxLength: 10 });

  it('any chunking of the same bytes gives the same transcript', () => {
    fc.assert(fc.property(withAuth, cuts, fc.array(answer, { maxLength: 6 }), (parts, at, answers) => {
      const bytes = Buffer.from(`EHLO c\r\n${parts.join('')}`, 'latin1');
      const whole = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: scriptedAuth(answers) }).start().feed(bytes);
      const cut = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: scriptedAuth(answers) }).start().feed(...splitAt(bytes, at));
      expect(cut.transcript()).toEqual(whole.transcript());
    }), { numRuns: 300 });
  });

  it('keeps the adapter invariants and closes only right after 221 or 421', () => {
    fc.assert(fc.property(withAuth, fc.array(answer, { maxLength: 6 }), fc.boolean(), (parts, answers, required) => {
      const d = new SessionDriver({ config: AUTH_CONFIG, facts: { tls: true, authRequired: required }, policy: scriptedAuth(answers) }).start();
      d.feed(`EHLO c\r\n${parts.join('')}`);
      expect(d.violations).toEqual([]);
      const closeAt = d.outputs.findIndex((o) => o.type === 'close');
      if (closeAt >= 0) {
        const last = d.outputs.slice(0, closeAt).filter((o) => o.type === 'reply').at(-1);
        expect(last?.type === 'reply' && [221, 421].includes(last.reply.code)).toBe(true);
      }
      // A required-AUTH session opens no transaction before a successful AUTH.
      if (required) {
        const firstOk = d.outputs.findIndex((o) => o.type === 'reply' && o.reply.code === 235);
        const firstMail = d.outputs.findIndex((o) => o.type === 'ask' && o.question.kind === 'mail');
        if (firstMail >= 0) expect(firstOk).toBeGreaterThanOrEqual(0);
        if (firstMail >= 0) expect(firstOk).toBeLessThan(firstMail);
      }
    }), { numRuns: 300 });
  });
});

describe('where AUTH is offered and allowed', () => {
  it('advertised only inside TLS and only with mechanisms', () => {
    const ehlo = (config: object, facts: object) => new SessionDriver({ config, facts }).start().feed('EHLO c\r\n').replies.at(-1)?.lines ?? [];
    expect(ehlo(AUTH_CONFIG, TLS)).toContain('AUTH PLAIN LOGIN');
    expect(ehlo({ ...AUTH_CONFIG, tlsAvailable: true }, { tls: false })).not.toContain('AUTH PLAIN LOGIN');
    expect(ehlo({}, TLS).some((l) => l.startsWith('AUTH'))).toBe(false);
  });

  it('refuses before asking: plaintext 538, no mechanisms 502, after success 503', () => {
    const d = new SessionDriver({ config: AUTH_CONFIG, facts: { tls: false } }).start().feed('EHLO c\r\nAUTH PLAIN\r\n');
    expect(d.replies.at(-1)).toMatchObject({ code: 538, enhanced: '5.7.11' });
    const none = new SessionDriver({ facts: TLS }).start().feed('EHLO c\r\nAUTH PLAIN\r\n');
    expect(none.codes.at(-1)).toBe(502);
    const twice = new SessionDriver({ config: AUTH_CONFIG, facts: TLS, policy: scriptedAuth(['ok']) }).start().feed('EHLO c\r\nAUTH PLAIN AGEAYg==\r\nAUTH PLAIN AGEAYg==\r\n');
    expect(twice.codes.slice(-2)).toEqual([235, 503]);
    expect(authQuestions(d.questions).length + authQuestions(none.questions).length).toBe(0);
    expect(authQuestions(twice.questions)).toHaveLength(1);
  });
});
