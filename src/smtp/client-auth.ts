/**
 * AUTH for the outbound client when it relays through a smart host: RFC 4954
 * (SMTP AUTH) with PLAIN (RFC 4616, credentials in the initial response) or,
 * when PLAIN is not offered, LOGIN (the de-facto two-prompt mechanism of
 * draft-murchison-sasl-login). The session only starts this over TLS.
 */
import type { Reply } from './reply';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** Where an AUTH exchange is. */
export type AuthStep =
  | 'plain' // AUTH PLAIN with its initial response sent: 235 awaited
  | 'login' // AUTH LOGIN sent: the 334 user-name prompt awaited
  | 'login-user' // user name sent: the 334 password prompt awaited
  | 'login-pass'; // password sent: 235 awaited

export type AuthMove =
  | { readonly kind: 'send'; readonly line: string; readonly step: AuthStep }
  | { readonly kind: 'done' }
  | { readonly kind: 'refused' }
  | { readonly kind: 'error'; readonly reason: string };

/** The opening AUTH command for the mechanisms the server offered, or null when none is usable. */
export function authStart(mechanisms: readonly string[], c: Credentials): { line: string; step: AuthStep } | null {
  // RFC 4616 §2: message = [authzid] NUL authcid NUL passwd.
  if (mechanisms.includes('PLAIN')) return { line: `AUTH PLAIN ${b64(`\0${c.user}\0${c.password}`)}\r\n`, step: 'plain' };
  if (mechanisms.includes('LOGIN')) return { line: 'AUTH LOGIN\r\n', step: 'login' };
  return null;
}

/** The answer to a server reply during the exchange. */
export function authNext(step: AuthStep, r: Reply, c: Credentials): AuthMove {
  const k = Math.floor(r.code / 100);
  if (k === 4 || k === 5) return { kind: 'refused' };
  if (k === 2 && (step === 'plain' || step === 'login-pass')) return { kind: 'done' };
  if (r.code === 334 && step === 'login') return { kind: 'send', line: `${b64(c.user)}\r\n`, step: 'login-user' };
  if (r.code === 334 && step === 'login-user') return { kind: 'send', line: `${b64(c.password)}\r\n`, step: 'login-pass' };
  return { kind: 'error', reason: `AUTH answered with ${r.code}` };
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}
