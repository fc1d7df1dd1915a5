/**
 * SASL for SMTP AUTH, server side: what each client response of an AUTH
 * exchange means. PURE: no I/O; the adapter (src/server/decisions.ts) asks
 * this module after every response and then verifies the credentials.
 *
 * RFC 4954 §4 (AUTH command: responses are BASE64, a malformed one is
 * refused with 501, "=" is an empty initial response), RFC 4648 §4 (base64
 * alphabet and padding, decoded strictly), RFC 4616 §2 (PLAIN: message =
 * [authzid] NUL authcid NUL passwd, each 1..255 UTF-8 octets),
 * draft-murchison-sasl-login-00 (LOGIN: "Username:" then "Password:").
 */
import { assertNever } from '../smtp/assert-never';

/** The mechanisms Petrel offers, in EHLO order. Both send the password itself, so only over TLS (RFC 4954 §4). */
export const MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export function isMechanism(name: string): name is Mechanism {
  return (MECHANISMS as readonly string[]).includes(name);
}

/** What the exchange needs next, after the client responses so far. */
export type SaslStep =
  /** Send "334 text" (text already base64) and wait for one more response. */
  | { readonly kind: 'challenge'; readonly text: string }
  /** Everything needed was received: verify it. `authzid` is '' when the client asked for none. */
  | { readonly kind: 'credentials'; readonly authzid: string; readonly authcid: string; readonly password: string }
  /** The response is not valid base64 or not a valid message of the mechanism: 501 (RFC 4954 §4). */
  | { readonly kind: 'malformed'; readonly reason: string };

/** RFC 4616 §2: authzid, authcid and passwd are each at most 255 octets. */
const MAX_FIELD = 255;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One step of a SASL exchange. `responses` are the client's base64 texts in
 * order: the initial response of the AUTH command (if any; "" for "="),
 * then one per 334 challenge.
 */
export function saslStep(mechanism: Mechanism, responses: readonly string[]): SaslStep {
  switch (mechanism) {
    case 'PLAIN':
      return plainStep(responses);
    case 'LOGIN':
      return loginStep(responses);
    default:
      return assertNever(mechanism);
  }
}

function plainStep(responses: readonly string[]): SaslStep {
  const [first] = responses;
  // RFC 4616 §2 via RFC 4954 §4: without an initial response the server sends an empty challenge.
  if (first === undefined) return { kind: 'challenge', text: '' };
  if (responses.length > 1) return { kind: 'malformed', reason: 'PLAIN takes one response' };
  const bytes = decodeBase64(first);
  if (bytes === null) return { kind: 'malformed', reason: 'response is not valid base64' };
  return parsePlain(bytes);
}

/** LOGIN prompts: base64 of "Username:" and "Password:", the texts every LOGIN client expects. */
const USERNAME_PROMPT = Buffer.from('Username:').toString('base64');
const PASSWORD_PROMPT = Buffer.from('Password:').toString('base64');

function loginStep(responses: readonly string[]): SaslStep {
  const decoded: string[] = [];
  for (const r of responses) {
    const text = decodeText(r);
    if (text === null) return { kind: 'malformed', reason: 'response is not valid base64 UTF-8 text' };
    decoded.push(text);
  }
  const [user, password] = decoded;
  if (user === undefined) return { kind: 'challenge', text: USERNAME_PROMPT };
  if (!validField(user)) return { kind: 'malformed', reason: 'user name is empty, too long or contains NUL' };
  if (password === undefined) return { kind: 'challenge', text: PASSWORD_PROMPT };
  if (decoded.length > 2 || !validField(password)) return { kind: 'malformed', reason: 'password is empty, too long or contains NUL' };
  return { kind: 'credentials', authzid: '', authcid: user, password };
}

/** RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. */
export function parsePlain(bytes: Buffer): SaslStep {
  const first = bytes.indexOf(0);
  const second = first < 0 ? -1 : bytes.indexOf(0, first + 1);
  if (second < 0 || bytes.indexOf(0, second + 1) >= 0) return { kind: 'malformed', reason: 'PLAIN message needs exactly two NUL separators' };
  let fields: string[];
  try {
    fields = [bytes.subarray(0, first), bytes.subarray(first + 1, second), bytes.subarray(second + 1)].map((b) => utf8.decode(b));
  } catch {
    return { kind: 'malformed', reason: 'PLAIN message is not UTF-8' };
  }
  const [authzid = '', authcid = '', password = ''] = fields;
  if (Buffer.byteLength(authzid) > MAX_FIELD || !validField(authcid) || !validField(password)) {
    return { kind: 'malformed', reason: 'PLAIN authcid and passwd must be 1 to 255 octets' };
  }
  return { kind: 'credentials', authzid, authcid, password };
}

function validField(s: string): boolean {
  const n = Buffer.byteLength(s);
  return n > 0 && n <= MAX_FIELD && !s.includes('\0');
}

/**
 * Strict base64 (RFC 4648 §4): the standard alphabet, length a multiple of 4,
 * at most two "=" and only at the end, no whitespace, and unused bits zero
 * (§3.5), so that one text has exactly one meaning. Node's decoder skips
 * anything it does not like, which would turn garbage into credentials.
 */
export function decodeBase64(text: string): Buffer | null {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

function decodeText(text: string): string | null {
  const bytes = decodeBase64(text);
  if (bytes === null) return null;
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * RFC 4616 §2: an authorization identity other than the authenticated one is
 * a request to act as someone else; Petrel grants that to nobody, so only an
 * empty authzid or the user's own name (in any letter case) is allowed.
 */
export function authzidAllowed(authzid: string, authcid: string): boolean {
  return authzid === '' || authzid.toLowerCase() === authcid.toLowerCase();
}
