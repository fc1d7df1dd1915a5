/**
 * Scripted conversations of the outbound SMTP client (src/smtp/client-session.ts),
 * in the manner of Go's net/smtp "faker" transcripts: the server's replies are fed
 * in, and the exact bytes the client wrote are compared with the expected
 * transcript. RFC 5321 §3 / §4.1, RFC 2920 (PIPELINING), RFC 3207 (STARTTLS and
 * the "NO STARTTLS" response injection), RFC 4954 (AUTH), RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8).
 */
import { describe, expect, it } from 'vitest';
import { ClientSession } from '../src/smtp/client-session';
import type { ClientConfig, ClientOutput, ConnectionFailure, OutboundMessage, RecipientOutcome } from '../src/smtp/client-types';
import { encodeData } from '../src/smtp/data-decoder';

const CFG: ClientConfig = { hostname: 'petrel.test', servername: 'mx.example', tls: 'may' };

function msg(id: string, recipients: string[], extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return { id, from: 'alice@petrel.test', recipients, size: 100, eightBit: false, smtputf8: false, ...extra };
}

/** Plays the adapter: records every output, keeps what the client wrote as one transcript. */
class Harness {
  readonly session: ClientSession;
  readonly outputs: ClientOutput[] = [];
  /** Every byte the client wrote, bodies included (as the adapter streams them). */
  client = '';
  readonly writes: string[] = [];
  constructor(cfg: Partial<ClientConfig> = {}, private readonly bodies = new Map<string, string>()) {
    this.session = new ClientSession({ ...CFG, ...cfg });
  }
  private take(out: ClientOutput[]): this {
    for (const o of out) {
      this.outputs.push(o);
      if (o.type === 'write') {
        this.writes.push(o.data.toString('utf8'));
        this.client += o.data.toString('utf8');
      }
    }
    return this;
  }
  server(text: string): this {
    return this.take(this.session.receive(Buffer.from(text, 'utf8')));
  }
  send(m: OutboundMessage, body = 'Subject: hi\r\n\r\nHello.\r\n'): this {
    this.bodies.set(m.id, body);
    return this.take(this.session.send(m));
  }
  /** The adapter's part after send-body: DataEncoder output onto the wire, then bodySent(). */
  body(): this {
    const last = this.outputs.filter((o) => o.type === 'send-body').at(-1);
    if (!last || last.type !== 'send-body') throw new Error('no send-body output');
    this.client += encodeData(Buffer.from(this.bodies.get(last.id) ?? '', 'utf8')).toString('utf8');
    return this.take(this.session.bodySent(last.id));
  }
  tlsReady(): this { return this.take(this.session.tlsReady()); }
  quit(): this { return this.take(this.session.quit()); }
  eof(): this { return this.take(this.session.eof()); }
  timeout(): this { return this.take(this.session.timeout()); }
  of<T extends ClientOutput['type']>(type: T): Extract<ClientOutput, { type: T }>[] {
    return this.outputs.filter((o): o is Extract<ClientOutput, { type: T }> => o.type === type);
  }
  done(id: string): readonly RecipientOutcome[] {
    const d = this.of('message-done').filter((o) => o.id === id);
    expect(d).toHaveLength(1);
    return d[0]?.recipients ?? [];
  }
  /** Per recipient: "address code delivered|deferred|bounced" (+ " local"). */
  summary(id: string): string[] {
    return this.done(id).map((o) => `${o.address} ${o.reply.code} ${o.delivered ? 'delivered' : o.permanent ? 'bounced' : 'deferred'}${o.local ? ' local' : ''}`);
  }
  get failure(): ConnectionFailure | null | undefined {
    const c = this.of('close');
    expect(c).toHaveLength(1);
    return c[0]?.failure;
  }
}

const GREET = '220 mx.example ESMTP\r\n';
const lines = (...l: string[]) => l.map((x) => `${x}\r\n`).join('');
const BODY = 'Subject: hi\r\n\r\nHello.\r\n.\r\n';

describe('plain transaction, one command per reply', () => {
  it('delivers one message and quits', () => {
    const h = new Harness().send(msg('q1', ['bob@example.org']));
    h.server(GREET).server('250-mx.example\r\n250 8BITMIME\r\n').server('250 2.1.0 ok\r\n').server('250 2.1.5 ok\r\n');
    h.server('354 go ahead\r\n').body().server('250 2.0.0 queued as X\r\n');
    expect(h.of('ready')).toHaveLength(1);
    h.quit().server('221 2.0.0 bye\r\n');
    expect(h.client).toBe(lines('EHLO petrel.test', 'MAIL FROM:<alice@petrel.test>', 'RCPT TO:<bob@example.org>', 'DATA') + BODY + 'QUIT\r\n');
    expect(h.summary('q1')).toEqual(['bob@example.org 250 delivered']);
    expect(h.done('q1')[0]?.reply).toEqual({ code: 250, enhanced: '2.0.0', lines: ['queued as X'] });
    expect(h.failure).toBeNull();
  });

  it('writes nothing before the greeting, and nothing before each reply', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org']));
    expect(h.writes).toEqual([]);
    h.server(GREET).server('250 mx.example\r\n').server('250 ok\r\n');
    expect(h.writes).toEqual(['EHLO petrel.test\r\n', 'MAIL FROM:<alice@petrel.test>\r\n', 'RCPT TO:<a@x.org>\r\n']);
    h.server('25');
    expect(h.writes).toHaveLength(3);
  });

  it('falls back to HELO when EHLO gets 5xx (RFC 5321 §3.2) and then uses no extension', () => {
    const h = new Harness({ tls: 'may' }).send(msg('q1', ['bob@example.org'], { eightBit: true }));
    h.server(GREET).server('502 5.5.1 EHLO not implemented\r\n').server('250 mx.example\r\n');
    h.server('250 ok\r\n250 ok\r\n354 go\r\n').body().server('250 ok\r\n');
    expect(h.client).toBe(lines('EHLO petrel.test', 'HELO petrel.test', 'MAIL FROM:<alice@petrel.test>', 'RCPT TO:<bob@example.org>', 'DATA') + BODY);
    expect(h.of('event').map((e) => e.event)).toEqual(['8bit-without-8bitmime']);
  });
});

describe('PIPELINING (RFC 2920)', () => {
  it('MAIL, every RCPT and DATA go in one write; SIZE= and BODY=8BITMIME when offered', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org'], { size: 1234, eightBit: true }));
    h.server(GREET).server(lines('250-mx.example', '250-PIPELINING', '250-SIZE 10000', '250 8BITMIME'));
    expect(h.writes.at(-1)).toBe(lines('MAIL FROM:<alice@petrel.test> SIZE=1234 BODY=8BITMIME', 'RCPT TO:<a@x.org>', 'RCPT TO:<b@x.org>', 'DATA'));
    h.server(lines('250 2.1.0 ok', '550 5.1.1 no such user', '250 2.1.5 ok', '354 go')).body().server('250 2.0.0 ok\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 550 bounced', 'b@x.org 250 delivered']);
  });

  it('all RCPTs refused: DATA is refused too, then RSET; the body is never sent', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org'])).send(msg('q2', ['c@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250 PIPELINING'));
    h.server(lines('250 ok', '550 5.1.1 no', '450 4.2.1 later', '554 5.5.1 no valid recipients'));
    expect(h.summary('q1')).toEqual(['a@x.org 550 bounced', 'b@x.org 450 deferred']);
    expect(h.writes.at(-1)).toBe('RSET\r\n');
    expect(h.of('send-body')).toEqual([]);
    h.server('250 2.0.0 reset\r\n');
    expect(h.writes.at(-1)).toBe(lines('MAIL FROM:<alice@petrel.test>', 'RCPT TO:<c@x.org>', 'DATA'));
  });

  it('a 354 when no recipient was accepted is a protocol error: no body, connection closed', () => {
    const h = new Harness().send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250 PIPELINING')).server(lines('250 ok', '550 5.1.1 no', '354 go'));
    expect(h.of('send-body')).toEqual([]);
    expect(h.summary('q1')).toEqual(['a@x.org 550 bounced']);
    expect(h.failure?.reason).toMatch(/^protocol error after DATA: 354 to DATA with no accepted recipient/);
  });

  it('MAIL refused: every recipient gets the MAIL reply, not the 503s that follow', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250 PIPELINING'));
    h.server(lines('553 5.1.8 bad sender domain', '503 5.5.1 MAIL first', '503 5.5.1 MAIL first', '503 5.5.1 MAIL first'));
    expect(h.done('q1').map((o) => o.reply.enhanced)).toEqual(['5.1.8', '5.1.8']);
    expect(h.writes.at(-1)).toBe('RSET\r\n');
  });
});

describe('lockstep refusals', () => {
  it('all RCPTs refused: RSET, not DATA', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org']));
    h.server(GREET).server('250 mx.example\r\n').server('250 ok\r\n').server('550 5.1.1 no\r\n').server('551 5.1.6 moved\r\n');
    expect(h.client).toBe(lines('EHLO petrel.test', 'MAIL FROM:<alice@petrel.test>', 'RCPT TO:<a@x.org>', 'RCPT TO:<b@x.org>', 'RSET'));
    expect(h.summary('q1')).toEqual(['a@x.org 550 bounced', 'b@x.org 551 bounced']);
  });

  it('5xx after the data: every accepted recipient bounces with that reply; RSET follows', () => {
    const h = new Harness().send(msg('q1', ['a@x.org', 'b@x.org', 'c@x.org']));
    h.server(GREET).server('250 mx.example\r\n').server('250 ok\r\n').server('250 ok\r\n').server('450 4.2.2 full\r\n').server('250 ok\r\n');
    h.server('354 go\r\n').body().server('554 5.6.0 content rejected\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 554 bounced', 'b@x.org 450 deferred', 'c@x.org 554 bounced']);
    expect(h.done('q1')[0]?.reply.lines).toEqual(['content rejected']);
    expect(h.writes.at(-1)).toBe('RSET\r\n');
  });
});

describe('the greeting', () => {
  it('421 greeting: the connection fails at once, queued messages are deferred, no QUIT', () => {
    const h = new Harness().send(msg('q1', ['a@x.org']));
    h.server('421 4.3.2 busy, try later\r\n');
    expect(h.client).toBe('');
    expect(h.failure?.reply?.code).toBe(421);
    expect(h.summary('q1')).toEqual(['a@x.org 451 deferred local']);
  });

  it('554 greeting: QUIT (RFC 5321 §3.1), then close with the reply as the failure', () => {
    const h = new Harness().send(msg('q1', ['a@x.org']));
    h.server('554 5.7.1 no service for you\r\n');
    expect(h.client).toBe('QUIT\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 451 deferred local']);
    expect(h.done('q1')[0]?.reply.lines[0]).toContain('554 5.7.1 no service for you');
    h.server('221 bye\r\n');
    expect(h.failure).toMatchObject({ phase: 'greeting', reply: { code: 554 } });
  });
});

describe('STARTTLS (RFC 3207)', () => {
  it('discards replies injected before the handshake and says EHLO again', () => {
    const h = new Harness({ tls: 'may' }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250-PIPELINING', '250 STARTTLS'));
    expect(h.writes.at(-1)).toBe('STARTTLS\r\n');
    // The attacker appends replies to the 220, hoping the client reads them as the answers to its next commands.
    h.server(lines('220 2.0.0 go ahead', '250-evil.example', '250 PIPELINING', '250 2.1.0 ok'));
    h.server('250 2.1.5 more injected\r\n');
    expect(h.of('start-tls')).toEqual([{ type: 'start-tls', servername: 'mx.example', verify: false }]);
    expect(h.of('event').map((e) => e.event)).toEqual(['pre-tls-bytes-discarded']);
    h.tlsReady();
    expect(h.writes.at(-1)).toBe('EHLO petrel.test\r\n');
    h.server('250 mx.example\r\n'); // no PIPELINING over TLS: lockstep
    expect(h.writes.at(-1)).toBe('MAIL FROM:<alice@petrel.test>\r\n');
    h.server('250 ok\r\n').server('250 ok\r\n').server('354 go\r\n').body().server('250 ok\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 250 delivered']);
    expect(h.session.tls).toBe(true);
  });

  it('verify: start-tls asks for certificate verification against the MX name', () => {
    const h = new Harness({ tls: 'verify', servername: 'mx2.example' });
    h.server(GREET).server(lines('250-mx.example', '250 STARTTLS')).server('220 go\r\n');
    expect(h.of('start-tls')).toEqual([{ type: 'start-tls', servername: 'mx2.example', verify: true }]);
  });

  it('encrypt without STARTTLS offered: no MAIL, QUIT, deferred with a clear reason', () => {
    const h = new Harness({ tls: 'encrypt' }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250 PIPELINING'));
    expect(h.client).toBe(lines('EHLO petrel.test', 'QUIT'));
    expect(h.summary('q1')).toEqual(['a@x.org 451 deferred local']);
    expect(h.done('q1')[0]?.reply.enhanced).toBe('4.7.4');
    h.eof();
    expect(h.failure?.reason).toBe('TLS is required (outbound_tls = encrypt) but the server does not offer STARTTLS');
  });

  it('may: a refused STARTTLS goes on in plaintext; encrypt: it fails', () => {
    const may = new Harness({ tls: 'may' }).send(msg('q1', ['a@x.org']));
    may.server(GREET).server(lines('250-mx.example', '250 STARTTLS')).server('454 4.7.0 TLS not available\r\n');
    expect(may.writes.at(-1)).toBe('MAIL FROM:<alice@petrel.test>\r\n');
    const enc = new Harness({ tls: 'encrypt' }).send(msg('q1', ['a@x.org']));
    enc.server(GREET).server(lines('250-mx.example', '250 STARTTLS')).server('454 4.7.0 TLS not available\r\n');
    expect(enc.writes.at(-1)).toBe('QUIT\r\n');
    expect(enc.summary('q1')).toEqual(['a@x.org 451 deferred local']);
  });

  it('none: STARTTLS is never sent', () => {
    const h = new Harness({ tls: 'none' }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-mx.example', '250 STARTTLS'));
    expect(h.writes.at(-1)).toBe('MAIL FROM:<alice@petrel.test>\r\n');
  });
});

describe('AUTH for a smart host (RFC 4954)', () => {
  const auth = { user: 'user', password: 'pass' };

  it('AUTH PLAIN with the initial response over implicit TLS', () => {
    const h = new Harness({ implicitTls: true, auth }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-smart.example', '250 AUTH LOGIN PLAIN')).server('235 2.7.0 ok\r\n');
    expect(h.client).toBe(lines('EHLO petrel.test', 'AUTH PLAIN AHVzZXIAcGFzcw==', 'MAIL FROM:<alice@petrel.test>'));
    expect(h.session.authenticated).toBe(true);
  });

  it('AUTH LOGIN after STARTTLS when PLAIN is not offered', () => {
    const h = new Harness({ auth }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-smart.example', '250 STARTTLS')).server('220 go\r\n').tlsReady();
    h.server(lines('250-smart.example', '250 AUTH=LOGIN')).server('334 VXNlcm5hbWU6\r\n').server('334 UGFzc3dvcmQ6\r\n').server('235 ok\r\n');
    expect(h.client).toBe(lines('EHLO petrel.test', 'STARTTLS', 'EHLO petrel.test', 'AUTH LOGIN', 'dXNlcg==', 'cGFzcw==', 'MAIL FROM:<alice@petrel.test>'));
  });

  it('never sends credentials in plaintext', () => {
    const h = new Harness({ tls: 'may', auth }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-smart.example', '250 AUTH PLAIN'));
    expect(h.client).toBe(lines('EHLO petrel.test', 'QUIT'));
    expect(h.client).not.toContain('AHVzZXIAcGFzcw');
  });

  it('535 refused: QUIT, deferred', () => {
    const h = new Harness({ implicitTls: true, auth }).send(msg('q1', ['a@x.org']));
    h.server(GREET).server(lines('250-smart.example', '250 AUTH PLAIN')).server('535 5.7.8 bad credentials\r\n');
    expect(h.writes.at(-1)).toBe('QUIT\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 451 deferred local']);
  });
});

describe('local refusals: nothing is sent', () => {
  it('SIZE over the server limit: 552 5.3.4, no MAIL, next message goes', () => {
    const h = new Harness().send(msg('big', ['a@x.org'], { size: 5001 })).send(msg('ok', ['b@x.org'], { size: 5000 }));
    h.server(GREET).server(lines('250-mx.example', '250 SIZE 5000'));
    expect(h.summary('big')).toEqual(['a@x.org 552 bounced local']);
    expect(h.done('big')[0]?.reply.enhanced).toBe('5.3.4');
    expect(h.writes.at(-1)).toBe('MAIL FROM:<alice@petrel.test> SIZE=5000\r\n');
  });

  it('SMTPUTF8 needed and not offered: 553 5.6.7; offered: the SMTPUTF8 parameter', () => {
    const no = new Harness().send(msg('q1', ['jösé@x.org']));
    no.server(GREET).server('250 mx.example\r\n');
    expect(no.summary('q1')).toEqual(['jösé@x.org 553 bounced local']);
    const yes = new Harness().send(msg('q1', ['jösé@x.org']));
    yes.server(GREET).server(lines('250-mx.example', '250 SMTPUTF8'));
    expect(yes.writes.at(-1)).toBe('MAIL FROM:<alice@petrel.test> SMTPUTF8\r\n');
  });

  it('8-bit to a 7-bit server under strict8bit: 554 5.6.3', () => {
    const h = new Harness({ strict8bit: true }).send(msg('q1', ['a@x.org'], { eightBit: true }));
    h.server(GREET).server('250 mx.example\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org 554 bounced local']);
    expect(h.of('ready')).toHaveLength(1);
  });

  it('an address with CR LF never reaches the wire (command injection)', () => {
    const h = new Harness().send(msg('q1', ['a@x.org\r\nRCPT TO:<victim@y.org>', 'b@x.org']));
    h.server(GREET).server('250 mx.example\r\n').server('250 ok\r\n');
    expect(h.client).not.toContain('victim');
    h.server('250 ok\r\n').server('354 go\r\n').body().server('250 ok\r\n');
    expect(h.summary('q1')).toEqual(['a@x.org\r\nRCPT TO:<victim@y.org> 553 bounced local', 'b@x.org 250 delivered']);
  });
});

describe('connection reuse and endings', () => {
  it('three messages on one connection; RSET only after the failed one', () => {
    const h = new Harness();
    h.server(GREET).server(lines('250-mx.example', '250 PIPELINING'));
    expect(h.of('ready')).toHaveLength(1);
    h.send(msg('m1', ['a@x.org'])).server(lines('250 ok', '250 ok', '354 go')).body().server('250 ok m1\r\n');
    h.send(msg('m2', ['b@x.org'])).server(lines('250 ok', '550 5.1.1 no', '554 5.5.1 no recipients')).server('250 reset\r\n');
    h.send(msg('m3', ['c@x.org'])).server(lines('250 ok', '250 ok', '354 go')).body().server('250 ok m3\r\n');
    h.quit().server('221 bye\r\n');
    const group = (r: string) => lines('MAIL FROM:<alice@petrel.test>', `RCPT TO:<${r}>`, 'DATA');
    expect(h.client).toBe(lines('EHLO petrel.test') + group('a@x.org') + BODY + group('b@x.org') + 'RSET\r\n' + group('c@x.org') + BODY + 'QUIT\r\n');
    expect([...h.summary('m1'), ...h.summary('m2'), ...h.summary('m3')]).toEqual(['a@x.org 250 delivered', 'b@x.org 550 bounced', 'c@x.org 250 delivered']);
    expect(h.of('ready')).toHaveLength(4);
    expect(h.failure).toBeNull();
  });

  it('connection lost after RCPT: the current message is deferred, and so is the queued one', () => {
    const h = new Harness().send(msg('m1', ['a@x.org', 'b@x.org'])).send(msg('m2', ['c@x.org']));
    h.server(GREET).server('250 mx.example\r\n').server('250 ok\r\n').server('550 5.1.1 no\r\n').eof();
    expect(h.summary('m1')).toEqual(['a@x.org 550 bounced', 'b@x.org 451 deferred local']);
    expect(h.done('m1')[1]?.reply.lines).toEqual(['connection lost after RCPT']);
    expect(h.summary('m2')).toEqual(['c@x.org 451 deferred local']);
    expect(h.failure?.reason).toBe('connection lost after RCPT');
  });

  it('timeout after end of data: deferred (the message may arrive twice: at-least-once)', () => {
    const h = new Harness().send(msg('m1', ['a@x.org']));
    h.server(GREET).server('250 mx.example\r\n250 ok\r\n250 ok\r\n354 go\r\n').body().timeout();
    expect(h.done('m1')[0]?.reply.lines).toEqual(['timeout after end of data']);
  });

  it('421 in the middle: undecided recipients get the 421 itself; no QUIT', () => {
    const h = new Harness().send(msg('m1', ['a@x.org', 'b@x.org']));
    h.server(GREET).server('250 mx.example\r\n250 ok\r\n250 ok\r\n421 4.3.2 shutting down\r\n');
    expect(h.summary('m1')).toEqual(['a@x.org 421 deferred', 'b@x.org 421 deferred']);
    expect(h.client.endsWith('RCPT TO:<b@x.org>\r\n')).toBe(true);
    expect(h.failure?.reply?.code).toBe(421);
  });

  it('a reply that arrives while the body streams waits until bodySent', () => {
    const h = new Harness().send(msg('m1', ['a@x.org']));
    h.server(GREET).server('250 mx.example\r\n250 ok\r\n250 ok\r\n354 go\r\n').server('250 ok early\r\n');
    expect(h.of('message-done')).toEqual([]);
    h.body();
    expect(h.summary('m1')).toEqual(['a@x.org 250 delivered']);
  });

  it('a server that floods replies during the body is cut off', () => {
    const h = new Harness().send(msg('m1', ['a@x.org']));
    h.server(GREET).server('250 mx.example\r\n250 ok\r\n250 ok\r\n354 go\r\n').server('250 spam\r\n'.repeat(11));
    expect(h.summary('m1')).toEqual(['a@x.org 451 deferred local']);
    expect(h.failure?.reason).toBe('protocol error while sending the message body: replies while the body was being sent');
  });

  it('garbage from the server: protocol error, deferred, the connection closes without QUIT', () => {
    const h = new Harness().send(msg('m1', ['a@x.org']));
    h.server(GREET).server('250 mx.example\r\n').server('HTTP/1.1 400 Bad Request\r\n');
    expect(h.summary('m1')).toEqual(['a@x.org 451 deferred local']);
    expect(h.done('m1')[0]?.reply.enhanced).toBe('4.5.0');
    expect(h.client).not.toContain('QUIT');
  });

  it('a message given after close is deferred at once; idle timeout QUITs', () => {
    const h = new Harness();
    h.server(GREET).server('250 mx.example\r\n').timeout();
    expect(h.writes.at(-1)).toBe('QUIT\r\n');
    h.eof().send(msg('late', ['a@x.org']));
    expect(h.summary('late')).toEqual(['a@x.org 451 deferred local']);
    expect(h.failure).toBeNull();
  });

  it('replyTimeout follows RFC 5321 §4.5.3.2', () => {
    const h = new Harness().send(msg('m1', ['a@x.org']));
    expect(h.session.replyTimeout).toBe(300);
    h.server(GREET).server('250 mx.example\r\n250 ok\r\n250 ok\r\n354 go\r\n');
    expect(h.session.replyTimeout).toBe(180);
    h.body();
    expect(h.session.replyTimeout).toBe(600);
  });
});
