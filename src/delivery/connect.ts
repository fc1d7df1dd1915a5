/**
 * Reaching a destination: its hosts in order, each address of a host in order.
 *
 * RFC 5321 §5.1: the client tries the MX hosts by preference; a connection
 * failure, a 4yz greeting or a timeout moves on to the next address or host.
 * Any refusal at setup (a 5yz greeting too, as Postfix's default
 * smtp_skip_5xx_greeting does) moves on: one host's refusal says nothing of
 * the others, and the recipients are only deferred, never bounced, when all
 * refuse (RFC 5321 §4.5.4.1: keep trying until the lifetime ends).
 * RFC 7435 (opportunistic security): under outbound_tls = may a failed TLS
 * handshake is retried once on the same address without STARTTLS, since
 * plaintext is what `may` accepts when TLS cannot be had.
 */
import type { Logger } from '../observe/log';
import type { RouteHost } from '../dns/mx';
import type { ClientConfig } from '../smtp/client-types';
import { reply, type Reply } from '../smtp/reply';
import { SmtpConnection, type ConnectionOptions, type Endpoint, type OpenFailure } from './smtp-out';

export interface ConnectSettings {
  readonly port: number;
  /** The client settings; servername is filled in per host. */
  readonly client: Omit<ClientConfig, 'servername'>;
  readonly connectTimeoutMs: number;
  readonly maxReplyTimeoutMs?: number;
  readonly tlsCa?: string | Buffer;
  readonly readBody: (id: string) => AsyncIterable<Buffer>;
  readonly log: Logger;
}

export type Reached =
  | { readonly ok: true; readonly conn: SmtpConnection }
  /** Every address failed: `reply` is the deferral all the recipients get, from the last failure. */
  | { readonly ok: false; readonly reply: Reply; readonly last: Endpoint | null };

/** Opens a connection to the first host that will talk to us. */
export async function reach(hosts: readonly RouteHost[], s: ConnectSettings): Promise<Reached> {
  let last: { endpoint: Endpoint; failure: OpenFailure } | null = null;
  for (const h of hosts) {
    for (const ip of h.addresses) {
      const endpoint: Endpoint = { host: h.name, ip, port: s.port };
      const r = await openOne(endpoint, s);
      if (r.ok) return r;
      s.log.info('connect-failed', { relay: h.name, ip, port: s.port, reason: r.reason, reply: r.reply ? r.reply.code : undefined });
      last = { endpoint, failure: r };
    }
  }
  if (!last) return { ok: false, reply: reply(451, '4.4.4', 'No host to try'), last: null };
  return { ok: false, reply: deferral(last.endpoint, last.failure), last: last.endpoint };
}

async function openOne(endpoint: Endpoint, s: ConnectSettings): Promise<{ ok: true; conn: SmtpConnection } | ({ ok: false } & OpenFailure)> {
  const opts = (tls: ClientConfig['tls']): ConnectionOptions => ({
    endpoint,
    client: { ...s.client, tls, servername: endpoint.host },
    connectTimeoutMs: s.connectTimeoutMs,
    maxReplyTimeoutMs: s.maxReplyTimeoutMs,
    tlsCa: s.tlsCa,
    readBody: s.readBody,
    log: s.log,
  });
  const first = await SmtpConnection.open(opts(s.client.tls));
  if (first.ok || !first.tlsFailed || s.client.tls !== 'may') return first;
  s.log.info('tls-fallback-plaintext', { relay: endpoint.host, ip: endpoint.ip, port: endpoint.port, reason: first.reason });
  return SmtpConnection.open(opts('none'));
}

/** The client's reasons for refusing a host on security grounds (client-session.ts secure/authenticate/onStartTls). */
const SECURITY = /\bTLS\b|STARTTLS|\bAUTH\b/;

/**
 * The reply a recipient is deferred with: the server's own 4yz when it gave
 * one; otherwise a local 451 naming the host and what happened, with RFC 3463
 * X.4.1 (no answer), X.7.4 (security features: TLS or AUTH could not be
 * had) or X.4.2 (bad connection), so `queue list` says why.
 */
function deferral(e: Endpoint, f: OpenFailure): Reply {
  const where = `${e.host}[${e.ip}]:${e.port}`;
  if (f.reply && Math.floor(f.reply.code / 100) === 4) return f.reply;
  const enhanced = !f.connected ? '4.4.1' : f.tlsFailed || SECURITY.test(f.reason) ? '4.7.4' : '4.4.2';
  return reply(451, enhanced, `${where}: ${f.reason}`);
}
