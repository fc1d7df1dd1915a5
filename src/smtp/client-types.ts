/**
 * Types of the contract between the pure outbound SMTP client
 * (client-session.ts, whose header documents the contract in full) and the
 * adapter that owns the socket (src/delivery/smtp-out.ts).
 */
import type { Reply } from './reply';

/**
 * outbound_tls. may: STARTTLS whenever offered, plaintext otherwise (RFC 3207
 * opportunistic TLS); encrypt: STARTTLS or no delivery; verify: as encrypt, and
 * the adapter checks the certificate against `servername`. none: never STARTTLS
 * (loopback test peers, LMTP-like hops).
 */
export type TlsPolicy = 'none' | 'may' | 'encrypt' | 'verify';

export interface ClientConfig {
  /** Our name in EHLO/HELO (RFC 5321 §4.1.1.1). */
  readonly hostname: string;
  /** The MX host name (never an IP): SNI, and the name `verify` checks the certificate against. */
  readonly servername: string;
  readonly tls: TlsPolicy;
  /** The connection is TLS from its first byte (port 465 smart host): no STARTTLS. */
  readonly implicitTls?: boolean;
  /** Smart-host credentials (RFC 4954): AUTH PLAIN, else LOGIN; only ever sent over TLS. */
  readonly auth?: { readonly user: string; readonly password: string } | null;
  /** RFC 6152 §3 allows two answers to an 8-bit message for a 7-bit server: true bounces it (5.6.3), false sends it as is. */
  readonly strict8bit?: boolean;
}

/** One message to send on this connection. */
export interface OutboundMessage {
  /** The queue id; echoed in send-body and message-done. */
  readonly id: string;
  /** Reverse-path without angle brackets; '' for the null sender (bounces). */
  readonly from: string;
  /** Forward-paths without angle brackets; outcomes come back in this order. */
  readonly recipients: readonly string[];
  /** Body octets, declared with SIZE= (RFC 1870) and checked against the server's SIZE. */
  readonly size: number;
  /** The body has octets above 127 (RFC 6152 BODY=8BITMIME). */
  readonly eightBit: boolean;
  /** The envelope or headers need SMTPUTF8 (RFC 6531); non-ASCII addresses imply it anyway. */
  readonly smtputf8: boolean;
}

export interface RecipientOutcome {
  readonly address: string;
  /** The server's reply that decided this recipient, or one Petrel made up (`local`). */
  readonly reply: Reply;
  /** The final reply to the data was 2xx for this recipient. */
  readonly delivered: boolean;
  /** Not delivered and never will be by retrying: bounce. Neither flag set means deferred. */
  readonly permanent: boolean;
  /** The reply was synthesised by Petrel (connection lost, SIZE, TLS policy…), not received: no Remote-MTA in a DSN. */
  readonly local: boolean;
}

/** Where the connection is. */
export type Phase =
  | 'greeting' // connected: the server's banner is awaited
  | 'hello' // EHLO or HELO sent
  | 'starttls' // STARTTLS sent
  | 'handshake' // STARTTLS accepted: the adapter runs TLS; bytes received meanwhile are discarded
  | 'auth' // an AUTH exchange is under way
  | 'idle' // established, no transaction: the next message or QUIT
  | 'envelope' // MAIL / RCPT / DATA sent, replies awaited (see Transaction)
  | 'body' // 354 received: the adapter streams the body; replies are held
  | 'dot' // the body and its "." are out: the final reply is awaited
  | 'rset' // RSET sent after a failed transaction
  | 'quit' // QUIT sent: 221 or the end of the connection is awaited
  | 'closed'; // over: inputs are ignored

/** RFC 5321 §4.5.3.2 minimum timeouts, in seconds. */
export const REPLY_TIMEOUTS: Readonly<Record<Phase, number | null>> = {
  greeting: 300, hello: 300, starttls: 300, handshake: 300, auth: 300, idle: null,
  envelope: 300, body: 180, dot: 600, rset: 300, quit: 300, closed: null,
};

/** Why a connection ended before its work was done; the adapter tries the next MX host. */
export interface ConnectionFailure {
  /** The client's phase when it failed. */
  readonly phase: Phase;
  /** For the log: "connection lost after RCPT", "server refused the greeting: 554 …". */
  readonly reason: string;
  /** The server's reply that ended it, if one did. */
  readonly reply?: Reply;
}

export type ClientOutput =
  /** Bytes for the socket; commands of one PIPELINING group come as one write. */
  | { readonly type: 'write'; readonly data: Buffer }
  /** STARTTLS accepted: run the handshake with this SNI, then call tlsReady() (or tlsFailed()). */
  | { readonly type: 'start-tls'; readonly servername: string; readonly verify: boolean }
  /** 354 received: stream message `id` through DataEncoder (end() included), then call bodySent(id). */
  | { readonly type: 'send-body'; readonly id: string }
  /** Every message given to send() gets exactly one of these. */
  | { readonly type: 'message-done'; readonly id: string; readonly recipients: readonly RecipientOutcome[] }
  /** Idle: nothing queued; send() another message or quit(). */
  | { readonly type: 'ready' }
  | { readonly type: 'event'; readonly event: string; readonly fields: Readonly<Record<string, unknown>> }
  /** Close the socket. `failure` null: a clean QUIT. */
  | { readonly type: 'close'; readonly reason: string; readonly failure: ConnectionFailure | null };
