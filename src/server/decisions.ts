/**
 * Answers the session's questions: relay policy for MAIL and RCPT (pure,
 * synchronous) and queue work for opening and committing a message
 * (asynchronous: the 250 waits for the commit's fsync, DESIGN.md).
 */
import { buildReceived, type ReceivedInfo } from '../message/received';
import type { MxResolver } from '../dns/resolver';
import { decideRecipient } from '../policy/relay';
import { QueueError, type Envelope } from '../queue/queue';
import { R, reply } from '../smtp/reply';
import type { Decision, Question, Transaction } from '../smtp/session-types';
import type { Logger } from '../observe/log';

/** The part of the queue a session needs (the real Queue, or an in-memory one in tests). */
export interface SessionQueue {
  readonly poisoned: boolean;
  readonly backlogBytes: number;
  newId(): string;
  appendBody(id: string, chunk: Buffer): void;
  discard(id: string): void;
  commit(id: string, env: Envelope): Promise<void>;
}

export interface DecisionContext {
  readonly hostname: string;
  readonly queue: SessionQueue;
  readonly log: Logger;
  readonly localDomains: readonly string[];
  readonly relayDomains: readonly string[];
  /** Set when reject_null_mx_sender is on: MAIL FROM a null-MX domain is refused. */
  readonly nullMxCheck: MxResolver | null;
}

export interface ClientFacts {
  readonly clientIp: string;
  /** The session's logger, so queue lines carry the session id too. */
  readonly log: Logger;
  readonly trusted: boolean;
  readonly authenticated: boolean;
  /** TLS parameters once the connection is encrypted, for the Received field. */
  tlsInfo(): { version: string; cipher: string } | undefined;
  /** Octets of the trace field prepended to the current transaction, so logged sizes match `queue list`. */
  traceBytes: number;
}

export function decide(q: Question, ctx: DecisionContext, client: ClientFacts): Decision | Promise<Decision> {
  switch (q.kind) {
    case 'mail': {
      // A poisoned queue refuses every new transaction up front rather than after the client sent the body.
      if (ctx.queue.poisoned) return { accept: false, reply: R.localError() };
      const mailbox = q.args.path.mailbox;
      if (ctx.nullMxCheck && mailbox?.domainKind === 'dns') return checkNullMxSender(mailbox.domain, ctx, ctx.nullMxCheck);
      return { accept: true, id: ctx.queue.newId() };
    }
    case 'rcpt': {
      const d = decideRecipient(q.args.path, { trusted: client.trusted, authenticated: client.authenticated }, ctx);
      if (!d.ok) return { accept: false, reply: d.reply };
      // RFC 5321 §4.1.1.3: a bare <postmaster> means this server's postmaster.
      const bare = q.args.path.mailbox?.domainKind === 'none';
      return bare ? { accept: true, address: `postmaster@${ctx.localDomains[0] ?? ctx.hostname}` } : { accept: true };
    }
    case 'open':
      return open(q.id, q.txn, ctx, client);
    case 'commit':
      return commit(q.id, q.txn, q.size, ctx, client);
  }
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
  try {
    await ctx.queue.commit(id, {
      sender: txn.sender,
      recipients: [...txn.recipients],
      params: { size: txn.mail.size, body: txn.mail.body, smtputf8: txn.mail.smtputf8 },
      clientIp: client.clientIp,
      helo: txn.helo,
      receivedAt: Date.now(),
    });
  } catch (err) {
    // Never acknowledge what is not durable: a failed write or fsync is a temporary refusal.
    const full = err instanceof QueueError && err.code === 'storage-full';
    const r = full ? R.storageError() : R.localError();
    client.log.error('queue-error', { id, error: err, reply: r });
    return { accept: false, reply: r };
  }
  client.log.info('queued', { id, size: size + client.traceBytes, from: txn.sender, to: txn.recipients, client: client.clientIp });
  return { accept: true, reply: reply(250, '2.0.0', `Ok: queued as ${id}`) };
}
