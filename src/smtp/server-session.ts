/**
 * The SMTP server session: a pure state machine for RFC 5321 §4.1 with
 * PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8
 * (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034), CHUNKING (RFC 3030) and
 * STARTTLS (RFC 3207) and AUTH (RFC 4954, framing only: verbs-auth.ts).
 *
 * No sockets, timers or files: the adapter feeds bytes and decisions in and
 * carries outputs out (see session-types.ts). Each command is checked
 * (syntax, sequence) synchronously; anything that needs policy or the queue
 * becomes a question, and the state changes only when its decision arrives
 * ("check, decide, proceed"). One command is in flight at a time, so replies
 * always leave in the order the commands came.
 */
import { assertNever } from './assert-never';
import { LIMITS } from './limits';
import { R, reply, type Reply } from './reply';
import type { Decision, Output, Question, SessionConfig, SessionFacts, Transaction } from './session-types';
import { MailTransaction } from './transaction';
import { VERBS, type Verb } from './verbs';
import { AUTH_LINE_MAX, AUTH_REPLIES, authResponse, type SaslExchange } from './verbs-auth';

/** Where the client is in the dialogue (RFC 5321 §4.1.4 ordering). */
export type Phase =
  | 'greet' // connected (or TLS just started): EHLO/HELO expected
  | 'ready' // greeted, no transaction
  | 'mail'; // MAIL accepted: RCPT, DATA or BDAT expected

/** How the next input bytes are read. */
type Mode =
  | 'command' // CRLF-terminated command lines
  | 'overlong' // discarding the rest of a command line over 512 octets, up to its LF
  | 'sasl' // inside AUTH: the next line is a SASL response (RFC 4954 §4), up to 12288 octets
  | 'sasl-overlong' // discarding an AUTH response line over 12288 octets, up to its LF
  | 'data' // DATA content, up to CRLF.CRLF
  | 'bdat' // a BDAT chunk of known length
  | 'tls' // STARTTLS accepted: waiting for the handshake, plaintext ignored
  | 'closed'; // the session is over; input ignored

const EMPTY = Buffer.alloc(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class ServerSession {
  phase: Phase = 'greet';
  helo: string | null = null;
  esmtp = false;
  tls: boolean;
  txn: MailTransaction | null = null;
  /** The user AUTH authenticated in this session (RFC 4954), or null. */
  authUser: string | null = null;
  private mode: Mode = 'command';
  private out: Output[] = [];
  private inbuf: Buffer = EMPTY;
  private pos = 0;
  private errors = 0;
  /** The server is stopping: close at the next point where no transaction is open. */
  private draining = false;
  private pending: ((d: Decision) => void) | null = null;
  /** The AUTH exchange that the next line answers (mode 'sasl'). */
  private sasl: SaslExchange | null = null;
  /** A BDAT chunk being read: bytes left, LAST flag, and whether it feeds the transaction. */
  private bdat = { left: 0, last: false, keep: false, refusal: null as Reply | null };

  constructor(
    readonly cfg: SessionConfig,
    readonly facts: SessionFacts,
  ) {
    this.tls = facts.tls;
  }

  /** The greeting (RFC 5321 §4.2, §3.1). */
  start(): Output[] {
    this.send(reply(220, undefined, `${this.cfg.hostname} ESMTP Petrel`));
    return this.flush();
  }

  receive(data: Buffer): Output[] {
    if (this.mode === 'closed' || this.mode === 'tls') return this.flush();
    this.inbuf = this.pos < this.inbuf.length ? Buffer.concat([this.inbuf.subarray(this.pos), data]) : data;
    this.pos = 0;
    this.pump();
    return this.flush();
  }

  decide(d: Decision): Output[] {
    const proceed = this.pending;
    if (!proceed) throw new Error('decision without a question');
    this.pending = null;
    // A decision that arrives after a timeout or disconnect has nobody to answer.
    if (this.mode !== 'closed') proceed(d);
    this.pump();
    return this.flush();
  }

  /** RFC 3207 §4.2: after the handshake the session starts over; nothing learnt before it is kept. */
  tlsReady(): Output[] {
    if (this.mode !== 'tls') return this.flush();
    this.tls = true;
    this.phase = 'greet';
    this.helo = null;
    this.esmtp = false;
    this.authUser = null;
    this.mode = 'command';
    return this.flush();
  }

  timeout(): Output[] {
    if (this.mode === 'closed') return this.flush();
    this.abortTxn('idle timeout');
    this.send(R.timeout(this.cfg.hostname));
    this.close('idle timeout');
    return this.flush();
  }

  /** Graceful stop: an idle session gets 421 now; one inside a transaction finishes it first. */
  shutdown(): Output[] {
    this.draining = true;
    this.closeIfDrained();
    return this.flush();
  }

  eof(): Output[] {
    if (this.mode !== 'closed') {
      this.abortTxn('client disconnected');
      this.close('client disconnected');
    }
    return this.flush();
  }

  /** Bytes received but not yet processed (the adapter stops reading above LIMITS.pipelineBuffer). */
  get buffered(): number {
    return this.inbuf.length - this.pos;
  }

  get closed(): boolean {
    return this.mode === 'closed';
  }

  // ---- services for the verb handlers (verbs.ts) ----

  send(r: Reply): void {
    if (this.mode === 'closed') return;
    this.out.push({ type: 'reply', reply: r });
    if (r.code >= 400 && r.code !== 421) this.countError();
  }

  ask(question: Question, proceed: (d: Decision) => void): void {
    this.pending = proceed;
    this.out.push({ type: 'ask', question });
  }

  event(event: string, fields: Record<string, unknown>): void {
    this.out.push({ type: 'event', event, fields });
  }

  close(reason: string): void {
    this.mode = 'closed';
    this.inbuf = EMPTY;
    this.pos = 0;
    this.out.push({ type: 'close', reason });
  }

  /** AUTH succeeded (RFC 4954 §4): the identity holds until the session ends. */
  authenticated(user: string): void {
    this.authUser = user;
  }

  /** A 334 challenge went out: the next line is the client's SASL response, not a command. */
  awaitSasl(ex: SaslExchange): void {
    this.sasl = ex;
    this.mode = 'sasl';
  }

  /** STARTTLS accepted: every byte already received is discarded (RFC 3207 §5, CVE-2011-0411 command injection). */
  startTls(): void {
    this.mode = 'tls';
    this.inbuf = EMPTY;
    this.pos = 0;
    this.out.push({ type: 'start-tls' });
  }

  /** RSET, a new EHLO, or a finished transaction (RFC 5321 §4.1.1.5). */
  resetTxn(reason: string): void {
    this.abortTxn(reason);
    this.txn = null;
    if (this.phase === 'mail') this.phase = 'ready';
  }

  summary(): Transaction {
    const t = this.requireTxn();
    return { sender: t.sender, recipients: t.recipients, mail: t.mail, helo: this.helo ?? '', esmtp: this.esmtp, tls: this.tls };
  }

  beginData(): void {
    this.requireTxn().beginData();
    this.send(R.startData());
    this.mode = 'data';
  }

  /** Starts reading a BDAT chunk; `keep` says whether its bytes belong to the transaction. */
  beginBdat(size: number, last: boolean, keep: boolean, refusal: Reply | null): void {
    this.bdat = { left: size, last, keep, refusal };
    this.mode = 'bdat';
    if (size === 0) this.endBdatChunk();
  }

  // ---- input processing ----

  private pump(): void {
    while (this.pending === null && this.pos < this.inbuf.length) {
      if (this.closeIfDrained()) break;
      const more = this.step();
      if (!more) break;
    }
    this.closeIfDrained();
    if (this.pos >= this.inbuf.length) {
      this.inbuf = EMPTY;
      this.pos = 0;
    }
  }

  /** Processes some input in the current mode; false when it needs more bytes or must stop. */
  private step(): boolean {
    switch (this.mode) {
      case 'command':
      case 'sasl':
        return this.readLine();
      case 'overlong':
      case 'sasl-overlong':
        return this.skipOverlong();
      case 'data':
        return this.readData();
      case 'bdat':
        return this.readBdat();
      case 'tls':
      case 'closed':
        return false;
      default:
        return assertNever(this.mode);
    }
  }

  /** A command line, or in mode 'sasl' an AUTH response line. */
  private readLine(): boolean {
    const sasl = this.mode === 'sasl';
    // RFC 5321 §4.5.3.1.4: 512 octets with CRLF (RFC 4954 §4: 12288 for AUTH responses); longer input is dropped, never buffered.
    const max = sasl ? AUTH_LINE_MAX : LIMITS.commandLine;
    const lf = this.inbuf.indexOf(0x0a, this.pos);
    if (lf < 0) {
      if (this.inbuf.length - this.pos >= max) {
        this.mode = sasl ? 'sasl-overlong' : 'overlong';
        this.pos = this.inbuf.length;
      }
      return false;
    }
    const start = this.pos;
    this.pos = lf + 1;
    const crlf = lf > start && this.inbuf[lf - 1] === 0x0d;
    const exchange = this.endSasl();
    if (lf + 1 - start > max) this.send(exchange ? AUTH_REPLIES.lineTooLong() : R.lineTooLong());
    else if (!crlf) this.send(R.bareLfCommand());
    else if (exchange) authResponse(this, exchange, this.inbuf.subarray(start, lf - 1).toString('latin1'));
    else this.command(this.inbuf.subarray(start, lf - 1));
    return true;
  }

  private skipOverlong(): boolean {
    const lf = this.inbuf.indexOf(0x0a, this.pos);
    if (lf < 0) {
      this.pos = this.inbuf.length;
      return false;
    }
    this.pos = lf + 1;
    this.send(this.endSasl() ? AUTH_REPLIES.lineTooLong() : R.lineTooLong());
    return true;
  }

  /** Leaves an AUTH exchange (a response line arrived, however bad) and returns it; null outside one. */
  private endSasl(): SaslExchange | null {
    const ex = this.sasl;
    this.sasl = null;
    this.mode = 'command';
    return ex;
  }

  private command(line: Buffer): void {
    if (line.includes(0)) return this.send(R.nulInCommand());
    let text: string;
    try {
      text = utf8.decode(line);
    } catch {
      return this.send(reply(500, '5.5.2', 'Command is not valid UTF-8'));
    }
    const space = text.indexOf(' ');
    const verb = (space < 0 ? text : text.slice(0, space)).toUpperCase();
    const arg = space < 0 ? '' : text.slice(space + 1);
    const row: Verb | undefined = VERBS.get(verb);
    if (!row) return this.unknown(verb, text);
    if (!row.phases.includes(this.phase)) return this.send(row.outOfSequence(this));
    row.handle(this, arg);
  }

  private unknown(verb: string, text: string): void {
    // A browser tricked into POSTing to port 25 (cross-protocol attack): stop at once, not after 10 errors.
    if (/^(GET|POST|HEAD|PUT|CONNECT|OPTIONS|DELETE)$/.test(verb) && / HTTP\/\d/.test(text)) {
      this.send(reply(421, '4.7.0', `${this.cfg.hostname} HTTP requests are not SMTP, closing connection`));
      this.abortTxn('HTTP request');
      return this.close('HTTP request');
    }
    this.event('unknown-command', { verb: verb.slice(0, 32) });
    this.send(R.unknownCommand());
  }

  private readData(): boolean {
    const txn = this.requireTxn();
    const end = txn.feedData(this.inbuf, this.pos, this.out);
    if (end < 0) {
      this.pos = this.inbuf.length;
      return false;
    }
    this.pos = end;
    this.mode = 'command';
    this.finishBody();
    return true;
  }

  private readBdat(): boolean {
    const take = Math.min(this.bdat.left, this.inbuf.length - this.pos);
    const piece = this.inbuf.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.bdat.left -= take;
    if (this.bdat.keep && this.txn) this.txn.feedBdat(piece, this.out);
    if (this.bdat.left > 0) return false;
    this.endBdatChunk();
    return true;
  }

  /** RFC 3030 §2: every chunk gets one reply once all its octets are read, whatever they were. */
  private endBdatChunk(): void {
    this.mode = 'command';
    const { keep, last, refusal } = this.bdat;
    const txn = this.txn;
    if (!keep || !txn) return this.send(refusal ?? R.badSequence());
    if (txn.failed) {
      this.send(txn.failed);
      return this.resetTxn('BDAT chunk refused');
    }
    if (last) return this.finishBody();
    this.send(reply(250, '2.0.0', `${txn.bodySize} octets received`));
  }

  /** End of DATA or BDAT LAST: refuse what failed a check, otherwise ask for the durable commit. */
  private finishBody(): void {
    const txn = this.requireTxn();
    const refusal = txn.verdict();
    if (refusal) {
      this.event('reject', { id: txn.id, reply: refusal, stage: 'end-of-data' });
      this.send(refusal);
      return this.resetTxn('message refused');
    }
    const id = txn.id;
    if (id === null) throw new Error('body finished without a queue id');
    const question: Question = { kind: 'commit', id, txn: this.summary(), size: txn.bodySize };
    // The transaction now belongs to the queue: a disconnect from here on must not abort it.
    this.txn = null;
    this.phase = 'ready';
    this.ask(question, (d) => {
      if (!d.accept) this.out.push({ type: 'abort', id, reason: 'commit failed' });
      this.send(d.accept ? (d.reply ?? R.ok(`Queued as ${id}`)) : d.reply);
    });
  }

  private closeIfDrained(): boolean {
    if (!this.draining || this.mode !== 'command' || this.pending !== null || this.txn !== null) return false;
    this.send(R.shuttingDown(this.cfg.hostname));
    this.close('shutdown');
    return true;
  }

  private abortTxn(reason: string): void {
    const txn = this.txn;
    if (txn?.opened && txn.id !== null) this.out.push({ type: 'abort', id: txn.id, reason });
    if (txn) txn.opened = false;
  }

  private requireTxn(): MailTransaction {
    if (!this.txn) throw new Error('no transaction');
    return this.txn;
  }

  private countError(): void {
    this.errors++;
    if (this.errors >= this.cfg.maxErrors && this.mode !== 'closed') {
      this.out.push({ type: 'reply', reply: R.tooManyErrors(this.cfg.hostname) });
      this.abortTxn('too many errors');
      this.close('too many errors');
    }
  }

  private flush(): Output[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}
