/**
 * Answers the session's questions: relay policy for MAIL and RCPT (pure,
 * synchronous) and queue work for opening and committing a message
 * (asynchronous: the 250 waits for the commit's fsync, DESIGN.md).
 */
import { buildReceived, type ReceivedInfo } from '../message/received';
import type { MxResolver } from '../dns/resolver';
import { authzidAllowed, isMechanism, saslStep, type SaslStep } from '../policy/auth';
import type { RateWindow } from '../policy/rate';
import { decideRecipient } from '../policy/relay';
import { mayUseSender, verifyNobody, verifyPassword, type UserDirectory } from '../policy/users';
import { assertNever } from '../smtp/assert-never';
import type { MailArgs } from '../smtp/params';
import { QueueError, type Envelope } from '../queue/queue';
import { formatPath } from '../smtp/path';
import { R, reply, type Reply } from '../smtp/reply';
import type { Decision, Question, Transaction } from '../smtp/session-types';
import type { Logger } from '../observe/log';
import type { MessageObserver } from '../auth/message-observer';
import type { EndOfData, MessageAuth } from './message-auth';

/** The part of the queue a session needs (the real Queue, or an in-memory one in tests). */
export interface SessionQueue {
  readonly poisoned: boolean;
  readonly backlogBytes: number;
  newId(): string;
  appendBody(id: string, chunk: Buffer): void;
  discard(id: string): void;
  commit(id: string, env: Envelope, prefix?: Buffer): Promise<void>;
}

export interface DecisionContext {
  readonly hostname: string;
  readonly queue: SessionQueue;
  readonly log: Logger;
  readonly localDomains: readonly string[];
  readonly relayDomains: readonly string[];
  /** Set when reject_null_mx_sender is on: MAIL FROM a null-MX domain is refused. */
  readonly nullMxCheck: MxResolver | null;
  /** SMTP AUTH (RFC 4954): users and limits; absent where AUTH is not offered. */
  readonly auth?: AuthContext;
  /** Local recipient verification (delivery/local.ts LocalDirectory.verify): null accepts, a reply refuses. */
  readonly verifyRecipient?: (address: string) => Promise<Reply | null>;
  /** DKIM signing and SPF/DKIM/DMARC checks (message-auth.ts); absent: neither. */
  readonly messageAuth?: MessageAuth;
}

export interface AuthContext {
  readonly users: UserDirectory;
  /** Failed AUTH attempts per client address (auth_max_failures within auth_failure_window). */
  readonly failures: RateWindow;
  /** MAIL transactions per authenticated user (max_messages_per_user). */
  readonly messages: RateWindow;
  /** Milliseconds, injectable so the windows can be tested without waiting. */
  readonly now: () => number;
}

export interface ClientFacts {
  readonly clientIp: string;
  /** The session's logger, so queue lines carry the session id too. */
  readonly log: Logger;
  readonly trusted: boolean;
  readonly authenticated: boolean;
  /** The name AUTH authenticated in this session, if any. */
  readonly authUser?: string | null;
  /** TLS parameters once the connection is encrypted, for the Received field. */
  tlsInfo(): { version: string; cipher: string } | undefined;
  /** Octets of the trace field prepended to the current transaction, so logged sizes match `queue list`. */
  traceBytes: number;
  /** Watches the current transaction's message for signing or checking; body chunks go through it. */
  observer: MessageObserver | null;
}

export function decide(q: Question, ctx: DecisionContext, client: ClientFacts): Decision | Promise<Decision> {
  switch (q.kind) {
    case 'mail': {
      // A poisoned queue refuses every new transaction up front rather than after the client sent the body.
      if (ctx.queue.poisoned) return { accept: false, reply: R.localError() };
      if (client.authUser && ctx.auth) return userSender(q.args, client.authUser, ctx, ctx.auth);
      return senderChecks(q.args, ctx);
    }
    case 'rcpt': {
      const d = decideRecipient(q.args.path, { trusted: client.trusted, authenticated: client.authenticated }, ctx);
      if (!d.ok) return { accept: false, reply: d.reply };
      // RFC 5321 §4.1.1.3: a bare <postmaster> means this server's postmaster.
      const bare = q.args.path.mailbox?.domainKind === 'none';
      if (bare) return { accept: true, address: `postmaster@${ctx.localDomains[0] ?? ctx.hostname}` };
      // Unknown local users are refused now (550 5.1.1), not bounced later to a possibly forged sender.
      if (d.route === 'local' && ctx.verifyRecipient) return verified(ctx.verifyRecipient, formatPath(q.args.path));
      return { accept: true };
    }
    case 'open':
      return open(q.id, q.txn, ctx, client);
    case 'commit':
      return commit(q.id, q.txn, q.size, ctx, client);
    case 'auth':
      return ctx.auth ? authStep(q, ctx.auth, client) : { accept: false, reply: R.notImplemented('AUTH not available') };
    default:
      return assertNever(q);
  }
}

async function verified(verify: (address: string) => Promise<Reply | null>, address: string): Promise<Decision> {
  const refusal = await verify(address);
  return refusal ? { accept: false, reply: refusal } : { accept: true };
}

function senderChecks(args: MailArgs, ctx: DecisionContext): Decision | Promise<Decision> {
  const mailbox = args.path.mailbox;
  if (ctx.nullMxCheck && mailbox?.domainKind === 'dns') return checkNullMxSender(mailbox.domain, ctx, ctx.nullMxCheck);
  return { accept: true, id: ctx.queue.newId() };
}

/** RFC 6409 §6.1: a submission server may insist that a user sends as itself (553 5.7.1), then the user's message rate. */
async function userSender(args: MailArgs, name: string, ctx: DecisionContext, auth: AuthContext): Promise<Decision> {
  const user = await auth.users.lookup(name);
  const m = args.path.mailbox;
  const sender = m ? `${m.localPart}@${m.domain}` : '';
  if (!user || !mayUseSender(user, sender)) return { accept: false, reply: reply(553, '5.7.1', `Sender address not owned by user ${name}`) };
  if (!auth.messages.tryRecord(name, auth.now())) return { accept: false, reply: reply(450, '4.7.1', `Message rate limit exceeded for ${name}, try again later`) };
  return senderChecks(args, ctx);
}

/** One AUTH step (RFC 4954 §4). A blocked address is turned away before any password is hashed. */
function authStep(q: Question & { kind: 'auth' }, auth: AuthContext, client: ClientFacts): Decision | Promise<Decision> {
  if (auth.failures.reached(client.clientIp, auth.now())) {
    client.log.warn('auth-blocked', { client: client.clientIp, limit: auth.failures.rate.limit });
    return { accept: false, reply: reply(421, '4.7.0', 'Too many failed authentication attempts from your address, try again later') };
  }
  if (!isMechanism(q.mechanism)) return { accept: false, reply: reply(504, '5.5.4', 'Unrecognized authentication type') };
  const step = saslStep(q.mechanism, q.responses);
  switch (step.kind) {
    case 'challenge':
      return { accept: true, reply: reply(334, undefined, step.text) };
    case 'malformed':
      return { accept: false, reply: reply(501, '5.5.2', 'Malformed authentication response (base64 expected)') };
    case 'credentials':
      return checkCredentials(step, q.mechanism, auth, client);
    default:
      return assertNever(step);
  }
}

/** The same work and the same 535 whatever was wrong, so replies and timing reveal no user names. Never logs the password. */
async function checkCredentials(c: SaslStep & { kind: 'credentials' }, mechanism: string, auth: AuthContext, client: ClientFacts): Promise<Decision> {
  const name = c.authcid.toLowerCase();
  // RFC 4616 §2: acting as another identity (authzid) is refused like a wrong password.
  const user = authzidAllowed(c.authzid, c.authcid) ? await auth.users.lookup(name) : null;
  const ok = user ? await verifyPassword(c.password, user.hash) : await verifyNobody(c.password);
  if (user && ok) return { accept: true, user: user.name };
  const failures = auth.failures.record(client.clientIp, auth.now());
  const reason = !authzidAllowed(c.authzid, c.authcid) ? 'authorization identity differs' : user ? 'wrong password' : 'unknown user';
  client.log.warn('auth-failed', { client: client.clientIp, user: name.slice(0, 128), mechanism, reason, failures });
  return { accept: false, reply: reply(535, '5.7.8', 'Authentication credentials invalid') };
}

/** RFC 7505 §4.2: a domain with a null MX takes no mail, so it cannot receive a bounce either: 550 5.7.27.
 *  A DNS failure is no reason to refuse mail: only a definite null MX is. */
async function checkNullMxSender(domain: string, ctx: DecisionContext, resolver: MxResolver): Promise<Decision> {
  const route = await resolver.resolveRoute(domain);
  if (route.kind === 'null-mx') return { accept: false, reply: reply(550, '5.7.27', 'Sender address has null MX') };
  return { accept: true, id: ctx.queue.newId() };
}

function open(id: string | null, txn: Transaction, ctx: DecisionContext, client: ClientFacts): Decision {
  if (id === null || ctx.queue.poisoned) return { accept: false, reply: R.localError() };
  // RFC 5321 §4.4: the receiving server prepends its trace field before the message content.
  const trace = buildReceived(receivedInfo(id, txn, ctx, client));
  client.traceBytes = trace.length;
  ctx.queue.appendBody(id, trace);
  client.observer = ctx.messageAuth?.begin(client) ?? null;
  return { accept: true };
}

function receivedInfo(id: string, txn: Transaction, ctx: DecisionContext, client: ClientFacts): ReceivedInfo {
  const tls = client.tlsInfo();
  return {
    heloName: txn.helo,
    clientIp: client.clientIp,
    byHost: ctx.hostname,
    protocol: withKeyword(txn, client.authenticated),
    queueId: id,
    recipient: txn.recipients.length === 1 ? txn.recipients[0] : undefined,
    tls,
    date: new Date(),
  };
}

/** RFC 3848 and RFC 6531 §3.7.3 "with" keywords. */
function withKeyword(txn: Transaction, auth: boolean): ReceivedInfo['protocol'] {
  if (!txn.esmtp) return 'SMTP';
  const suffix = `${txn.tls ? 'S' : ''}${auth ? 'A' : ''}`;
  return txn.mail.smtputf8 ? (`UTF8SMTP${suffix}` as ReceivedInfo['protocol']) : (`ESMTP${suffix}` as ReceivedInfo['protocol']);
}

async function commit(id: string, txn: Transaction, size: number, ctx: DecisionContext, client: ClientFacts): Promise<Decision> {
  const auth = await endOfData(id, txn, ctx, client);
  if (auth.kind === 'reject') {
    ctx.queue.discard(id);
    client.log.info('reject', { id, reply: auth.reply });
    return { accept: false, reply: auth.reply };
  }
  try {
    const env: Envelope = {
      sender: txn.sender,
      recipients: [...txn.recipients],
      params: { size: txn.mail.size, body: txn.mail.body, smtputf8: txn.mail.smtputf8 },
      clientIp: client.clientIp,
      helo: txn.helo,
      receivedAt: Date.now(),
    };
    await ctx.queue.commit(id, env, auth.prefix ?? undefined);
  } catch (err) {
    // Never acknowledge what is not durable: a failed write or fsync is a temporary refusal.
    const full = err instanceof QueueError && err.code === 'storage-full';
    const r = full ? R.storageError() : R.localError();
    client.log.error('queue-error', { id, error: err, reply: r });
    return { accept: false, reply: r };
  }
  const stored = size + client.traceBytes + (auth.prefix?.length ?? 0);
  client.log.info('queued', { id, size: stored, from: txn.sender, to: txn.recipients, client: client.clientIp });
  return { accept: true, reply: reply(250, '2.0.0', `Ok: queued as ${id}`) };
}

/** Flushes the observer's held header section into the queue, then signs or checks (message-auth.ts). */
async function endOfData(id: string, txn: Transaction, ctx: DecisionContext, client: ClientFacts): Promise<EndOfData> {
  const observer = client.observer;
  client.observer = null;
  if (!observer || !ctx.messageAuth) return { kind: 'accept', prefix: null, log: null };
  for (const chunk of observer.end()) ctx.queue.appendBody(id, chunk);
  const result = await ctx.messageAuth.finish(observer, { clientIp: client.clientIp, helo: txn.helo, mailFrom: txn.sender });
  if (result.log) client.log.info('sender-auth', { id, ...result.log });
  return result;
}
