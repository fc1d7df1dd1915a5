/**
 * Executable spec of the pure SMTP server session (src/smtp/server-session.ts):
 * robustness against any input, independence from how TCP splits the stream,
 * exact body transfer by DATA (RFC 5321 §4.1.1.4, §4.5.2 dot-stuffing) and by
 * BDAT (RFC 3030), the SMTP smuggling and SIZE defences (RFC 5321 §2.3.8,
 * CVE-2023-51764/51765/51766, RFC 1870) and the STARTTLS injection defence
 * (RFC 3207 §4.2, §5; CVE-2011-0411).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertNever } from '../src/smtp/assert-never';
import {
  SessionDriver, bodyLine, choice, config, crlfBody, cuts, dotStuff, facts, mailbox, oneByteChunks, sessionInput,
  scripted, splitAt, toDecision,
} from './helpers/session-driver';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('1. no input makes the session throw', () => {
  it('arbitrary bytes, any chunking', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), cuts, config, (bytes, at, cfg) => {
        const d = new SessionDriver({ config: cfg }).start();
        d.feed(...splitAt(Buffer.from(bytes), at)).eof();
        expect(d.violations).toEqual([]);
        expect(d.session.closed).toBe(true);
      }),
      { numRuns: 600 },
    );
  });

  it('plausible commands mixed with junk, random decisions, any chunking', () => {
    fc.assert(
      fc.property(sessionInput, cuts, config, facts, fc.array(choice, { maxLength: 8 }), (bytes, at, cfg, f, ch) => {
        const d = new SessionDriver({ config: cfg, facts: f, policy: scripted(ch) }).start();
        d.feed(...splitAt(bytes, at)).eof();
        expect(d.violations).toEqual([]);
        expect(d.dangling).toEqual([]);
      }),
      { numRuns: 800 },
    );
  });

  it('regression: the error that reaches max_errors on a malformed BDAT closes the session once (found by this spec)', () => {
    // Shrunk: STARTTLS (502, error 1), then "BDAT x": its 501 is error 2, which sends 421 and closes,
    // then the BDAT handler closes again: two close outputs.
    const d = new SessionDriver({ config: { maxErrors: 2 } }).start().feed('STARTTLS\r\nBDAT x\r\n');
    expect(d.violations).toEqual([]);
    expect(d.outputs.filter((o) => o.type === 'close')).toHaveLength(1);
  });

  type Step =
    | { kind: 'bytes'; data: Buffer }
    | { kind: 'decide'; choice: ReturnType<typeof toDecision> }
    | { kind: 'timeout' | 'eof' | 'tls' | 'shutdown' };
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 6, arbitrary: sessionInput.map((data) => ({ kind: 'bytes' as const, data })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((u) => ({ kind: 'bytes' as const, data: Buffer.from(u) })) },
    { weight: 4, arbitrary: choice.map((c) => ({ kind: 'decide' as const, choice: toDecision(c) })) },
    { weight: 1, arbitrary: fc.constantFrom('timeout', 'eof', 'tls', 'shutdown').map((kind) => ({ kind })) },
  );

  it('random interleaving of bytes, late decisions, timeout, eof, tls-ready and shutdown', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), config, facts, (steps, cfg, f) => {
        const d = new SessionDriver({ config: { ...cfg, tlsAvailable: true }, facts: f, autoAnswer: false }).start();
        for (const s of steps) apply(d, s);
        d.eof();
        // A decision that arrives after the end still has to be harmless.
        d.decide();
        expect(d.violations).toEqual([]);
        expect(d.dangling).toEqual([]);
      }),
      { numRuns: 800 },
    );
  });

  function apply(d: SessionDriver, s: Step): void {
    switch (s.kind) {
      case 'bytes': d.feed(s.data); return;
      case 'decide': d.decide(s.choice); return;
      case 'timeout': d.timeout(); return;
      case 'eof': d.eof(); return;
      case 'tls': d.tlsReady(); return;
      case 'shutdown': d.shutdown(); return;
      default: assertNever(s);
    }
  }
});

describe('3. any chunking of the same bytes gives the same session', () => {
  function run(chunks: Buffer[], cfg: object, ch: Parameters<typeof scripted>[0]): string[] {
    const d = new SessionDriver({ config: cfg, policy: scripted(ch) }).start();
    d.feed(...chunks).eof();
    expect(d.violations).toEqual([]);
    return d.transcript();
  }

  it('one chunk, random cuts and 1-byte chunks give the same replies, questions, commits and committed bodies', () => {
    fc.assert(
      fc.property(sessionInput, cuts, config, fc.array(choice, { maxLength: 6 }), (bytes, at, cfg, ch) => {
        const whole = run([bytes], cfg, ch);
        expect(run(splitAt(bytes, at), cfg, ch)).toEqual(whole);
        expect(run(oneByteChunks(bytes), cfg, ch)).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });

  it('regression: DATA over SIZE with a bare CR gets one verdict however it is chunked (found by this spec)', () => {
    // Shrunk: whole, the bare CR is seen before the first slice is counted and the reply is 550;
    // in small chunks the size limit is crossed first and the reply is 552.
    const wire = b('EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nMAIL FROM:<x@y>\r\n\r\r\n.\r\n');
    const cfg = { maxMessageSize: 16 };
    expect(run(oneByteChunks(wire), cfg, [])).toEqual(run([wire], cfg, []));
  });

  it('a complete DATA transaction, with commands pipelined after it, under any chunking', () => {
    fc.assert(
      fc.property(crlfBody, cuts, (body, at) => {
        const wire = Buffer.concat([b('EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n'), dotStuff(body), b('NOOP\r\nQUIT\r\n')]);
        const whole = run([wire], {}, []);
        expect(run(splitAt(wire, at), {}, [])).toEqual(whole);
        expect(run(oneByteChunks(wire), {}, [])).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});

describe('RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF', () => {
  it('511 and 512 octets are read, 513 and more are refused with 500, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.integer({ min: 500, max: 530 }), cuts, (octets, at) => {
        const line = b(`VRFY ${'a'.repeat(octets - 7)}\r\n`);
        const wire = Buffer.concat([b('EHLO c\r\n'), line, b('NOOP\r\n')]);
        for (const chunks of [[wire], splitAt(wire, at), oneByteChunks(wire)]) {
          const d = new SessionDriver().start().feed(...chunks);
          expect(d.codes).toEqual([220, 250, octets <= 512 ? 252 : 500, 250]);
        }
      }),
      { numRuns: 120 },
    );
  });

  it('RFC 5321 §2.3.8: a command ending in a bare LF is refused (500 5.5.2), never executed', () => {
    const d = new SessionDriver().start().feed('EHLO c\r\nMAIL FROM:<a@b.test>\nRSET\nNOOP\r\n');
    expect(d.replies.slice(2).map((r) => `${r.code} ${r.enhanced}`)).toEqual(['500 5.5.2', '500 5.5.2', '250 2.0.0']);
    expect(d.questions).toEqual([]);
  });
});

describe('3b. decisions that arrive late, while the client keeps pipelining, change nothing', () => {
  it('answering after each chunk gives the same session as answering at once (RFC 2920 §3.1 ordering)', () => {
    fc.assert(
      fc.property(sessionInput, cuts, config, fc.array(choice, { maxLength: 6 }), (bytes, at, cfg, ch) => {
        const now = new SessionDriver({ config: cfg, policy: scripted(ch) }).start().feed(bytes).eof();
        const late = new SessionDriver({ config: cfg, policy: scripted(ch), autoAnswer: false }).start();
        for (const part of splitAt(bytes, at)) {
          late.feed(part);
          while (late.pending && !late.session.closed) late.decide();
        }
        late.eof();
        expect(late.violations).toEqual([]);
        expect(late.transcript()).toEqual(now.transcript());
      }),
      { numRuns: 500 },
    );
  });
});

describe('4. the body arrives exactly as sent, with one commit', () => {
  const envelope = fc.tuple(fc.oneof(mailbox, fc.constant('')), fc.uniqueArray(mailbox, { minLength: 1, maxLength: 4 }));

  function head(sender: string, rcpts: readonly string[]): string {
    return `EHLO c\r\nMAIL FROM:<${sender}>\r\n${rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join('')}`;
  }

  function expectOneCommit(d: SessionDriver, sender: string, rcpts: readonly string[], body: Buffer): void {
    expect(d.violations).toEqual([]);
    expect(d.commits).toHaveLength(1);
    const c = d.commits[0];
    expect(c?.sender).toBe(sender);
    expect(c?.recipients).toEqual(rcpts);
    expect(c?.size).toBe(body.length);
    expect(c?.body.equals(body)).toBe(true);
    expect(d.questions.filter((q) => q.kind === 'commit')).toHaveLength(1);
  }

  it('DATA, dot-stuffed', () => {
    fc.assert(
      fc.property(envelope, crlfBody, cuts, ([sender, rcpts], body, at) => {
        const wire = Buffer.concat([b(`${head(sender, rcpts)}DATA\r\n`), dotStuff(body), b('QUIT\r\n')]);
        const d = new SessionDriver().start().feed(...splitAt(wire, at));
        expectOneCommit(d, sender, rcpts, body);
        expect(d.codes).toEqual([220, 250, 250, ...rcpts.map(() => 250), 354, 250, 221]);
      }),
      { numRuns: 400 },
    );
  });

  it('BDAT, random chunk sizes, the last line with or without CRLF', () => {
    const bdatBody = fc.tuple(crlfBody, fc.option(bodyLine, { nil: undefined })).map(([body, tail]) => (tail ? Buffer.concat([body, tail]) : body));
    fc.assert(
      fc.property(envelope, bdatBody, cuts, cuts, ([sender, rcpts], body, pieces, at) => {
        const parts = splitAt(body, pieces);
        const chunks = parts.map((p, i) => Buffer.concat([b(`BDAT ${p.length}${i === parts.length - 1 ? ' LAST' : ''}\r\n`), p]));
        const wire = Buffer.concat([b(head(sender, rcpts)), ...chunks, b('QUIT\r\n')]);
        const d = new SessionDriver().start().feed(...splitAt(wire, at));
        expectOneCommit(d, sender, rcpts, body);
        expect(d.codes).toEqual([220, 250, 250, ...rcpts.map(() => 250), ...parts.map(() => 250), 221]);
      }),
      { numRuns: 400 },
    );
  });

  it('RFC 1870: a body of exactly max_message_size octets is accepted, one more is refused with 552 after the end', () => {
    fc.assert(
      fc.property(crlfBody, fc.integer({ min: -2, max: 2 }), fc.boolean(), cuts, (body, delta, bdat, at) => {
        const max = Math.max(0, body.length + delta);
        const content = bdat ? Buffer.concat([b(`BDAT ${body.length} LAST\r\n`), body]) : Buffer.concat([b('DATA\r\n'), dotStuff(body)]);
        const wire = Buffer.concat([b(head('a@b.test', ['c@d.test'])), content, b('NOOP\r\n')]);
        const d = new SessionDriver({ config: { maxMessageSize: max } }).start().feed(...splitAt(wire, at));
        expect(d.violations).toEqual([]);
        expect(d.commits).toHaveLength(body.length <= max ? 1 : 0);
        expect(d.codes.slice(-2)).toEqual([body.length <= max ? 250 : 552, 250]);
      }),
      { numRuns: 400 },
    );
  });

  it('RFC 5321 §6.3: more than 50 Received fields is a loop (554 5.4.6), under any chunking, by DATA and BDAT', () => {
    fc.assert(
      fc.property(fc.integer({ min: 45, max: 55 }), fc.boolean(), cuts, (n, bdat, at) => {
        const body = b(`${'Received: from x by y; Sat, 1 Jan 2000 00:00:00 +0000\r\n'.repeat(n)}Subject: loop\r\n\r\nReceived: in the body does not count\r\n`);
        const content = bdat ? Buffer.concat([b(`BDAT ${body.length} LAST\r\n`), body]) : Buffer.concat([b('DATA\r\n'), dotStuff(body)]);
        const d = new SessionDriver().start().feed(...splitAt(Buffer.concat([b(head('a@b.test', ['c@d.test'])), content]), at));
        expect(d.commits).toHaveLength(n <= 50 ? 1 : 0);
        expect(d.replies.at(-1)).toMatchObject(n <= 50 ? { code: 250 } : { code: 554, enhanced: '5.4.6' });
      }),
      { numRuns: 200 },
    );
  });

  it('real messages from the corpus, CRLF-normalised, by DATA and by BDAT', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '../../shared/corpus/messages');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.eml'));
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) {
      const raw = readFileSync(join(dir, f)).toString('latin1');
      const body = b(raw.replace(/\r?\n/g, '\r\n').replace(/([^\n])$/, '$1\r\n'));
      const clean = !/\r(?!\n)/.test(body.toString('latin1'));
      const viaData = new SessionDriver().start().feed(b(`${head('a@b.test', ['c@d.test'])}DATA\r\n`), dotStuff(body));
      const viaBdat = new SessionDriver().start().feed(b(`${head('a@b.test', ['c@d.test'])}BDAT ${body.length} LAST\r\n`), body);
      for (const d of [viaData, viaBdat]) {
        if (clean) expectOneCommit(d, 'a@b.test', ['c@d.test'], body);
        else expect(d.replies.at(-1)?.code, f).toBe(550);
      }
    }
  });
});

describe('5. SMTP smuggling and SIZE: nothing inside the data is ever a command', () => {
  const LOOKALIKES = ['\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '\r.\r\n'] as const;
  const OUTER = 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n';
  const INNER = 'MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\n';
  const text = fc.array(bodyLine.filter((l) => !l.toString('latin1').startsWith('.')), { maxLength: 5 }).map((ls) => Buffer.concat(ls.flatMap((l) => [l, b('\r\n')])));

  /** Feeds one byte at a time and checks no reply leaves before the terminator's last byte. */
  function feedData(d: SessionDriver, data: Buffer): void {
    const before = d.replies.length;
    for (const byte of oneByteChunks(data.subarray(0, -1))) d.feed(byte);
    expect(d.replies.length, 'a reply left before the end of data').toBe(before);
    d.feed(data.subarray(-1));
  }

  function expectSmugglingRefused(d: SessionDriver, code: number): void {
    expect(d.violations).toEqual([]);
    expect(d.commits).toEqual([]);
    expect(d.questions.map((q) => q.kind)).toEqual(['mail', 'rcpt', 'open']);
    const afterData = d.codes.slice(d.codes.indexOf(354) + 1);
    expect(afterData).toEqual([code, 250]); // one reply for the whole content, then the NOOP
    expect(d.aborts).toHaveLength(1);
  }

  it('a lookalike terminator and a second transaction inside DATA: one 550, no commit, no second MAIL', () => {
    fc.assert(
      fc.property(text, fc.constantFrom(...LOOKALIKES), text, (before, fake, inner) => {
        const d = new SessionDriver().start().feed(OUTER);
        const content = Buffer.concat([before, b(fake), b(INNER), inner, b('\r\n.\r\n')]);
        feedData(d, content);
        d.feed('NOOP\r\n');
        expectSmugglingRefused(d, 550);
        expect(d.replies.at(-2)?.enhanced).toBe('5.6.0');
      }),
      { numRuns: 400 },
    );
  });

  it('a message over SIZE full of commands: one 552 after the terminator, no command executed', () => {
    fc.assert(
      fc.property(text, text, fc.integer({ min: 16, max: 120 }), (before, after, max) => {
        const d = new SessionDriver({ config: { maxMessageSize: max } }).start().feed(OUTER);
        const filler = b(`${'z'.repeat(max)}\r\n`);
        const content = Buffer.concat([before, filler, b(INNER), after, b('QUIT\r\nRSET\r\n'), dotStuff(Buffer.alloc(0))]);
        feedData(d, content);
        d.feed('NOOP\r\n');
        expectSmugglingRefused(d, 552);
        expect(d.session.closed).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('BDAT content with a bare CR or LF is refused with 550 after its last chunk, however it is chunked', () => {
    fc.assert(
      fc.property(text, fc.constantFrom(...LOOKALIKES), text, cuts, (before, fake, inner, pieces) => {
        const body = Buffer.concat([before, b(fake), b(INNER), inner]);
        const parts = splitAt(body, pieces);
        const chunks = parts.map((p, i) => Buffer.concat([b(`BDAT ${p.length}${i === parts.length - 1 ? ' LAST' : ''}\r\n`), p]));
        const d = new SessionDriver().start().feed('EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n', ...chunks, 'NOOP\r\n');
        expect(d.violations).toEqual([]);
        expect(d.commits).toEqual([]);
        expect(d.questions.map((q) => q.kind)).toEqual(['mail', 'rcpt', 'open']);
        expect(d.replies.at(-2)).toMatchObject({ code: 550, enhanced: '5.6.0' });
        expect(d.aborts).toHaveLength(1);
      }),
      { numRuns: 300 },
    );
  });

  it('regression shape: "\\r\\n.\\n" exactly as in CVE-2023-51764 is content', () => {
    const d = new SessionDriver().start().feed(`${OUTER}Subject: x\r\n\r\nhi\r\n.\n${INNER}evil\r\n.\r\nNOOP\r\n`);
    expectSmugglingRefused(d, 550);
  });
});

describe('graceful shutdown: 421 4.3.2 at once when idle, after the transaction when busy', () => {
  it('an idle session is closed at once', () => {
    const d = new SessionDriver().start().feed('EHLO c\r\n').shutdown();
    expect(d.replies.at(-1)).toMatchObject({ code: 421, enhanced: '4.3.2' });
    expect(d.session.closed).toBe(true);
  });

  it('a DATA transaction in flight is finished and acknowledged first; what was pipelined after it is not run', () => {
    const d = new SessionDriver().start().feed('EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhello\r\n');
    d.shutdown();
    expect(d.session.closed).toBe(false);
    d.feed('.\r\nMAIL FROM:<x@y.test>\r\n');
    expect(d.codes.slice(-2)).toEqual([250, 421]);
    expect(d.commits).toHaveLength(1);
    expect(d.questions.filter((q) => q.kind === 'mail')).toHaveLength(1);
    expect(d.session.closed).toBe(true);
  });
});

describe('7. STARTTLS: nothing pipelined before the handshake survives it (RFC 3207 §5)', () => {
  const tlsCfg = { tlsAvailable: true };

  it('bytes after "STARTTLS\\r\\n" in the same chunk give no reply and no question', () => {
    fc.assert(
      fc.property(sessionInput, fc.uint8Array({ maxLength: 200 }), (pipelined, later) => {
        const d = new SessionDriver({ config: tlsCfg }).start();
        d.feed(Buffer.concat([b('EHLO c\r\nSTARTTLS\r\n'), pipelined]), Buffer.from(later));
        expect(d.codes).toEqual([220, 250, 220]);
        expect(d.questions).toEqual([]);
        expect(d.outputs.filter((o) => o.type === 'start-tls')).toHaveLength(1);
        d.tlsReady().feed('MAIL FROM:<a@b.test>\r\n');
        expect(d.codes.at(-1)).toBe(503);
        expect(d.questions).toEqual([]);
        expect(d.violations).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('after the handshake: EHLO no longer offers STARTTLS and a second STARTTLS is refused', () => {
    const d = new SessionDriver({ config: tlsCfg }).start().feed('EHLO c\r\n');
    expect(d.replies[1]?.lines).toContain('STARTTLS');
    d.feed('STARTTLS\r\n').tlsReady().feed('EHLO c\r\n');
    expect(d.replies.at(-1)?.code).toBe(250);
    expect(d.replies.at(-1)?.lines).not.toContain('STARTTLS');
    d.feed('STARTTLS\r\n');
    expect(d.replies.at(-1)).toMatchObject({ code: 503, enhanced: '5.5.1' });
    expect(d.outputs.filter((o) => o.type === 'start-tls')).toHaveLength(1);
    d.feed('MAIL FROM:<a@b.test>\r\n');
    expect(d.replies.at(-1)?.code).toBe(250);
    expect(d.questions.at(-1)).toMatchObject({ kind: 'mail' });
  });
});
