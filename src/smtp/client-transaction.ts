/**
 * One mail transaction of the outbound client (client-session.ts): MAIL, the
 * RCPTs and DATA (RFC 5321 §3.3, §4.1.1.2–4), pipelined as one group when the
 * server offers PIPELINING (RFC 2920 §3.1: DATA last in the group), otherwise
 * one command per reply; then the final reply to the data; and the outcome of
 * every recipient.
 *
 * Replies are matched to commands strictly in order (RFC 2920 §3.2: the server
 * answers a group in the order it was sent), so each recipient is decided by
 * exactly one reply: MAIL's if MAIL was refused, else its RCPT's if refused,
 * else DATA's if DATA was refused, else the final one.
 */
import { assertNever } from './assert-never';
import { mailCommand, rcptCommand, refuseMessage, refuseRecipient, type Capabilities } from './client-envelope';
import type { ClientConfig, ClientOutput, OutboundMessage, RecipientOutcome } from './client-types';
import type { Reply } from './reply';

/** What the transaction needs from the session that runs it. */
export interface TransactionHost {
  write(line: string): void;
  emit(o: ClientOutput): void;
  setPhase(p: 'envelope' | 'body' | 'dot'): void;
  protocolError(reason: string): void;
  /** The message-done is out; `failed`: the server may still hold transaction state (RSET it). */
  done(failed: boolean): void;
}

/** A command whose reply is still owed, in the order sent. */
type Awaited = { readonly cmd: 'MAIL' } | { readonly cmd: 'RCPT'; readonly index: number } | { readonly cmd: 'DATA' };

export class Transaction {
  private readonly outcomes: (RecipientOutcome | null)[];
  /** Indices of the recipients that get a RCPT, in order. */
  private readonly toSend: number[] = [];
  private readonly expect: Awaited[] = [];
  /** Lockstep: the next entry of toSend to send. */
  private next = 0;
  private mailOk = false;
  private readonly accepted: number[] = [];
  private failed = false;
  private readonly pipelined: boolean;

  constructor(
    private readonly host: TransactionHost,
    readonly msg: OutboundMessage,
    private readonly caps: Capabilities,
    private readonly cfg: ClientConfig,
  ) {
    this.outcomes = msg.recipients.map(() => null);
    this.pipelined = caps.pipelining;
  }

  /** Sends the envelope; false when the message was decided locally and no byte was sent. */
  start(): boolean {
    const refusal = refuseMessage(this.msg, this.caps, this.cfg);
    this.msg.recipients.forEach((address, i) => {
      const r = refusal ?? refuseRecipient(address);
      if (r) this.decide(i, r, true);
      else this.toSend.push(i);
    });
    if (this.toSend.length === 0) {
      this.report();
      return false;
    }
    if (this.msg.eightBit && !this.caps.eightBitMime) {
      this.host.emit({ type: 'event', event: '8bit-without-8bitmime', fields: { id: this.msg.id } });
    }
    this.host.setPhase('envelope');
    this.command(mailCommand(this.msg, this.caps), { cmd: 'MAIL' });
    if (this.pipelined) {
      for (const i of this.toSend) this.command(rcptCommand(this.address(i)), { cmd: 'RCPT', index: i });
      this.next = this.toSend.length;
      this.command('DATA\r\n', { cmd: 'DATA' });
    }
    return true;
  }

  /** The command whose reply comes next, for "connection lost after RCPT". */
  get awaiting(): string {
    return this.expect[0]?.cmd ?? 'DATA';
  }

  onEnvelopeReply(r: Reply): void {
    const e = this.expect.shift();
    if (!e) return this.host.protocolError('reply with no command awaiting it');
    // RFC 5321 §4.3.2: MAIL and RCPT succeed with 2yz only; DATA's positive answer is 354, never 2yz.
    const positive = e.cmd === 'DATA' ? r.code === 354 : klass(r) === 2;
    if (!positive && klass(r) !== 4 && klass(r) !== 5) return this.host.protocolError(`${e.cmd} answered with ${r.code}`);
    switch (e.cmd) {
      case 'MAIL': return this.onMail(r);
      case 'RCPT': return this.onRcpt(e.index, r);
      case 'DATA': return this.onData(r);
      default: return assertNever(e);
    }
  }

  /** The reply to the end of data (RFC 5321 §4.1.1.4): it decides every recipient still open. */
  onFinalReply(r: Reply): void {
    const k = klass(r);
    if (k === 3) return this.host.protocolError(`end of data answered with ${r.code}`);
    if (k !== 2) this.failed = true;
    this.decideOpen(r, false);
    this.finish();
  }

  /** The connection ended: every recipient not decided yet gets `r` (deferred). */
  abandon(r: Reply, local: boolean): void {
    this.decideOpen(r, local);
    this.report();
  }

  private onMail(r: Reply): void {
    if (klass(r) === 2) this.mailOk = true;
    else {
      this.failed = true;
      this.decideOpen(r, false);
    }
    this.advance();
  }

  private onRcpt(i: number, r: Reply): void {
    // With MAIL refused, a pipelined RCPT's answer (503 most likely) says nothing new: MAIL's reply stands.
    if (klass(r) !== 2) this.decide(i, r, false);
    else if (this.mailOk) this.accepted.push(i);
    this.advance();
  }

  private onData(r: Reply): void {
    if (r.code === 354) {
      // RFC 2920 §3.1: DATA was pipelined hoping for a recipient; a server that says 354 to none would get an empty mail.
      if (!this.mailOk || this.accepted.length === 0) return this.host.protocolError('354 to DATA with no accepted recipient');
      this.host.setPhase('body');
      return this.host.emit({ type: 'send-body', id: this.msg.id });
    }
    this.failed = true;
    this.decideOpen(r, false);
    this.finish();
  }

  /** Lockstep only: the next command once the previous one is answered. */
  private advance(): void {
    if (this.pipelined) return;
    if (!this.mailOk) return this.finish();
    const i = this.toSend[this.next];
    if (i !== undefined) {
      this.next++;
      return this.command(rcptCommand(this.address(i)), { cmd: 'RCPT', index: i });
    }
    if (this.accepted.length > 0) return this.command('DATA\r\n', { cmd: 'DATA' });
    // RFC 5321 §3.3: no accepted recipient, so no DATA.
    this.failed = true;
    this.finish();
  }

  private command(line: string, awaited: Awaited): void {
    this.host.write(line);
    this.expect.push(awaited);
  }

  private finish(): void {
    this.report();
    this.host.done(this.failed);
  }

  private report(): void {
    const recipients = this.outcomes.map((o, i) => o ?? orphan(this.address(i)));
    this.host.emit({ type: 'message-done', id: this.msg.id, recipients });
  }

  private decideOpen(r: Reply, local: boolean): void {
    this.outcomes.forEach((o, i) => {
      if (o === null) this.decide(i, r, local);
    });
  }

  private decide(i: number, r: Reply, local: boolean): void {
    if (this.outcomes[i]) return;
    const k = klass(r);
    this.outcomes[i] = { address: this.address(i), reply: r, delivered: k === 2, permanent: k === 5, local };
  }

  private address(i: number): string {
    return this.msg.recipients[i] ?? '';
  }
}

function klass(r: Reply): number {
  return Math.floor(r.code / 100);
}

/** Unreachable by construction (every path decides every recipient); deferred rather than lost if it ever happens. */
function orphan(address: string): RecipientOutcome {
  return { address, reply: { code: 451, enhanced: '4.3.0', lines: ['No outcome recorded'] }, delivered: false, permanent: false, local: true };
}
