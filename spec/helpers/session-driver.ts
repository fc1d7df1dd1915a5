/**
 * Test driver for the pure SMTP server session (src/smtp/server-session.ts), and
 * the fast-check generators the session specs share.
 *
 * The driver plays the adapter's part of the contract in session-types.ts: it feeds
 * byte chunks, answers each question with a Decision (by default: accept, with a
 * fresh queue id for MAIL), and records every output. While it records, it checks
 * the invariants every adapter relies on, so each property checks them for free:
 * one question open at a time (RFC 2920 replies in order), nothing after `close`,
 * body bytes only inside an opened transaction, and each opened transaction ends
 * in exactly one commit question or one abort (or both, when the queue refuses
 * the commit), and no transaction hands the
 * queue more than max_message_size octets.
 */
import { splitAt } from './chunks';
export { splitAt };
import fc from 'fast-check';
import { assertNever } from '../../src/smtp/assert-never';
import { renderReply, type Reply } from '../../src/smtp/reply';
import { ServerSession } from '../../src/smtp/server-session';
import type { Decision, Output, Question, SessionConfig, SessionFacts } from '../../src/smtp/session-types';

export const TEST_CONFIG: SessionConfig = {
  hostname: 'mx.test',
  maxMessageSize: 1 << 20,
  maxRecipients: 100,
  maxErrors: 1000,
  tlsAvailable: false,
};
export const TEST_FACTS: SessionFacts = { clientIp: '192.0.2.7', tls: false };

/** Answers a question; an accepting answer to MAIL without an id gets one from the driver. */
export type Policy = (q: Question) => Decision;

export const acceptAll: Policy = () => ({ accept: true });

export interface Commit {
  readonly id: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly size: number;
  /** Every body output for this id, concatenated. */
  readonly body: Buffer;
}

export interface DriverOptions {
  config?: Partial<SessionConfig>;
  facts?: Partial<SessionFacts>;
  policy?: Policy;
  /** false: questions stay open until decide() is called. */
  autoAnswer?: boolean;
}

type Input = Buffer | Uint8Array | string;

export class SessionDriver {
  readonly session: ServerSession;
  readonly outputs: Output[] = [];
  readonly violations: string[] = [];
  readonly commits: Commit[] = [];
  private open: Question | null = null;
  private ids = 0;
  private closed = false;
  private readonly bodies = new Map<string, Buffer[]>();
  /** Transactions opened in the queue and not yet committed or aborted. */
  private readonly live = new Set<string>();
  /** A commit refused by the queue: the session may then abort that id (queue discards it). */
  private refusedCommit: string | null = null;
  private readonly policy: Policy;
  private readonly auto: boolean;

  constructor(opts: DriverOptions = {}) {
    this.session = new ServerSession({ ...TEST_CONFIG, ...opts.config }, { ...TEST_FACTS, ...opts.facts });
    this.policy = opts.policy ?? acceptAll;
    this.auto = opts.autoAnswer ?? true;
  }

  start(): this {
    return this.take(this.session.start());
  }

  /** Strings are taken as latin1, so any byte can be written as a character. */
  feed(...chunks: Input[]): this {
    for (const c of chunks) this.take(this.session.receive(toBuffer(c)));
    return this;
  }

  /** Answers the open question (with the policy unless `d` is given); no-op when none is open. */
  decide(d?: Decision): this {
    const q = this.open;
    if (!q) return this;
    const decision = this.complete(q, d ?? this.policy(q));
    this.open = null;
    this.refusedCommit = q.kind === 'commit' && !decision.accept ? q.id : null;
    if (q.kind === 'open' && decision.accept && q.id !== null && !this.session.closed) this.live.add(q.id);
    return this.take(this.session.decide(decision));
  }

  timeout(): this {
    return this.take(this.session.timeout());
  }

  eof(): this {
    return this.take(this.session.eof());
  }

  tlsReady(): this {
    return this.take(this.session.tlsReady());
  }

  shutdown(): this {
    return this.take(this.session.shutdown());
  }

  get pending(): Question | null {
    return this.open;
  }

  get replies(): Reply[] {
    return this.outputs.flatMap((o) => (o.type === 'reply' ? [o.reply] : []));
  }

  get codes(): number[] {
    return this.replies.map((r) => r.code);
  }

  get questions(): Question[] {
    return this.outputs.flatMap((o) => (o.type === 'ask' ? [o.question] : []));
  }

  get aborts(): string[] {
    return this.outputs.flatMap((o) => (o.type === 'abort' ? [o.id] : []));
  }

  /** Transactions still open in the queue (after eof this must be empty). */
  get dangling(): string[] {
    return [...this.live];
  }

  /** The wire form of every reply so far. */
  get wire(): string {
    return this.replies.map(renderReply).join('');
  }

  bodyOf(id: string): Buffer {
    return Buffer.concat(this.bodies.get(id) ?? []);
  }

  /**
   * Everything observable except how the body was sliced: replies, questions,
   * aborts, events, start-tls and close in order, then the commits with their bodies.
   */
  transcript(): string[] {
    const lines = this.outputs.flatMap((o) => (o.type === 'body' ? [] : [JSON.stringify(o)]));
    return [...lines, ...this.commits.map((c) => JSON.stringify({ ...c, body: c.body.toString('latin1') }))];
  }

  private complete(q: Question, d: Decision): Decision {
    if (q.kind !== 'mail' || !d.accept || d.id !== undefined) return d;
    return { ...d, id: `Q${++this.ids}` };
  }

  private take(outs: Output[]): this {
    for (const o of outs) this.record(o);
    if (this.auto && this.open) return this.decide();
    return this;
  }

  private record(o: Output): void {
    if (this.closed) this.violations.push(`output after close: ${JSON.stringify(o)}`);
    this.outputs.push(o);
    switch (o.type) {
      case 'ask':
        return this.recordAsk(o.question);
      case 'body':
        if (!this.live.has(o.id)) this.violations.push(`body for ${o.id}, which is not open`);
        return this.recordBody(o.id, o.data);
      case 'abort':
        if (!this.live.delete(o.id) && this.refusedCommit !== o.id) this.violations.push(`abort of ${o.id}, which is not open`);
        this.refusedCommit = null;
        return;
      case 'close':
        this.closed = true;
        return;
      case 'reply':
      case 'start-tls':
      case 'event':
        return;
      default:
        assertNever(o);
    }
  }

  private recordBody(id: string, data: Buffer): void {
    const parts = this.bodies.get(id) ?? [];
    parts.push(Buffer.from(data));
    this.bodies.set(id, parts);
    // Bounded resources (DESIGN.md): not even a refused message hands the queue more than the limit.
    const stored = parts.reduce((n, p) => n + p.length, 0);
    if (stored > this.session.cfg.maxMessageSize) this.violations.push(`body of ${id} over max_message_size`);
  }

  private recordAsk(q: Question): void {
    if (this.open) this.violations.push(`question ${q.kind} while ${this.open.kind} is open`);
    this.open = q;
    if (q.kind !== 'commit') return;
    if (!this.live.delete(q.id)) this.violations.push(`commit of ${q.id}, which is not open`);
    const { sender, recipients } = q.txn;
    this.commits.push({ id: q.id, sender, recipients: [...recipients], size: q.size, body: this.bodyOf(q.id) });
  }
}

function toBuffer(c: Input): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'latin1') : Buffer.from(c);
}

// ---------------------------------------------------------------------------
// Byte streams and chunking


export function oneByteChunks(buf: Buffer): Buffer[] {
  return [...buf].map((b) => Buffer.from([b]));
}

export const cuts = fc.array(fc.nat(), { maxLength: 12 });

/** RFC 5321 §4.5.2: the test's own dot-stuffing, independent of src's encoder; body must end in CRLF or be empty. */
export function dotStuff(body: Buffer): Buffer {
  const s = body.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(`${s}.\r\n`, 'latin1');
}

// ---------------------------------------------------------------------------
// Generators

/** Commands a client might send, in and out of sequence, well and badly formed. */
export const PLAUSIBLE = [
  'EHLO client.test', 'HELO client.test', 'EHLO', 'ehlo [192.0.2.1]', 'HELO a b',
  'MAIL FROM:<a@b.test>', 'MAIL FROM:<>', 'mail from:<a@b.test> SIZE=100', 'MAIL FROM:<a@b.test> SIZE=99999999999',
  'MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8', 'MAIL FROM:<\u00c3\u00bc@b.test> SMTPUTF8', 'MAIL FROM:a@b', 'MAIL FROM:<a@b.test> X=1',
  'MAIL FROM:<a@b.test> =1', 'MAIL FROM:<a@b.test> SMTPUTF8=yes',
  'RCPT TO:<c@d.test>', 'RCPT TO:<e@d.test>', 'RCPT TO:<postmaster>', 'RCPT TO:<c@d.test> NOTIFY=NEVER', 'RCPT TO:<>', 'rcpt to: <f@d.test>',
  'DATA', 'DATA x', 'BDAT 0', 'BDAT 4', 'BDAT 3 LAST', 'BDAT 0 LAST', 'BDAT x',
  'RSET', 'RSET x', 'NOOP', 'QUIT', 'VRFY a', 'VRFY', 'EXPN list', 'HELP', 'STARTTLS', 'STARTTLS x',
  'GET / HTTP/1.1', 'POST /x HTTP/1.0', '.', '..', '', 'X'.repeat(600), 'Received: from x', 'Subject: hi',
] as const;

const junkText = fc.string({ unit: 'binary-ascii', maxLength: 40 });
const junkBytes = fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('latin1'));
export const commandLine = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PLAUSIBLE) },
  { weight: 1, arbitrary: junkText },
  { weight: 1, arbitrary: junkBytes },
);
const ending = fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r', '', '\0\r\n');

/** Lines of text, DATA-ish dots, bare CR/LF and NUL, with mostly-correct line endings, as latin1. */
export const plausibleStream = fc
  .array(
    fc.oneof(
      { weight: 8, arbitrary: fc.tuple(commandLine, ending).map(([l, e]) => l + e) },
      { weight: 1, arbitrary: fc.constantFrom('\r\n.\r\n', '.\r\n', '\n.\n', '\r.\r', '\r\n.\n', '\0', '\r', '\n') },
      { weight: 1, arbitrary: fc.nat(12).map((n) => `BDAT ${n}${n % 2 ? ' LAST' : ''}\r\n${'y'.repeat(n)}`) },
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

/** One mail transaction, mostly well formed: MAIL, RCPTs, then the body by DATA or by BDAT chunks. */
const transaction = fc
  .record({
    rcpts: fc.array(fc.constantFrom('c@d.test', 'e@d.test', 'bad@d.test', 'postmaster'), { minLength: 0, maxLength: 3 }),
    body: fc.array(fc.oneof(fc.constantFrom('Subject: x', '', '.', '..x', 'Received: by y', 'MAIL FROM:<x@y>', '\u00ff'), fc.string({ maxLength: 20 })), { maxLength: 6 }),
    bdat: fc.option(fc.array(fc.nat(), { maxLength: 3 }), { nil: undefined }),
    flaw: fc.constantFrom('', '', '', '\n', '\r', '\r\n.\n'),
  })
  .map(({ rcpts, body, bdat, flaw }) => {
    const content = Buffer.from(body.map((l) => `${l}\r\n`).join('') + flaw, 'latin1');
    const head = `MAIL FROM:<a@b.test>\r\n${rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join('')}`;
    if (!bdat) return Buffer.concat([Buffer.from(`${head}DATA\r\n`, 'latin1'), content, Buffer.from('\r\n.\r\n')]);
    const parts = splitAt(content, bdat);
    const chunks = parts.map((p, i) => Buffer.concat([Buffer.from(`BDAT ${p.length}${i === parts.length - 1 ? ' LAST' : ''}\r\n`), p]));
    return Buffer.concat([Buffer.from(head, 'latin1'), ...chunks]);
  });

/** Dialogues that reach deep states: greetings and whole transactions, mixed with the plausible junk. */
export const dialogue = fc
  .array(
    fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom('EHLO c\r\n', 'HELO c\r\n', 'RSET\r\n', 'STARTTLS\r\n').map((l) => Buffer.from(l)) },
      { weight: 3, arbitrary: transaction },
      { weight: 1, arbitrary: plausibleStream },
    ),
    { maxLength: 8 },
  )
  .map((parts) => Buffer.concat([Buffer.from('EHLO c\r\n'), ...parts]));

/** Any byte stream worth feeding a session: half plausible junk, half dialogues. */
export const sessionInput = fc.oneof(plausibleStream, dialogue);

/**
 * An accept, or a refusal whose enhanced code has the reply's class (RFC 3463 §2).
 * Never 421: that code announces a close (RFC 5321 §3.8), which only the session decides.
 */
export type Choice = { accept: true } | { accept: false; code: number };
export const choice: fc.Arbitrary<Choice> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ accept: true } as const) },
  { weight: 1, arbitrary: fc.constantFrom(450, 451, 452, 550, 551, 552, 553, 554).map((code) => ({ accept: false as const, code })) },
);

/** A policy that answers the n-th question with choices[n mod length]. */
export function scripted(choices: readonly Choice[]): Policy {
  let n = 0;
  return () => {
    const c = choices.length === 0 ? undefined : choices[n++ % choices.length];
    return toDecision(c ?? { accept: true });
  };
}

export function toDecision(c: Choice): Decision {
  if (c.accept) return { accept: true };
  const cls = Math.floor(c.code / 100);
  return { accept: false, reply: { code: c.code, enhanced: `${cls}.7.1`, lines: ['Refused by policy'] } };
}

/** Configurations that exercise every limit, small enough to be crossed in a short test. */
export const config: fc.Arbitrary<Partial<SessionConfig>> = fc.record({
  maxMessageSize: fc.constantFrom(16, 200, 1 << 20),
  maxRecipients: fc.constantFrom(1, 2, 100),
  maxErrors: fc.constantFrom(2, 10, 1000),
  tlsAvailable: fc.boolean(),
});
export const facts: fc.Arbitrary<Partial<SessionFacts>> = fc.record({ tls: fc.boolean() });

/** A body line without CR or LF: 8-bit bytes, sometimes leading dots, sometimes empty. */
export const bodyLine = fc
  .tuple(fc.nat(3), fc.uint8Array({ maxLength: 60 }))
  .map(([dots, u]) => Buffer.concat([Buffer.from('.'.repeat(dots)), Buffer.from(u.map((b) => (b === 10 || b === 13 ? 0x20 : b)))]));

/** A message body in which every line ends in CRLF. */
export const crlfBody = fc.array(bodyLine, { maxLength: 20 }).map((lines) => Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')])));

export const localPart = fc.stringMatching(/^[a-z0-9]{1,8}$/);
export const mailbox = fc.tuple(localPart, fc.constantFrom('a.test', 'b.test', 'example.org')).map(([l, d]) => `${l}@${d}`);
