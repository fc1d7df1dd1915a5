/**
 * The contract between the pure server session (server-session.ts) and the
 * thin adapter that owns the socket (src/server/connection.ts).
 *
 * Inputs: bytes, a decision answering a question, tls-ready, timeout, eof.
 * Outputs: replies, questions (policy and queue work the session cannot do
 * itself), body chunks for the queue, start-tls, log events, close.
 * While a question is open the session processes no further command; bytes
 * the client pipelined meanwhile wait in the session (the adapter stops
 * reading the socket when `buffered` grows past LIMITS.pipelineBuffer).
 */
import type { MailArgs, RcptArgs } from './params';
import type { Reply } from './reply';

export interface SessionConfig {
  /** Our name in the greeting, EHLO reply and 221. */
  readonly hostname: string;
  readonly maxMessageSize: number;
  readonly maxRecipients: number;
  /** Replies of class 4 or 5 before 421 and disconnect. */
  readonly maxErrors: number;
  /** A certificate is configured, so STARTTLS may be offered on a plain connection. */
  readonly tlsAvailable: boolean;
  /** SASL mechanisms for AUTH (RFC 4954), offered only once the connection is TLS; absent or empty: no AUTH. */
  readonly authMechanisms?: readonly string[];
}

export interface SessionFacts {
  readonly clientIp: string;
  /** The connection is already TLS (implicit-TLS listener). */
  readonly tls: boolean;
  /** A submission or SMTPS listener (RFC 6409 §4.3, RFC 8314): MAIL only after AUTH (530 5.7.0). */
  readonly authRequired?: boolean;
}

/** What the session knows about the transaction when it asks the adapter to open or commit it. */
export interface Transaction {
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly mail: MailArgs;
  readonly helo: string;
  readonly esmtp: boolean;
  readonly tls: boolean;
}

export type Question =
  /** Sender policy for an accepted-syntax MAIL FROM; an accepting decision carries the queue id of the new transaction. */
  | { readonly kind: 'mail'; readonly args: MailArgs }
  /** Recipient policy (relay control) for an accepted-syntax RCPT TO. */
  | { readonly kind: 'rcpt'; readonly args: RcptArgs; readonly sender: MailArgs }
  /**
   * One step of an AUTH exchange (RFC 4954 §4): the mechanism and every client response so far, base64 as sent
   * ("" for an initial "="). Accepting with a 334 reply asks for one more response; accepting with `user` ends it
   * authenticated (235); refusing ends it (a 421 refusal also closes). Holds secrets: never log a question.
   */
  | { readonly kind: 'auth'; readonly mechanism: string; readonly responses: readonly string[] }
  /** DATA or the first BDAT: open the transaction in the queue (body chunks follow). */
  | { readonly kind: 'open'; readonly id: string | null; readonly txn: Transaction }
  /** The whole body was received and passed every check: make it durable, then answer. */
  | { readonly kind: 'commit'; readonly id: string; readonly txn: Transaction; readonly size: number };

export type Decision =
  /** `id`: the queue id given on MAIL; `address`: the canonical recipient (e.g. bare <postmaster> made whole);
   *  `user`: the name AUTH authenticated. */
  | { readonly accept: true; readonly reply?: Reply; readonly id?: string; readonly address?: string; readonly user?: string }
  | { readonly accept: false; readonly reply: Reply };

export type Output =
  | { readonly type: 'reply'; readonly reply: Reply }
  | { readonly type: 'ask'; readonly question: Question }
  | { readonly type: 'body'; readonly id: string; readonly data: Buffer }
  /** A transaction whose body was being stored was abandoned (refused, reset, or the client left). */
  | { readonly type: 'abort'; readonly id: string; readonly reason: string }
  | { readonly type: 'start-tls' }
  | { readonly type: 'event'; readonly event: string; readonly fields: Readonly<Record<string, unknown>> }
  | { readonly type: 'close'; readonly reason: string };
