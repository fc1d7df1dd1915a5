/**
 * What the outbound client learns from EHLO and how it turns a message into
 * envelope commands: the service extensions of RFC 5321 §4.1.1.1 / §2.2.2,
 * SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), PIPELINING
 * (RFC 2920), STARTTLS (RFC 3207), AUTH (RFC 4954), CHUNKING (RFC 3030),
 * ENHANCEDSTATUSCODES (RFC 2034); and the checks that fail a message locally,
 * before any byte of it is sent, when the server could not take it.
 */
import { reply, type Reply } from './reply';
import type { ClientConfig, OutboundMessage } from './client-types';

export interface Capabilities {
  /** The server answered EHLO (false: HELO, no extensions at all). */
  readonly esmtp: boolean;
  readonly pipelining: boolean;
  /** null: SIZE not offered; 0: offered without a fixed limit (RFC 1870 §4). */
  readonly size: number | null;
  readonly eightBitMime: boolean;
  readonly smtputf8: boolean;
  readonly starttls: boolean;
  readonly chunking: boolean;
  readonly enhancedStatusCodes: boolean;
  /** SASL mechanisms, upper case. */
  readonly auth: readonly string[];
}

export const NO_EXTENSIONS: Capabilities = {
  esmtp: false, pipelining: false, size: null, eightBitMime: false, smtputf8: false,
  starttls: false, chunking: false, enhancedStatusCodes: false, auth: [],
};

/** RFC 5321 §4.1.1.1: the first line of the 250 reply is the server's name; each later line is `keyword [params]`. */
export function parseEhlo(lines: readonly string[]): Capabilities {
  const caps = { ...NO_EXTENSIONS, esmtp: true, auth: [] as string[] };
  for (const line of lines.slice(1)) {
    const [word = '', ...params] = line.trim().split(/\s+/);
    const keyword = word.toUpperCase();
    // Old servers still write "AUTH=LOGIN PLAIN" (pre-RFC 4954 drafts, Outlook clients).
    if (keyword === 'AUTH' || keyword.startsWith('AUTH=')) {
      const mechs = keyword === 'AUTH' ? params : [word.slice(5), ...params];
      for (const m of mechs) if (m && !caps.auth.includes(m.toUpperCase())) caps.auth.push(m.toUpperCase());
      continue;
    }
    switch (keyword) {
      case 'PIPELINING': caps.pipelining = true; break;
      case 'SIZE': caps.size = parseSize(params[0]); break;
      case '8BITMIME': caps.eightBitMime = true; break;
      case 'SMTPUTF8': caps.smtputf8 = true; break;
      case 'STARTTLS': caps.starttls = true; break;
      case 'CHUNKING': caps.chunking = true; break;
      case 'ENHANCEDSTATUSCODES': caps.enhancedStatusCodes = true; break;
      default: break; // RFC 5321 §2.2.2: unknown extensions are ignored.
    }
  }
  return caps;
}

function parseSize(param: string | undefined): number {
  if (param === undefined || !/^\d{1,15}$/.test(param)) return 0;
  return Number(param);
}

/** Octets that could end or split a command line: refusing them here stops command injection through an address. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Why a whole message cannot go to this server, checked before MAIL; null when it can. */
export function refuseMessage(msg: OutboundMessage, caps: Capabilities, cfg: ClientConfig): Reply | null {
  if (CONTROL.test(msg.from)) return reply(553, '5.1.7', 'Sender address contains control characters');
  // RFC 1870 §6.1: a message over the declared maximum would be refused; do not send it at all.
  if (caps.size !== null && caps.size > 0 && msg.size > caps.size) {
    return reply(552, '5.3.4', `Message size ${msg.size} exceeds the server's limit of ${caps.size}`);
  }
  // RFC 6531 §3.2: without SMTPUTF8 at the server, such a message is not deliverable there.
  if (needsSmtputf8(msg) && !caps.smtputf8) {
    return reply(553, '5.6.7', 'Message needs SMTPUTF8 and the server does not offer it');
  }
  if (msg.eightBit && !caps.eightBitMime && cfg.strict8bit === true) {
    return reply(554, '5.6.3', 'Message is 8-bit and the server does not offer 8BITMIME');
  }
  return null;
}

/** Why one recipient cannot be sent, or null. */
export function refuseRecipient(address: string): Reply | null {
  if (address === '' || CONTROL.test(address)) return reply(553, '5.1.3', 'Recipient address is empty or contains control characters');
  return null;
}

export function needsSmtputf8(msg: OutboundMessage): boolean {
  return msg.smtputf8 || NON_ASCII.test(msg.from) || msg.recipients.some((r) => NON_ASCII.test(r));
}

/** RFC 5321 §4.1.1.2 with the parameters the server offered: SIZE=, BODY=8BITMIME, SMTPUTF8. */
export function mailCommand(msg: OutboundMessage, caps: Capabilities): string {
  let line = `MAIL FROM:<${msg.from}>`;
  if (caps.size !== null) line += ` SIZE=${msg.size}`;
  if (msg.eightBit && caps.eightBitMime) line += ' BODY=8BITMIME';
  if (needsSmtputf8(msg)) line += ' SMTPUTF8';
  return `${line}\r\n`;
}

export function rcptCommand(address: string): string {
  return `RCPT TO:<${address}>\r\n`;
}
