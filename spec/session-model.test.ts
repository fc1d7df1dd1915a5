/**
 * Model-based spec of the server session's command sequencing (fc.commands).
 *
 * The model is the few facts RFC 5321 §4.1.4 ordering depends on: the phase
 * (greet, ready, mail), the recipients so far, whether BDAT chunks have begun
 * (RFC 3030 §2: no RCPT or DATA after them), and the error count. Each command
 * predicts its reply codes from the model and the session must give exactly
 * those: 503 5.5.1 out of sequence, 554 for DATA/BDAT with no recipient,
 * 452 4.5.3 past max_recipients (RFC 5321 §4.5.3.1.10), and after max_errors
 * 4xx/5xx replies a 421 and the close (STYLE §3 rule 6).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertNever } from '../src/smtp/assert-never';
import type { Policy } from './helpers/session-driver';
import { SessionDriver, dotStuff, crlfBody, toDecision } from './helpers/session-driver';

interface Model {
  phase: 'greet' | 'ready' | 'mail';
  rcpts: string[];
  /** BDAT chunks of this transaction already received. */
  bdat: string;
  inBdat: boolean;
  errors: number;
  closed: boolean;
  readonly maxErrors: number;
  readonly maxRecipients: number;
}

interface Real {
  readonly d: SessionDriver;
}

/** Senders and recipients whose local part starts with "bad" are refused by policy (550 5.7.1). */
const policy: Policy = (q) => {
  const local = q.kind === 'mail' || q.kind === 'rcpt' ? (q.args.path.mailbox?.localPart ?? '') : '';
  return local.startsWith('bad') ? toDecision({ accept: false, code: 550 }) : { accept: true };
};

/** A 4xx/5xx reply: counted, and the one that reaches max_errors is followed by 421 and the close. */
function error(m: Model, code: number): number[] {
  m.errors += 1;
  if (m.errors < m.maxErrors) return [code];
  m.closed = true;
  return [code, 421];
}

function endTxn(m: Model): void {
  if (m.phase === 'mail') m.phase = 'ready';
  m.rcpts = [];
  m.bdat = '';
  m.inBdat = false;
}

abstract class SmtpCommand implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }

  run(m: Model, r: Real): void {
    const before = r.d.replies.length;
    const commitsBefore = r.d.commits.length;
    const rcpts = [...m.rcpts];
    const body = m.bdat;
    const expected = m.closed ? [] : this.predict(m);
    this.send(r.d);
    expect(r.d.codes.slice(before), this.toString()).toEqual(expected);
    expect(r.d.session.closed).toBe(m.closed);
    expect(r.d.violations).toEqual([]);
    const commits = r.d.commits.slice(commitsBefore);
    if (this.commits(expected)) {
      expect(commits.map((c) => c.recipients)).toEqual([rcpts]);
      expect(commits[0]?.body.toString('latin1')).toBe(body + this.payload());
    } else expect(commits).toEqual([]);
  }

  /** Updates the model; returns the reply codes the session must send. */
  abstract predict(m: Model): number[];
  abstract toString(): string;

  protected send(d: SessionDriver): void {
    d.feed(`${this.toString()}\r\n`);
  }

  protected commits(_expected: number[]): boolean {
    return false;
  }

  protected payload(): string {
    return '';
  }
}

class Greet extends SmtpCommand {
  constructor(private readonly verb: 'EHLO' | 'HELO') {
    super();
  }
  predict(m: Model): number[] {
    endTxn(m);
    m.phase = 'ready';
    return [250];
  }
  toString(): string {
    return `${this.verb} client.test`;
  }
}

class Mail extends SmtpCommand {
  constructor(private readonly local: string) {
    super();
  }
  predict(m: Model): number[] {
    if (m.phase !== 'ready') return error(m, 503);
    if (this.local.startsWith('bad')) return error(m, 550);
    m.phase = 'mail';
    return [250];
  }
  toString(): string {
    return `MAIL FROM:<${this.local}@s.test>`;
  }
}

class Rcpt extends SmtpCommand {
  constructor(private readonly local: string) {
    super();
  }
  predict(m: Model): number[] {
    if (m.phase !== 'mail' || m.inBdat) return error(m, 503);
    if (m.rcpts.length >= m.maxRecipients) return error(m, 452);
    if (this.local.startsWith('bad')) return error(m, 550);
    const address = `${this.local}@r.test`;
    if (!m.rcpts.includes(address)) m.rcpts.push(address);
    return [250];
  }
  toString(): string {
    return `RCPT TO:<${this.local}@r.test>`;
  }
}

class Data extends SmtpCommand {
  constructor(private readonly body: Buffer) {
    super();
  }
  predict(m: Model): number[] {
    if (m.phase !== 'mail' || m.inBdat) return error(m, 503);
    if (m.rcpts.length === 0) return error(m, 554);
    endTxn(m);
    return [354, 250];
  }
  protected override send(d: SessionDriver): void {
    const before = d.replies.length;
    d.feed('DATA\r\n');
    // The content goes only after a 354: otherwise the client would have its lines read as commands.
    if (d.replies[before]?.code === 354) d.feed(dotStuff(this.body));
  }
  protected override commits(expected: number[]): boolean {
    return expected[0] === 354;
  }
  protected override payload(): string {
    return this.body.toString('latin1');
  }
  toString(): string {
    return `DATA (${this.body.length} octets)`;
  }
}

class Bdat extends SmtpCommand {
  constructor(private readonly content: string, private readonly last: boolean) {
    super();
  }
  predict(m: Model): number[] {
    if (m.phase !== 'mail') return error(m, 503);
    if (m.rcpts.length === 0) return error(m, 554);
    if (this.last) endTxn(m);
    else {
      m.inBdat = true;
      m.bdat += this.content;
    }
    return [250];
  }
  protected override send(d: SessionDriver): void {
    d.feed(`${this.toString()}\r\n${this.content}`);
  }
  protected override commits(expected: number[]): boolean {
    return this.last && expected[0] === 250;
  }
  protected override payload(): string {
    return this.content;
  }
  toString(): string {
    return `BDAT ${this.content.length}${this.last ? ' LAST' : ''}`;
  }
}

/** Commands whose reply never depends on the model beyond "closed": RSET, NOOP, junk and QUIT. */
class Simple extends SmtpCommand {
  constructor(private readonly line: 'RSET' | 'NOOP' | 'QUIT' | 'XYZZY') {
    super();
  }
  predict(m: Model): number[] {
    switch (this.line) {
      case 'RSET':
        endTxn(m);
        return [250];
      case 'NOOP':
        return [250];
      case 'QUIT':
        m.closed = true;
        return [221];
      case 'XYZZY':
        return error(m, 500);
      default:
        return assertNever(this.line);
    }
  }
  toString(): string {
    return this.line;
  }
}

/** RFC 5321 §2.3.8: a command ended by a bare LF is refused whatever its verb, and changes nothing. */
class BareLf extends SmtpCommand {
  constructor(private readonly verb: string) {
    super();
  }
  predict(m: Model): number[] {
    return error(m, 500);
  }
  protected override send(d: SessionDriver): void {
    d.feed(`${this.verb}\n`);
  }
  toString(): string {
    return `${this.verb}<LF>`;
  }
}

const local = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'bad1', 'bad2');
const commands = [
  fc.constantFrom('EHLO', 'HELO').map((v) => new Greet(v as 'EHLO' | 'HELO')),
  local.map((l) => new Mail(l)),
  local.map((l) => new Mail(l)),
  // RCPT twice over: transactions need recipients before DATA and BDAT can succeed.
  local.map((l) => new Rcpt(l)),
  local.map((l) => new Rcpt(l)),
  crlfBody.map((b) => new Data(b)),
  fc.tuple(fc.stringMatching(/^[a-z ]{0,10}$/), fc.boolean()).map(([c, last]) => new Bdat(c, last)),
  fc.constantFrom('RSET', 'QUIT', 'MAIL FROM:<a@s.test>', 'EHLO c').map((v) => new BareLf(v)),
  fc.constantFrom('RSET', 'NOOP', 'RSET', 'NOOP', 'XYZZY', 'QUIT').map((l) => new Simple(l as 'RSET' | 'NOOP' | 'QUIT' | 'XYZZY')),
];

describe('6. the session against a model of RFC 5321 §4.1.4 sequencing', () => {
  it('every command gets the reply codes the model predicts', () => {
    const limits = fc.record({ maxErrors: fc.integer({ min: 2, max: 30 }), maxRecipients: fc.integer({ min: 1, max: 4 }) });
    fc.assert(
      fc.property(limits, fc.commands(commands, { maxCommands: 80, size: 'large' }), (lim, cmds) => {
        const setup = () => {
          const d = new SessionDriver({ config: lim, policy }).start();
          const model: Model = { phase: 'greet', rcpts: [], bdat: '', inBdat: false, errors: 0, closed: false, ...lim };
          return { model, real: { d } };
        };
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 500 },
    );
  });

  it('the model can tell a wrong session: a RCPT before MAIL must get 503, not 250', () => {
    const d = new SessionDriver({ policy }).start();
    const m: Model = { phase: 'greet', rcpts: [], bdat: '', inBdat: false, errors: 0, closed: false, maxErrors: 10, maxRecipients: 2 };
    new Greet('EHLO').run(m, { d });
    expect(() => new Rcpt('a').run({ ...m, phase: 'mail' }, { d })).toThrow();
  });
});
