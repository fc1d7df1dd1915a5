/**
 * The AUTH verb (RFC 4954 §4): the protocol side of an SMTP AUTH exchange.
 * Which mechanisms exist and what their responses mean is SASL, decided by
 * the adapter (src/policy/auth.ts through decisions.ts); this file frames
 * the exchange: sequence and TLS checks, the initial response ("=" is an
 * empty one), 334 challenges, "*" to cancel, the response line limit, and
 * the replies of RFC 4954 §6.
 */
import { reply, R, type Reply } from './reply';
import type { ServerSession } from './server-session';

/** RFC 4954 §4: a server must accept response lines of up to 12288 octets, CRLF included. Over it: 500 5.5.6. */
export const AUTH_LINE_MAX = 12288;

/** An AUTH exchange waiting for the client's next response line. */
export interface SaslExchange {
  readonly mechanism: string;
  /** Responses so far, base64 as received; they hold the password, so they are never logged. */
  readonly responses: readonly string[];
}

export const AUTH_REPLIES = {
  success: () => reply(235, '2.7.0', 'Authentication successful'),
  already: () => R.badSequence('Already authenticated'),
  encryptionRequired: () => reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  unknownMechanism: () => reply(504, '5.5.4', 'Unrecognized authentication type'),
  cancelled: () => reply(501, '5.0.0', 'Authentication cancelled'),
  lineTooLong: () => reply(500, '5.5.6', 'Authentication exchange line is too long'),
  required: () => reply(530, '5.7.0', 'Authentication required'),
  // RFC 3207 §4: the reply a submission port gives before STARTTLS.
  tlsFirst: () => reply(530, '5.7.0', 'Must issue a STARTTLS command first'),
} as const satisfies Record<string, () => Reply>;

/** "AUTH" SP mechanism [SP initial-response] (RFC 4954 §4). */
export function AUTH(s: ServerSession, arg: string): void {
  // §4: after a successful AUTH, further AUTH commands get 503.
  if (s.authUser !== null) return s.send(AUTH_REPLIES.already());
  const mechanisms = s.cfg.authMechanisms ?? [];
  if (mechanisms.length === 0) return s.send(R.notImplemented('AUTH not available'));
  // §4: a server must not permit plaintext password mechanisms without TLS (538 5.7.11, §6).
  if (!s.tls) return s.send(AUTH_REPLIES.encryptionRequired());
  const m = /^([A-Za-z0-9_-]{1,20})(?: ([^ ]+))?$/.exec(arg);
  if (!m) return s.send(R.syntax('Syntax: AUTH mechanism [initial-response]'));
  const mechanism = (m[1] ?? '').toUpperCase();
  if (!mechanisms.includes(mechanism)) return s.send(AUTH_REPLIES.unknownMechanism());
  const initial = m[2];
  s.event('auth-start', { mechanism, initial: initial !== undefined });
  step(s, { mechanism, responses: initial === undefined ? [] : [initial === '=' ? '' : initial] });
}

/** A response line inside an exchange; `line` is its text without CRLF. */
export function authResponse(s: ServerSession, ex: SaslExchange, line: string): void {
  // §4: a lone "*" cancels, and the server answers 501.
  if (line === '*') return s.send(AUTH_REPLIES.cancelled());
  step(s, { mechanism: ex.mechanism, responses: [...ex.responses, line] });
}

function step(s: ServerSession, ex: SaslExchange): void {
  s.ask({ kind: 'auth', mechanism: ex.mechanism, responses: ex.responses }, (d) => {
    if (!d.accept) {
      s.event('auth-refused', { mechanism: ex.mechanism, code: d.reply.code });
      s.send(d.reply);
      // The brute-force limit answers 421: the connection ends (RFC 5321 §3.8).
      if (d.reply.code === 421) s.close('authentication refused');
      return;
    }
    if (d.user !== undefined) {
      s.authenticated(d.user);
      s.event('auth', { user: d.user, mechanism: ex.mechanism });
      return s.send(d.reply ?? AUTH_REPLIES.success());
    }
    s.send(d.reply ?? reply(334, undefined, ''));
    s.awaitSasl(ex);
  });
}
