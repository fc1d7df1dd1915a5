/**
 * The outbound client (src/smtp/client-session.ts) against a model server that
 * answers with arbitrary VALID replies (RFC 5321 §4.3.2 reply codes per command,
 * chosen at random), random extension sets, random chunking of its bytes,
 * optional reply injection after STARTTLS, and random connection faults.
 *
 * The model server checks every byte the client writes:
 *   - ordering (RFC 5321 §4.1.4, §3.3): EHLO/HELO first and again after TLS,
 *     MAIL only outside a transaction, RCPT only after MAIL, DATA only with an
 *     accepted recipient (unless the client could not yet know: pipelined);
 *   - RFC 2920: a command is sent before the previous reply has arrived only
 *     when PIPELINING was offered and every unanswered command is MAIL, RCPT
 *     or RSET (EHLO, STARTTLS, AUTH, DATA and QUIT end a group);
 *   - no body byte before the 354 has reached the client, and no plaintext
 *     byte between the 220 to STARTTLS and the handshake (RFC 3207 §4);
 *   - parameters only as offered (SIZE within the limit, BODY=8BITMIME,
 *     SMTPUTF8), MAIL only over TLS under encrypt/verify, AUTH only over TLS.
 * Then every message must get exactly one outcome per recipient, and each
 * outcome must be the reply the model decided it by (replies carry unique
 * texts, so attribution is exact), or a deferral when no reply decided it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientSession } from '../src/smtp/client-session';
import type { ClientConfig, ClientOutput, OutboundMessage, RecipientOutcome, TlsPolicy } from '../src/smtp/client-types';
import { DataDecoder, encodeData } from '../src/smtp/data-decoder';
import { renderReply, reply as mkReply, type Reply } from '../src/smtp/reply';

interface Ext {
  pipelining: boolean;
  size: number | null;
  eightBitMime: boolean;
  smtputf8: boolean;
  starttls: boolean;
  auth: string[];
  enhanced: boolean;
}
const NONE: Ext = { pipelining: false, size: null, eightBitMime: false, smtputf8: false, starttls: false, auth: [], enhanced: false };

type Verb = 'GREETING' | 'EHLO' | 'HELO' | 'STARTTLS' | 'AUTH' | 'MAIL' | 'RCPT' | 'DATA' | 'END' | 'RSET' | 'QUIT';
interface Sent { readonly verb: Verb; readonly reply: Reply; readonly end: number }
interface MessageLog { mail?: Sent; rcpts: Map<string, Sent>; data?: Sent; final?: Sent }
type Pick = <T>(options: readonly T[]) => T;

const PIPELINABLE: readonly Verb[] = ['MAIL', 'RCPT', 'RSET'];
const NON_ASCII = /[^\x00-\x7f]/;

function needsUtf8(m: OutboundMessage): boolean {
  return m.smtputf8 || NON_ASCII.test(m.from) || m.recipients.some((r) => NON_ASCII.test(r));
}

class ModelServer {
  readonly violations: string[] = [];
  readonly log: Sent[] = [];
  readonly messages = new Map<string, MessageLog>();
  /** Bytes the server has written / the harness has handed to the client. */
  out: Buffer = Buffer.alloc(0);
  delivered = 0;
  mode: 'command' | 'data' | 'tls-wait' | 'login-user' | 'login-pass' | 'refused' | 'closing' = 'command';
  ext: Ext = NONE;
  tls: boolean;
  hello = false;
  authed = false;
  private txn: { from: string; accepted: number } | null = null;
  /** The last MAIL, for pipelined RCPT/DATA that follow a refused MAIL. */
  private lastMail: { from: string; sent: Sent } | null = null;
  private greetingEnd = 0;
  private closingEnd = 0;
  private dataStart = 0;
  private decoder: DataDecoder | null = null;
  private inbuf = Buffer.alloc(0);
  private n = 0;

  constructor(
    private readonly pick: Pick,
    private readonly chance: (percent: number) => boolean,
    private readonly plain: Ext,
    private readonly secured: Ext,
    private readonly cfg: ClientConfig,
    private readonly byFrom: ReadonlyMap<string, OutboundMessage>,
  ) {
    this.tls = cfg.implicitTls === true;
    const code = chance(90) ? 220 : pick([421, 554]);
    this.greetingEnd = this.send('GREETING', this.reply(code, 'mx.model ESMTP', false)).end;
    // RFC 5321 §3.1: after 554 the server waits for QUIT; after 421 it closes.
    if (code === 421) this.closeAfter();
    if (code === 554) this.mode = 'refused';
  }

  get undelivered(): number {
    return this.out.length - this.delivered;
  }

  /** The peer may only react to what it has received in full. */
  private seen(end: number): boolean {
    return this.delivered >= end;
  }

  private violation(what: string): void {
    this.violations.push(what);
  }

  private reply(code: number, text: string, enhanced = true): Reply {
    const n = ++this.n;
    const klass = Math.floor(code / 100);
    const enh = enhanced && this.ext.enhanced && klass !== 3 ? `${klass}.${this.pick([0, 1, 5, 7])}.${this.pick([0, 1, 10])}` : undefined;
    const lines = [`#${n} ${text}`];
    if (this.chance(20)) lines.push(`#${n} continued`);
    return mkReply(code, enh, ...lines);
  }

  private send(verb: Verb, r: Reply): Sent {
    this.out = Buffer.concat([this.out, Buffer.from(renderReply(r), 'utf8')]);
    const sent = { verb, reply: r, end: this.out.length };
    this.log.push(sent);
    return sent;
  }

  /** A reply for `verb`: mostly the success code, otherwise one of the valid failures. */
  private answer(verb: Verb, ok: number, failures: readonly number[], text: string): Sent {
    const code = this.chance(85) ? ok : this.pick(failures);
    const sent = this.send(verb, this.reply(code, text));
    if (code === 421 || code === 221) this.closeAfter();
    return sent;
  }

  private closeAfter(): void {
    this.mode = 'closing';
    this.closingEnd = this.out.length;
  }

  receive(data: Buffer): void {
    if (this.mode === 'tls-wait') return this.violation('plaintext sent between the 220 to STARTTLS and the handshake');
    this.inbuf = Buffer.concat([this.inbuf, data]);
    for (;;) {
      if (this.mode === 'data') {
        if (!this.readData()) return;
        continue;
      }
      const lf = this.inbuf.indexOf(0x0a);
      if (lf < 0) return;
      if (this.inbuf[lf - 1] !== 0x0d) this.violation('a command line not ended by CRLF');
      const line = this.inbuf.subarray(0, Math.max(0, lf - 1)).toString('utf8');
      this.inbuf = this.inbuf.subarray(lf + 1);
      this.line(line);
    }
  }

  /** RFC 3207 §4.2: the handshake is over; the session starts from scratch. */
  handshake(): void {
    if (this.mode !== 'tls-wait') this.violation('TLS handshake without an accepted STARTTLS');
    this.mode = 'command';
    this.tls = true;
    this.hello = false;
    this.ext = NONE;
    this.txn = null;
  }

  private readData(): boolean {
    if (this.inbuf.length === 0) return false;
    if (!this.seen(this.dataStart)) this.violation('body bytes before the 354 reached the client');
    const decoder = this.decoder ?? new DataDecoder(1 << 30);
    this.decoder = decoder;
    const end = decoder.push(this.inbuf, 0, []);
    if (end < 0) {
      this.inbuf = Buffer.alloc(0);
      return false;
    }
    if (decoder.outcome.bareLineEnding) this.violation('bare CR or LF in the data');
    this.inbuf = this.inbuf.subarray(end);
    this.decoder = null;
    this.mode = 'command';
    const final = this.answer('END', 250, [451, 452, 552, 554, 421], 'end of data');
    const log = this.txn && this.messages.get(this.txn.from);
    if (log) log.final = final;
    this.txn = null; // RFC 5321 §4.1.1.4: the transaction ends with the final reply, whatever it says.
    return true;
  }

  private line(line: string): void {
    if (this.mode === 'closing') {
      if (this.seen(this.closingEnd)) this.violation(`"${line}" after the server closed the session`);
      return;
    }
    if (this.mode === 'login-user' || this.mode === 'login-pass') return this.loginStep(line);
    if (this.mode === 'refused' && line !== 'QUIT') return this.violation(`"${line}" after a 554 greeting`);
    const verb = (line.split(' ')[0] ?? '').toUpperCase();
    this.checkOrder(verb);
    switch (verb) {
      case 'EHLO': return this.onHello(true);
      case 'HELO': return this.onHello(false);
      case 'STARTTLS': return this.onStartTls();
      case 'AUTH': return this.onAuth(line);
      case 'MAIL': return this.onMail(line);
      case 'RCPT': return this.onRcpt(line);
      case 'DATA': return this.onData();
      case 'RSET':
        this.txn = null;
        this.answer('RSET', 250, [421], 'reset');
        return;
      case 'QUIT':
        this.send('QUIT', this.reply(221, 'bye'));
        return this.closeAfter();
      default:
        this.violation(`unknown command "${line.slice(0, 40)}"`);
    }
  }

  /** RFC 2920 §3.1 and lockstep: which unanswered commands may precede this one. */
  private checkOrder(verb: string): void {
    if (!this.seen(this.greetingEnd)) this.violation(`${verb} before the greeting reached the client`);
    const waiting = this.log.find((s) => !this.seen(s.end));
    if (!waiting) return;
    const allowed = this.ext.pipelining && this.log.every((s) => this.seen(s.end) || PIPELINABLE.includes(s.verb));
    if (!allowed) this.violation(`${verb} sent before the reply to ${waiting.verb} reached the client`);
  }

  private onHello(esmtp: boolean): void {
    this.txn = null;
    const sent = esmtp
      ? this.answer('EHLO', 250, [500, 502, 550, 421], 'hello')
      : this.answer('HELO', 250, [502, 504, 550, 421], 'hello');
    if (sent.reply.code !== 250) return;
    this.hello = true;
    this.ext = esmtp ? (this.tls ? this.secured : this.plain) : NONE;
    if (!esmtp) return;
    // The EHLO reply lists the keywords (RFC 5321 §4.1.1.1); replace the plain 250 with it.
    this.out = this.out.subarray(0, this.out.length - Buffer.byteLength(renderReply(sent.reply)));
    this.log.pop();
    this.send('EHLO', mkReply(250, undefined, 'mx.model greets you', ...keywords(this.ext, this.pick)));
  }

  private onStartTls(): void {
    if (!this.hello || !this.ext.starttls || this.tls || this.txn) this.violation('STARTTLS not offered or out of sequence');
    if (this.cfg.tls === 'none') this.violation('STARTTLS under outbound_tls = none');
    const sent = this.answer('STARTTLS', 220, [454, 501, 421], 'ready for TLS');
    if (sent.reply.code !== 220) return;
    this.mode = 'tls-wait';
    // The "NO STARTTLS" attack: replies injected after the 220, before the handshake.
    if (this.chance(30)) this.out = Buffer.concat([this.out, Buffer.from('250-injected\r\n250 PIPELINING\r\n250 2.1.0 ok\r\n')]);
  }

  private onAuth(line: string): void {
    const [, mech = '', initial] = line.split(' ');
    if (!this.cfg.auth) this.violation('AUTH without credentials configured');
    if (!this.tls) this.violation('AUTH sent without TLS');
    if (!this.hello || this.authed || this.txn || !this.ext.auth.includes(mech)) this.violation('AUTH not offered or out of sequence');
    const auth = this.cfg.auth ?? { user: '', password: '' };
    if (mech === 'PLAIN') {
      if (initial !== Buffer.from(`\0${auth.user}\0${auth.password}`).toString('base64')) this.violation('wrong AUTH PLAIN response');
      this.authed = this.answer('AUTH', 235, [535, 454, 534, 421], 'authenticated').reply.code === 235;
      return;
    }
    if (this.answer('AUTH', 334, [535, 421], 'VXNlcm5hbWU6').reply.code === 334) this.mode = 'login-user';
  }

  private loginStep(line: string): void {
    const auth = this.cfg.auth ?? { user: '', password: '' };
    const expected = this.mode === 'login-user' ? auth.user : auth.password;
    if (line !== Buffer.from(expected).toString('base64')) this.violation(`wrong AUTH LOGIN ${this.mode}`);
    this.checkOrder('AUTH');
    if (this.mode === 'login-user') {
      this.mode = 'command';
      if (this.answer('AUTH', 334, [535, 421], 'UGFzc3dvcmQ6').reply.code === 334) this.mode = 'login-pass';
      return;
    }
    this.mode = 'command';
    this.authed = this.answer('AUTH', 235, [535, 421], 'authenticated').reply.code === 235;
  }

  private onMail(line: string): void {
    const m = /^MAIL FROM:<([^>]*)>((?: [A-Z0-9]+(?:=\S+)?)*)$/.exec(line);
    const msg = m && this.byFrom.get(m[1] ?? '');
    if (!m || !msg) return this.violation(`malformed MAIL "${line}"`);
    this.checkMail(msg, (m[2] ?? '').trim().split(' ').filter(Boolean));
    const log: MessageLog = { rcpts: new Map() };
    this.messages.set(msg.from, log);
    log.mail = this.answer('MAIL', 250, [451, 452, 550, 552, 553, 555, 421], 'sender');
    this.lastMail = { from: msg.from, sent: log.mail };
    if (log.mail.reply.code === 250) this.txn = { from: msg.from, accepted: 0 };
  }

  private checkMail(msg: OutboundMessage, params: string[]): void {
    if (!this.hello) this.violation('MAIL before a successful EHLO/HELO');
    if (this.txn) this.violation('MAIL inside an open transaction (no RSET after a failure?)');
    if ((this.cfg.tls === 'encrypt' || this.cfg.tls === 'verify') && !this.tls) this.violation('MAIL in plaintext under encrypt/verify');
    if (this.cfg.auth && !this.authed) this.violation('MAIL before AUTH succeeded');
    const want: string[] = [];
    if (this.ext.size !== null) want.push(`SIZE=${msg.size}`);
    if (this.ext.size && msg.size > this.ext.size) this.violation('a message over the server SIZE was sent');
    if (msg.eightBit && this.ext.eightBitMime) want.push('BODY=8BITMIME');
    if (msg.eightBit && !this.ext.eightBitMime && this.cfg.strict8bit) this.violation('8-bit message sent under strict8bit');
    if (needsUtf8(msg)) want.push('SMTPUTF8');
    if (needsUtf8(msg) && !this.ext.smtputf8) this.violation('SMTPUTF8 used but not offered');
    if (params.join(' ') !== want.join(' ')) this.violation(`MAIL parameters "${params.join(' ')}", expected "${want.join(' ')}"`);
  }

  /** A pipelined command after a MAIL refusal the client has not seen yet is legitimate (RFC 2920 §3.1). */
  private unseenRefusedMail(): boolean {
    return this.lastMail !== null && this.lastMail.sent.reply.code !== 250 && !this.seen(this.lastMail.sent.end);
  }

  private onRcpt(line: string): void {
    const m = /^RCPT TO:<([^>]*)>$/.exec(line);
    if (!m) return this.violation(`malformed RCPT "${line}"`);
    const log = this.lastMail && this.messages.get(this.lastMail.from);
    if (!this.txn) {
      if (!this.unseenRefusedMail()) this.violation('RCPT without MAIL');
      const sent = this.send('RCPT', this.reply(503, 'need MAIL first'));
      log?.rcpts.set(m[1] ?? '', sent);
      return;
    }
    const sent = this.answer('RCPT', this.pick([250, 251]), [450, 451, 452, 550, 551, 552, 553, 421], 'recipient');
    if (sent.reply.code < 300) this.txn.accepted++;
    log?.rcpts.set(m[1] ?? '', sent);
  }

  private onData(): void {
    const log = this.lastMail && this.messages.get(this.lastMail.from);
    if (!this.txn || this.txn.accepted === 0) {
      const couldKnow = this.txn ? log && [...log.rcpts.values(), log.mail].every((s) => s && this.seen(s.end)) : !this.unseenRefusedMail();
      if (couldKnow) this.violation('DATA with no accepted recipient');
      const sent = this.send('DATA', this.reply(this.txn ? 554 : 503, 'no valid recipients'));
      if (log) log.data = sent;
      return;
    }
    const sent = this.answer('DATA', 354, [451, 554, 421], 'go ahead');
    if (log) log.data = sent;
    if (sent.reply.code !== 354) return;
    this.mode = 'data';
    this.dataStart = sent.end;
  }
}

function keywords(ext: Ext, pick: Pick): string[] {
  const k: string[] = [];
  const cased = (s: string) => pick([s, s.toLowerCase()]);
  if (ext.pipelining) k.push(cased('PIPELINING'));
  if (ext.size !== null) k.push(ext.size === 0 ? 'SIZE' : `SIZE ${ext.size}`);
  if (ext.eightBitMime) k.push(cased('8BITMIME'));
  if (ext.smtputf8) k.push('SMTPUTF8');
  if (ext.starttls) k.push(cased('STARTTLS'));
  if (ext.enhanced) k.push('ENHANCEDSTATUSCODES');
  if (ext.auth.length > 0) k.push(pick([`AUTH ${ext.auth.join(' ')}`, `AUTH=${ext.auth.join(' ')}`]));
  if (pick([true, false])) k.push('CHUNKING', 'X-UNKNOWN-EXTENSION 1');
  return k;
}

// ---------------------------------------------------------------------------
// Scenario and harness

const ext: fc.Arbitrary<Ext> = fc.record({
  pipelining: fc.boolean(),
  size: fc.option(fc.constantFrom(0, 500, 1500, 100000), { nil: null }),
  eightBitMime: fc.boolean(),
  smtputf8: fc.boolean(),
  starttls: fc.boolean(),
  auth: fc.subarray(['PLAIN', 'LOGIN', 'CRAM-MD5']),
  enhanced: fc.boolean(),
});

const scenario = fc.record({
  tls: fc.constantFrom<TlsPolicy>('none', 'may', 'may', 'may', 'encrypt', 'verify'),
  implicitTls: fc.boolean(),
  auth: fc.oneof(
    { arbitrary: fc.constant(null), weight: 3 },
    { arbitrary: fc.record({ user: fc.constantFrom('u', 'ümlaut'), password: fc.string({ maxLength: 8 }) }), weight: 1 },
  ),
  strict8bit: fc.boolean(),
  plain: ext,
  secured: ext.map((e) => ({ ...e, starttls: false })),
  messages: fc.array(
    fc.record({
      recipients: fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'ü'), { maxLength: 4 }),
      size: fc.integer({ min: 1, max: 2000 }),
      eightBit: fc.boolean(),
      smtputf8: fc.boolean(),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  upfront: fc.nat(4),
  fault: fc.oneof(
    { arbitrary: fc.constant(null), weight: 2 },
    { arbitrary: fc.record({ at: fc.nat(150), kind: fc.constantFrom('eof', 'timeout') }), weight: 1 },
  ),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function buildMessages(s: Scenario): OutboundMessage[] {
  return s.messages.map((m, i) => ({
    id: `m${i}`,
    from: `s${i}@petrel.test`,
    recipients: m.recipients.map((r, j) => `${r}${j}.m${i}@x.org`),
    size: m.size,
    eightBit: m.eightBit,
    smtputf8: m.smtputf8 && i % 2 === 0,
  }));
}

/** Whether the client may refuse `m` locally against the extensions it last saw. */
function refusable(m: OutboundMessage, e: Ext, cfg: ClientConfig): boolean {
  return (e.size !== null && e.size > 0 && m.size > e.size) || (needsUtf8(m) && !e.smtputf8) || (m.eightBit && !e.eightBitMime && cfg.strict8bit === true);
}

/** Per recipient, the reply that decides it as far as the client has received replies; null: undecided (deferred). */
function expected(m: OutboundMessage, log: MessageLog | undefined, seen: (s: Sent) => boolean): (Reply | null)[] {
  const out: (Reply | null)[] = m.recipients.map(() => null);
  const decideOpen = (r: Reply) => out.forEach((o, i) => { if (o === null) out[i] = r; });
  if (!log?.mail || !seen(log.mail)) return out;
  if (log.mail.reply.code !== 250) return (decideOpen(log.mail.reply), out);
  for (const [i, address] of m.recipients.entries()) {
    const r = log.rcpts.get(address);
    if (!r || !seen(r) || r.reply.code < 300) continue;
    if (r.reply.code === 421) return (decideOpen(r.reply), out);
    out[i] = r.reply;
  }
  if (log.data && seen(log.data) && log.data.reply.code !== 354) return (decideOpen(log.data.reply), out);
  if (log.final && seen(log.final)) decideOpen(log.final.reply);
  return out;
}

function run(g: fc.GeneratorValue, s: Scenario): void {
  const pick: Pick = (options) => g(fc.constantFrom, ...options);
  const chance = (p: number) => g(fc.integer, { min: 0, max: 99 }) < p;
  const cfg: ClientConfig = { hostname: 'petrel.test', servername: 'mx.model', tls: s.tls, implicitTls: s.implicitTls, auth: s.auth, strict8bit: s.strict8bit };
  const messages = buildMessages(s);
  const server = new ModelServer(pick, chance, s.plain, s.secured, cfg, new Map(messages.map((m) => [m.from, m])));
  const client = new ClientSession(cfg);
  const done = new Map<string, RecipientOutcome[][]>();
  let closed: Extract<ClientOutput, { type: 'close' }> | null = null;
  let ready = false;
  let body: string | null = null;
  let tls = false;
  let next = 0;
  const take = (outs: ClientOutput[]) => {
    for (const o of outs) {
      // After close only a message given late may still be answered (deferred at once).
      if (closed && o.type !== 'message-done') throw new Error(`output after close: ${o.type}`);
      if (o.type === 'write') server.receive(o.data);
      else if (o.type === 'message-done') done.set(o.id, [...(done.get(o.id) ?? []), [...o.recipients]]);
      else if (o.type === 'ready') ready = true;
      else if (o.type === 'send-body') body = o.id;
      else if (o.type === 'start-tls') tls = true;
      else if (o.type === 'close') closed = o;
    }
  };
  for (; next < Math.min(s.upfront, messages.length); next++) take(client.send(messages[next] as OutboundMessage));
  for (let step = 0; !closed; step++) {
    if (step > 5000) throw new Error('runaway conversation');
    if (s.fault && step === s.fault.at) {
      take(s.fault.kind === 'eof' ? client.eof() : client.timeout());
      if (s.fault.kind === 'eof') take(client.eof());
      continue;
    }
    if (body !== null) {
      server.receive(encodeData(Buffer.from(`Subject: ${body}\r\n\r\n.dot\nbare LF\r\n`)));
      const id: string = body;
      body = null;
      take(client.bodySent(id));
    } else if (server.undelivered > 0) {
      const n = g(fc.integer, { min: 1, max: 80 });
      const chunk = server.out.subarray(server.delivered, server.delivered + n);
      server.delivered += chunk.length;
      take(client.receive(chunk));
    } else if (tls) {
      tls = false;
      server.handshake();
      take(client.tlsReady());
    } else if (server.mode === 'closing') {
      take(client.eof());
    } else if (ready) {
      ready = false;
      take(next < messages.length ? client.send(messages[next++] as OutboundMessage) : client.quit());
    } else {
      throw new Error(`deadlock: client in phase ${client.phase}, server in mode ${server.mode}`);
    }
  }
  for (; next < messages.length; next++) take(client.send(messages[next] as OutboundMessage));
  expect(server.violations).toEqual([]);
  const clean = (closed as Extract<ClientOutput, { type: 'close' }> | null)?.failure === null && s.fault === null;
  for (const m of messages) checkMessage(m, done.get(m.id), server, cfg, clean);
}

function checkMessage(m: OutboundMessage, reports: RecipientOutcome[][] | undefined, server: ModelServer, cfg: ClientConfig, clean: boolean): void {
  expect(reports, `message-done for ${m.id}`).toHaveLength(1);
  const outcomes = reports?.[0] ?? [];
  expect(outcomes.map((o) => o.address)).toEqual(m.recipients);
  const log = server.messages.get(m.from);
  if (!log) {
    // Never offered to the server: decided locally, bounced only for a reason the server's extensions give.
    const canRefuse = refusable(m, server.ext, cfg);
    for (const o of outcomes) {
      expect(o.local && !o.delivered).toBe(true);
      if (o.permanent) expect(canRefuse).toBe(true);
      if (clean) expect(o.permanent).toBe(canRefuse);
    }
    if (clean && !canRefuse) expect(m.recipients).toEqual([]);
    return;
  }
  const want = expected(m, log, (s) => server.delivered >= s.end);
  outcomes.forEach((o, i) => {
    const r = want[i];
    if (r === null || r === undefined) {
      expect(o.delivered || o.permanent, `${o.address} should be deferred`).toBe(false);
      return;
    }
    expect(o.reply, o.address).toEqual(r);
    expect([o.local, o.delivered, o.permanent]).toEqual([false, r.code < 300, r.code >= 500]);
  });
}

describe('the client against a model server with arbitrary valid replies', () => {
  it('never sends out of order, never sends the body before 354, and reports each recipient exactly once, as the server decided', () => {
    fc.assert(
      fc.property(fc.gen(), scenario, (g, s) => run(g, s)),
      { numRuns: 4000 },
    );
  });

  it('the model can see failures: a client that ignores PIPELINING rules is caught', () => {
    // Self-test of the model: replaying a lockstep server script to a pipelining write must be flagged.
    const cfg: ClientConfig = { hostname: 'h', servername: 'mx', tls: 'none' };
    const msg: OutboundMessage = { id: 'm0', from: 's0@petrel.test', recipients: ['a@x.org'], size: 1, eightBit: false, smtputf8: false };
    const server = new ModelServer((o) => o[0] as never, () => true, { ...NONE }, NONE, cfg, new Map([[msg.from, msg]]));
    server.delivered = server.out.length;
    server.receive(Buffer.from('EHLO h\r\n'));
    server.delivered = server.out.length;
    server.receive(Buffer.from('MAIL FROM:<s0@petrel.test>\r\nRCPT TO:<a@x.org>\r\n'));
    expect(server.violations).toEqual(['RCPT sent before the reply to MAIL reached the client']);
  });
});
