/**
 * The verb table (RFC 5321 §4.1.1, RFC 3030, RFC 3207, RFC 4954): one row per command
 * with the phases it is allowed in, the reply when it comes out of sequence
 * (§4.1.4: 503 5.5.1), its HELP text and its handler. Handlers check syntax
 * and sequence, then ask or reply; state changes only in the proceed step.
 */
import { LIMITS } from './limits';
import { parseMailArgs, parseRcptArgs } from './params';
import { formatPath } from './path';
import { R, reply, type Reply } from './reply';
import type { Phase, ServerSession } from './server-session';
import { MailTransaction } from './transaction';
import { AUTH, AUTH_REPLIES } from './verbs-auth';

export interface Verb {
  readonly name: string;
  readonly phases: readonly Phase[];
  readonly help: string;
  outOfSequence(s: ServerSession): Reply;
  handle(s: ServerSession, arg: string): void;
}

const ALWAYS: readonly Phase[] = ['greet', 'ready', 'mail'];

function needGreeting(s: ServerSession, otherwise: string): Reply {
  return R.badSequence(s.phase === 'greet' ? 'Send EHLO or HELO first' : otherwise);
}

/** RFC 5321 §4.1.1.1: the argument is a domain or an address literal; we only refuse what cannot be one. */
function clientName(arg: string): string | null {
  const name = arg.trim().split(' ')[0] ?? '';
  // eslint-disable-next-line no-control-regex
  if (name === '' || name.length > 255 || /[\x00-\x20\x7f]/.test(name)) return null;
  return name;
}

function greet(s: ServerSession, arg: string, esmtp: boolean): string | null {
  const name = clientName(arg);
  if (name === null) {
    s.send(R.syntax(`Syntax: ${esmtp ? 'EHLO' : 'HELO'} hostname`));
    return null;
  }
  // §4.1.4: EHLO/HELO in the middle of a session resets it like RSET.
  s.resetTxn(esmtp ? 'EHLO' : 'HELO');
  s.helo = name;
  s.esmtp = esmtp;
  s.phase = 'ready';
  s.event('helo', { helo: name, esmtp });
  return name;
}

function EHLO(s: ServerSession, arg: string): void {
  if (greet(s, arg, true) === null) return;
  const lines = [`${s.cfg.hostname} greets [${s.facts.clientIp}]`, 'PIPELINING', `SIZE ${s.cfg.maxMessageSize}`, '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING'];
  // RFC 3207 §4.2: STARTTLS is not offered again once TLS is up.
  if (s.cfg.tlsAvailable && !s.tls) lines.push('STARTTLS');
  // RFC 4954 §4: AUTH is advertised only where it may be used, here only inside TLS (its mechanisms send passwords).
  const mechanisms = s.cfg.authMechanisms ?? [];
  if (s.tls && mechanisms.length > 0) lines.push(`AUTH ${mechanisms.join(' ')}`);
  // RFC 2034 §4: no enhanced code in the reply to EHLO or HELO.
  s.send(reply(250, undefined, ...lines));
}

function HELO(s: ServerSession, arg: string): void {
  if (greet(s, arg, false) === null) return;
  s.send(reply(250, undefined, `${s.cfg.hostname} greets [${s.facts.clientIp}]`));
}

function MAIL(s: ServerSession, arg: string): void {
  // RFC 6409 §4.3, RFC 8314 §3.3: submission takes mail only from authenticated users (RFC 4954 §6: 530 5.7.0).
  if (s.facts.authRequired && s.authUser === null) return refuse(s, 'mail', s.tls ? AUTH_REPLIES.required() : AUTH_REPLIES.tlsFirst(), arg);
  const parsed = parseMailArgs(arg, { maxSize: s.cfg.maxMessageSize });
  if (!parsed.ok) return refuse(s, 'mail', parsed.reply, arg);
  const args = parsed.value;
  s.ask({ kind: 'mail', args }, (d) => {
    if (!d.accept) return refuse(s, 'mail', d.reply, arg);
    s.txn = new MailTransaction(formatPath(args.path), args, s.cfg.maxMessageSize);
    s.txn.id = d.id ?? null;
    s.phase = 'mail';
    s.event('mail', { id: s.txn.id, from: s.txn.sender, size: args.size, body: args.body, smtputf8: args.smtputf8 });
    s.send(d.reply ?? R.okSender());
  });
}

function RCPT(s: ServerSession, arg: string): void {
  const txn = s.txn;
  if (!txn) return s.send(R.badSequence('Need MAIL first'));
  if (txn.intake !== null) return s.send(R.badSequence('RCPT not allowed after BDAT'));
  // RFC 5321 §4.5.3.1.10: the recommended reply for one recipient too many is 452.
  if (txn.recipients.length >= s.cfg.maxRecipients) return refuse(s, 'rcpt', reply(452, '4.5.3', 'Too many recipients'), arg);
  const parsed = parseRcptArgs(arg, { smtputf8: txn.mail.smtputf8 });
  if (!parsed.ok) return refuse(s, 'rcpt', parsed.reply, arg);
  const args = parsed.value;
  s.ask({ kind: 'rcpt', args, sender: txn.mail }, (d) => {
    if (!d.accept) return refuse(s, 'rcpt', d.reply, arg);
    const address = d.address ?? formatPath(args.path);
    if (!txn.recipients.includes(address)) txn.recipients.push(address);
    s.event('rcpt', { id: txn.id, to: address });
    s.send(d.reply ?? R.okRecipient());
  });
}

function DATA(s: ServerSession, arg: string): void {
  const txn = s.txn;
  if (!txn) return s.send(R.badSequence('Need MAIL first'));
  if (arg !== '') return s.send(R.syntax('Syntax: DATA (no arguments)'));
  if (txn.intake === 'BDAT') return s.send(R.badSequence('DATA not allowed after BDAT'));
  if (txn.recipients.length === 0) return s.send(reply(554, '5.5.1', 'No valid recipients'));
  s.ask({ kind: 'open', id: txn.id, txn: s.summary() }, (d) => {
    if (!d.accept) return refuse(s, 'data', d.reply, '');
    txn.opened = true;
    s.beginData();
  });
}

/** RFC 3030 §2: "BDAT" SP chunk-size [ SP end-marker ]. */
function BDAT(s: ServerSession, arg: string): void {
  const m = /^(\d{1,15})(?: +(LAST))? *$/i.exec(arg);
  if (!m) {
    // Without a size we cannot find where the chunk ends, and its bytes must never be read as commands,
    // so the session must end; RFC 5321 §3.8 allows a server to close only after 221 or 421.
    s.resetTxn('malformed BDAT');
    s.send(reply(421, '4.5.4', `${s.cfg.hostname} malformed BDAT command (syntax: BDAT chunk-size [LAST]), closing connection`));
    return s.close('malformed BDAT');
  }
  const size = Number(m[1]);
  const last = m[2] !== undefined;
  const txn = s.txn;
  if (!txn) return s.beginBdat(size, last, false, needGreeting(s, 'Need MAIL and RCPT first'));
  if (txn.recipients.length === 0) return s.beginBdat(size, last, false, reply(554, '5.5.1', 'No valid recipients'));
  if (txn.opened) return s.beginBdat(size, last, true, null);
  s.ask({ kind: 'open', id: txn.id, txn: s.summary() }, (d) => {
    if (!d.accept) {
      s.resetTxn('queue refused');
      return s.beginBdat(size, last, false, d.reply);
    }
    txn.opened = true;
    txn.beginBdat();
    s.beginBdat(size, last, true, null);
  });
}

function RSET(s: ServerSession, arg: string): void {
  if (arg.trim() !== '') return s.send(R.syntax('Syntax: RSET (no arguments)'));
  s.resetTxn('RSET');
  s.send(R.reset());
}

function NOOP(s: ServerSession): void {
  s.send(R.noop());
}

function QUIT(s: ServerSession): void {
  s.resetTxn('QUIT');
  s.send(R.bye(s.cfg.hostname));
  s.close('QUIT');
}

/** RFC 5321 §3.5.3, §7.3: 252 for everyone, so VRFY cannot enumerate users. */
function VRFY(s: ServerSession, arg: string): void {
  if (arg.trim() === '') return s.send(R.syntax('Syntax: VRFY address'));
  s.send(R.vrfy());
}

/** RFC 5321 §7.3: list expansion reveals addresses; Petrel does not offer it. */
function EXPN(s: ServerSession): void {
  s.send(reply(502, '5.5.1', 'EXPN not available'));
}

function HELP(s: ServerSession): void {
  const verbs = [...VERBS.keys()].join(' ');
  s.send(reply(214, '2.0.0', `Commands: ${verbs}`, 'See RFC 5321 for details'));
}

function STARTTLS(s: ServerSession, arg: string): void {
  if (s.tls) return s.send(R.badSequence('TLS already active'));
  if (!s.cfg.tlsAvailable) return s.send(R.notImplemented('STARTTLS not available'));
  if (arg.trim() !== '') return s.send(R.syntax('Syntax: STARTTLS (no arguments)'));
  s.send(R.readyTls());
  s.startTls();
}

function refuse(s: ServerSession, stage: string, r: Reply, arg: string): void {
  s.event('reject', { id: s.txn?.id ?? undefined, stage, arg: arg.slice(0, LIMITS.commandLine), reply: r });
  s.send(r);
}

const rows: Verb[] = [
  { name: 'EHLO', phases: ALWAYS, help: 'EHLO hostname', outOfSequence: () => R.badSequence(), handle: EHLO },
  { name: 'HELO', phases: ALWAYS, help: 'HELO hostname', outOfSequence: () => R.badSequence(), handle: HELO },
  { name: 'MAIL', phases: ['ready'], help: 'MAIL FROM:<address> [parameters]', outOfSequence: (s) => needGreeting(s, 'Sender already specified'), handle: MAIL },
  { name: 'RCPT', phases: ['mail'], help: 'RCPT TO:<address>', outOfSequence: (s) => needGreeting(s, 'Need MAIL first'), handle: RCPT },
  { name: 'DATA', phases: ['mail'], help: 'DATA', outOfSequence: (s) => needGreeting(s, 'Need MAIL and RCPT first'), handle: DATA },
  // BDAT is accepted in every phase so that its chunk is always consumed (RFC 3030 §2), then refused if out of sequence.
  { name: 'BDAT', phases: ALWAYS, help: 'BDAT size [LAST]', outOfSequence: () => R.badSequence(), handle: BDAT },
  { name: 'RSET', phases: ALWAYS, help: 'RSET', outOfSequence: () => R.badSequence(), handle: RSET },
  { name: 'NOOP', phases: ALWAYS, help: 'NOOP', outOfSequence: () => R.badSequence(), handle: NOOP },
  { name: 'QUIT', phases: ALWAYS, help: 'QUIT', outOfSequence: () => R.badSequence(), handle: QUIT },
  { name: 'VRFY', phases: ALWAYS, help: 'VRFY address', outOfSequence: () => R.badSequence(), handle: VRFY },
  { name: 'EXPN', phases: ALWAYS, help: 'EXPN list', outOfSequence: () => R.badSequence(), handle: EXPN },
  { name: 'HELP', phases: ALWAYS, help: 'HELP', outOfSequence: () => R.badSequence(), handle: HELP },
  { name: 'STARTTLS', phases: ['ready'], help: 'STARTTLS', outOfSequence: (s) => needGreeting(s, 'STARTTLS not allowed during a mail transaction'), handle: STARTTLS },
  // RFC 4954 §4: AUTH needs EHLO first and is refused with 503 inside a mail transaction.
  { name: 'AUTH', phases: ['ready'], help: 'AUTH mechanism [initial-response]', outOfSequence: (s) => needGreeting(s, 'AUTH not allowed during a mail transaction'), handle: AUTH },
];

export const VERBS: ReadonlyMap<string, Verb> = new Map(rows.map((r) => [r.name, r]));
