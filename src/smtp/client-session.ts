/**
 * The outbound SMTP client: a pure state machine that drives ONE connection to
 * a mail server through RFC 5321 §3 / §4.1 — greeting, EHLO (HELO fallback),
 * STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954, RFC 4616), then any number
 * of MAIL/RCPT/DATA transactions, pipelined when offered (RFC 2920), with SIZE
 * (RFC 1870), 8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531) — and QUIT.
 * No sockets, timers or files: the adapter (src/delivery/smtp-out.ts) feeds
 * inputs and carries out outputs (types in client-types.ts).
 *
 * Contract:
 * - Construct with a ClientConfig once the TCP (or implicit TLS) connection is
 *   up; the client says nothing until the server's greeting arrives.
 * - Inputs, each returning the outputs to act on, in order:
 *     receive(bytes) · tlsReady() · tlsFailed(reason) · bodySent(id) ·
 *     timeout() · eof() · send(message) · quit().
 *   send() may be called at any time: messages queue and go one after
 *   another on this connection. Every message gets exactly one message-done,
 *   even if the connection fails first (then each recipient is deferred with
 *   a local reply) or is already closed or quitting (deferred at once).
 * - Outputs: write, start-tls, send-body, message-done, ready, event, close.
 *   After `close`, every input is ignored. `replyTimeout` says how long (RFC
 *   5321 §4.5.3.2) to wait before calling timeout(); null while idle, where
 *   the adapter's connection-reuse timer decides (timeout() when idle QUITs).
 * - The body: on send-body the adapter streams the message through
 *   DataEncoder (dot-stuffing, bare CR/LF turned into CRLF, then ".\r\n") and
 *   calls bodySent(id). Replies arriving meanwhile are held until then.
 * - A 4xx/5xx greeting, a refused EHLO and HELO, a TLS policy that cannot be
 *   met, a refused AUTH: the connection fails (close carries a
 *   ConnectionFailure; the caller moves on to the next MX host), queued
 *   messages are deferred, and QUIT is sent first where the dialogue is still
 *   in step. A 421 at any point, eof, timeout or a protocol error ends the
 *   connection at once: every undecided recipient of the current message is
 *   deferred ("connection lost after RCPT"); a 421 is itself the reply given.
 * - Per-recipient outcome: the MAIL reply if MAIL was refused, else the RCPT
 *   reply if that was refused, else the DATA reply if DATA was refused, else
 *   the final reply to the data. 5xx is permanent, 4xx deferred, 2xx delivered.
 * - Local refusals, nothing sent: SIZE over the server's limit (552 5.3.4),
 *   SMTPUTF8 needed but not offered (553 5.6.7), 8-bit for a 7-bit server when
 *   strict8bit (554 5.6.3, else an event and sent as is), control characters
 *   in an address (553 5.1.7 / 5.1.3).
 * - Security: STARTTLS whenever offered unless tls is 'none'; encrypt/verify
 *   without STARTTLS fail (no plaintext delivery). After 220 to STARTTLS every
 *   byte received before the handshake is dropped (response injection, from
 *   the "NO STARTTLS" study, USENIX Security 2021) and EHLO is sent again,
 *   forgetting the plaintext capabilities (RFC 3207 §4.2). AUTH is only ever
 *   sent over TLS.
 * - Sequencing: without PIPELINING one command at a time; with it MAIL, the
 *   RCPTs and DATA go as one write, DATA last (RFC 2920 §3.1). In lockstep
 *   DATA is sent only when a RCPT was accepted; a 354 with no accepted
 *   recipient is a protocol error (the body is never sent). RSET follows every
 *   failed transaction, never a successful one.
 */
import { assertNever } from './assert-never';
import { authNext, authStart, type AuthStep } from './client-auth';
import { NO_EXTENSIONS, parseEhlo, type Capabilities } from './client-envelope';
import { Transaction, type TransactionHost } from './client-transaction';
import { REPLY_TIMEOUTS, type ClientConfig, type ClientOutput, type ConnectionFailure, type OutboundMessage, type Phase, type RecipientOutcome } from './client-types';
import { reply, renderReply, type Reply } from './reply';
import { ReplyParser, type ReplyEvent } from './reply-parser';

/** Replies a server may send before the end of the data (an early error before closing) before it counts as abuse. */
const MAX_EARLY_REPLIES = 10;

export class ClientSession {
  phase: Phase = 'greeting';
  caps: Capabilities = NO_EXTENSIONS;
  tls: boolean;
  authenticated = false;
  private helloVerb: 'EHLO' | 'HELO' = 'EHLO';
  private authStep: AuthStep = 'plain';
  private readonly parser = new ReplyParser();
  /** Parsed replies not yet acted on (held while the body streams). */
  private held: ReplyEvent[] = [];
  private readonly queue: OutboundMessage[] = [];
  private txn: Transaction | null = null;
  private quitting = false;
  /** Set when QUIT was sent because the connection failed: reported on close. */
  private failure: ConnectionFailure | null = null;
  private out: ClientOutput[] = [];
  private pending: Buffer[] = [];
  private reportedDiscard = false;

  constructor(readonly cfg: ClientConfig) {
    this.tls = cfg.implicitTls === true;
  }

  // ---- inputs ----

  receive(data: Buffer): ClientOutput[] {
    if (this.phase === 'closed') return this.flush();
    if (this.phase === 'handshake') {
      this.discarded(data.length);
      return this.flush();
    }
    this.held.push(...this.parser.push(data));
    // Nothing is owed while the body streams: a server that keeps talking is only filling our memory.
    if (this.phase === 'body' && this.held.length > MAX_EARLY_REPLIES) this.protocolError('replies while the body was being sent');
    this.pump();
    return this.flush();
  }

  /** RFC 3207 §4.2: the handshake is done; start over with EHLO. */
  tlsReady(): ClientOutput[] {
    if (this.phase !== 'handshake') return this.flush();
    this.tls = true;
    this.caps = NO_EXTENSIONS;
    this.hello('EHLO');
    return this.flush();
  }

  tlsFailed(reason: string): ClientOutput[] {
    if (this.phase === 'handshake') this.fail({ phase: 'handshake', reason: `TLS handshake failed: ${reason}` }, false, '4.7.4');
    return this.flush();
  }

  bodySent(id: string): ClientOutput[] {
    if (this.phase !== 'body' || this.txn?.msg.id !== id) return this.flush();
    this.phase = 'dot';
    this.pump();
    return this.flush();
  }

  timeout(): ClientOutput[] {
    if (this.phase === 'idle') this.sendQuit();
    else if (this.phase === 'quit') this.close('timeout after QUIT');
    else if (this.phase !== 'closed') this.fail({ phase: this.phase, reason: `timeout ${this.where()}` }, false);
    return this.flush();
  }

  eof(): ClientOutput[] {
    if (this.phase === 'quit') this.close('connection closed after QUIT');
    else if (this.phase !== 'closed') this.fail({ phase: this.phase, reason: `connection lost ${this.where()}` }, false);
    return this.flush();
  }

  send(msg: OutboundMessage): ClientOutput[] {
    if (this.phase === 'closed' || this.quitting) {
      this.deferUntried(msg, reply(451, '4.4.2', this.quitting ? 'Connection is closing' : 'Connection already closed'));
      return this.flush();
    }
    this.queue.push(msg);
    if (this.phase === 'idle') this.nextMessage();
    return this.flush();
  }

  /** No more messages: QUIT once the queued ones are done. */
  quit(): ClientOutput[] {
    this.quitting = true;
    if (this.phase === 'idle') this.sendQuit();
    return this.flush();
  }

  /** Seconds to wait for the server before calling timeout() (RFC 5321 §4.5.3.2); null: no reply is awaited. */
  get replyTimeout(): number | null {
    return REPLY_TIMEOUTS[this.phase];
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  // ---- reply dispatch ----

  private pump(): void {
    while (this.held.length > 0 && this.phase !== 'body' && this.phase !== 'handshake' && this.phase !== 'closed') {
      const ev = this.held.shift() as ReplyEvent;
      if (ev.type === 'error') this.protocolError(ev.reason);
      else this.onReply(ev.reply);
    }
  }

  private onReply(r: Reply): void {
    // RFC 5321 §3.8: 421 means the server is closing the channel, whatever it was asked.
    if (r.code === 421 && this.phase !== 'quit') {
      return this.fail({ phase: this.phase, reason: `server closing ${this.where()}: ${oneLine(r)}`, reply: r }, false);
    }
    switch (this.phase) {
      case 'greeting': return this.onGreeting(r);
      case 'hello': return this.onHello(r);
      case 'starttls': return this.onStartTls(r);
      case 'auth': return this.onAuth(r);
      case 'envelope': return this.requireTxn().onEnvelopeReply(r);
      case 'dot': return this.requireTxn().onFinalReply(r);
      case 'rset': return this.onRset(r);
      case 'quit': return this.close('QUIT answered');
      case 'idle': return this.protocolError(`unexpected reply while idle: ${oneLine(r)}`);
      case 'body': case 'handshake': case 'closed': return; // pump() holds or drops these
      default: return assertNever(this.phase);
    }
  }

  /** RFC 5321 §3.1: 220 opens the session; anything else refuses it (§4.3.2: 554, or 421). */
  private onGreeting(r: Reply): void {
    if (klass(r) === 2) return this.hello('EHLO');
    if (klass(r) === 3) return this.protocolError(`greeting with code ${r.code}`);
    this.fail({ phase: 'greeting', reason: `server refused the greeting: ${oneLine(r)}`, reply: r }, true);
  }

  private hello(verb: 'EHLO' | 'HELO'): void {
    this.helloVerb = verb;
    this.phase = 'hello';
    this.write(`${verb} ${this.cfg.hostname}\r\n`);
  }

  /** RFC 5321 §3.2: a server that does not know EHLO answers 5xx; the client falls back to HELO. */
  private onHello(r: Reply): void {
    if (klass(r) === 2) {
      this.caps = this.helloVerb === 'EHLO' ? parseEhlo(r.lines) : NO_EXTENSIONS;
      return this.secure();
    }
    if (klass(r) === 5 && this.helloVerb === 'EHLO') return this.hello('HELO');
    if (klass(r) === 3) return this.protocolError(`${this.helloVerb} answered with ${r.code}`);
    this.fail({ phase: 'hello', reason: `server refused ${this.helloVerb}: ${oneLine(r)}`, reply: r }, true);
  }

  /** outbound_tls: STARTTLS when offered; encrypt/verify without it is a failure, never a plaintext delivery. */
  private secure(): void {
    const policy = this.cfg.tls;
    if (this.tls || policy === 'none') return this.authenticate();
    if (this.caps.starttls) {
      this.phase = 'starttls';
      return this.write('STARTTLS\r\n');
    }
    if (policy === 'may') return this.authenticate();
    this.policyFailure(`TLS is required (outbound_tls = ${policy}) but the server does not offer STARTTLS`);
  }

  private onStartTls(r: Reply): void {
    if (klass(r) === 2) {
      this.phase = 'handshake';
      this.reportedDiscard = false;
      // The injection defence: replies parsed after the 220, and any partial one, were sent in plaintext.
      this.discarded(this.held.length > 0 || this.parser.midReply ? 1 : 0);
      this.held = [];
      this.parser.reset();
      return this.emit({ type: 'start-tls', servername: this.cfg.servername, verify: this.cfg.tls === 'verify' });
    }
    if (klass(r) === 3) return this.protocolError(`STARTTLS answered with ${r.code}`);
    if (this.cfg.tls === 'may') {
      this.emit({ type: 'event', event: 'starttls-refused', fields: { reply: oneLine(r) } });
      return this.authenticate();
    }
    this.fail({ phase: 'starttls', reason: `server refused STARTTLS: ${oneLine(r)}`, reply: r }, true);
  }

  // ---- AUTH (client-auth.ts) ----

  private authenticate(): void {
    const auth = this.cfg.auth;
    if (!auth || this.authenticated) return this.established();
    if (!this.tls) return this.policyFailure('AUTH credentials are only sent over TLS, and this connection is not encrypted');
    const first = authStart(this.caps.auth, auth);
    if (!first) return this.policyFailure('the server offers neither AUTH PLAIN nor AUTH LOGIN');
    this.phase = 'auth';
    this.authStep = first.step;
    this.write(first.line);
  }

  private onAuth(r: Reply): void {
    const auth = this.cfg.auth;
    if (!auth) return this.protocolError('AUTH reply without AUTH');
    const move = authNext(this.authStep, r, auth);
    switch (move.kind) {
      case 'send':
        this.authStep = move.step;
        return this.write(move.line);
      case 'done':
        this.authenticated = true;
        return this.established();
      case 'refused':
        return this.fail({ phase: 'auth', reason: `server refused AUTH: ${oneLine(r)}`, reply: r }, true, '4.7.0');
      case 'error':
        return this.protocolError(move.reason);
      default:
        return assertNever(move);
    }
  }

  // ---- messages ----

  private established(): void {
    this.phase = 'idle';
    this.nextMessage();
  }

  /** Starts the next queued message that needs the server; messages refused locally finish on the spot. */
  private nextMessage(): void {
    this.phase = 'idle';
    for (let msg = this.queue.shift(); msg; msg = this.queue.shift()) {
      const txn = new Transaction(this.host, msg, this.caps, this.cfg);
      if (txn.start()) {
        this.txn = txn;
        return;
      }
    }
    if (this.quitting) this.sendQuit();
    else this.emit({ type: 'ready' });
  }

  /** What a Transaction may ask of the session. */
  private readonly host: TransactionHost = {
    write: (line) => this.write(line),
    emit: (o) => this.emit(o),
    setPhase: (p) => {
      this.phase = p;
    },
    protocolError: (reason) => this.protocolError(reason),
    done: (failed) => {
      this.txn = null;
      // RFC 5321 §4.1.1.5: after a failed transaction the server may still hold its state; reset it.
      if (!failed) return this.nextMessage();
      this.phase = 'rset';
      this.write('RSET\r\n');
    },
  };

  private onRset(r: Reply): void {
    if (klass(r) === 2) return this.nextMessage();
    this.fail({ phase: 'rset', reason: `server refused RSET: ${oneLine(r)}`, reply: r }, true);
  }

  // ---- endings ----

  private sendQuit(): void {
    this.phase = 'quit';
    this.write('QUIT\r\n');
  }

  /** RFC 3463 X.7.4: security features (TLS, AUTH) not supported. */
  private policyFailure(reason: string): void {
    this.fail({ phase: this.phase, reason }, true, '4.7.4');
  }

  /** RFC 3463 X.5.0: the stream lost its framing, so not even QUIT is sent. */
  private protocolError(reason: string): void {
    this.fail({ phase: this.phase, reason: `protocol error ${this.where()}: ${reason}` }, false, '4.5.0');
  }

  /**
   * The connection cannot go on: the current message's undecided recipients and
   * every queued message are deferred; QUIT first when the dialogue is in step.
   */
  private fail(failure: ConnectionFailure, quit: boolean, enhanced = '4.4.2'): void {
    const remote = failure.reply;
    const made = reply(451, enhanced, failure.reason);
    // A 4xx from the server is the truest reason to give; otherwise a local 4xx (X.4.2 bad connection) naming what happened.
    if (remote && klass(remote) === 4) this.txn?.abandon(remote, false);
    else this.txn?.abandon(made, true);
    this.txn = null;
    for (const msg of this.queue.splice(0)) this.deferUntried(msg, made);
    if (!quit) return this.close(failure.reason, failure);
    this.failure = failure;
    this.sendQuit();
  }

  private deferUntried(msg: OutboundMessage, r: Reply): void {
    const recipients: RecipientOutcome[] = msg.recipients.map((address) => ({
      address, reply: r, delivered: false, permanent: false, local: true,
    }));
    this.emit({ type: 'message-done', id: msg.id, recipients });
  }

  private close(reason: string, failure: ConnectionFailure | null = this.failure): void {
    this.phase = 'closed';
    this.held = [];
    this.parser.reset();
    this.emit({ type: 'close', reason: failure ? failure.reason : reason, failure });
  }

  /** "after RCPT", "while sending the message body": the stage, for the reasons recipients get. */
  private where(): string {
    switch (this.phase) {
      case 'greeting': return 'while waiting for the greeting';
      case 'hello': return `after ${this.helloVerb}`;
      case 'starttls': return 'after STARTTLS';
      case 'handshake': return 'during the TLS handshake';
      case 'auth': return 'after AUTH';
      case 'idle': return 'while idle';
      case 'envelope': return `after ${this.txn?.awaiting ?? 'MAIL'}`;
      case 'body': return 'while sending the message body';
      case 'dot': return 'after end of data';
      case 'rset': return 'after RSET';
      case 'quit': return 'after QUIT';
      case 'closed': return 'after close';
      default: return assertNever(this.phase);
    }
  }

  // ---- output plumbing ----

  /** Reported once per handshake: a server that talks before the handshake is attacking or broken. */
  private discarded(count: number): void {
    if (count === 0 || this.reportedDiscard) return;
    this.reportedDiscard = true;
    this.emit({ type: 'event', event: 'pre-tls-bytes-discarded', fields: { servername: this.cfg.servername } });
  }

  private write(text: string): void {
    this.pending.push(Buffer.from(text, 'utf8'));
  }

  /** Writes queued so far go out before the output, so the adapter sees everything in order. */
  private emit(o: ClientOutput): void {
    this.flushWrites();
    this.out.push(o);
  }

  private flushWrites(): void {
    if (this.pending.length === 0) return;
    this.out.push({ type: 'write', data: Buffer.concat(this.pending) });
    this.pending = [];
  }

  private flush(): ClientOutput[] {
    this.flushWrites();
    const out = this.out;
    this.out = [];
    return out;
  }

  private requireTxn(): Transaction {
    if (!this.txn) throw new Error('no transaction');
    return this.txn;
  }
}

function klass(r: Reply): number {
  return Math.floor(r.code / 100);
}

/** A reply on one line, for reasons and logs. */
export function oneLine(r: Reply): string {
  return renderReply(r).replace(/\r\n(?=.)/g, ' / ').trimEnd();
}
