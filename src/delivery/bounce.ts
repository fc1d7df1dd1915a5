/**
 * The bounce for a finished message whose recipients failed: ONE DSN (RFC 3464,
 * built by message/dsn.ts) listing every failed recipient, from the null
 * sender (RFC 5321 §4.5.5: so that a bounce of the bounce cannot loop) to the
 * original envelope sender, carrying the original header section (RFC 6522
 * text/rfc822-headers) read from the queue without loading the body.
 *
 * Per recipient: Status is the remote enhanced code when the reply had one
 * of the right class (RFC 3463 via statusFromReply), Remote-MTA the host that
 * answered (when one did and it is still known), Diagnostic-Code the reply.
 */
import { buildDsn, statusFromReply, type DsnRecipient } from '../message/dsn';
import { readHeaderSection } from '../message/header-scan';
import type { Envelope } from '../queue/types';
import { parseReplyText } from './outcome';

export interface FailedRecipient {
  readonly address: string;
  /** The reply that failed it, as recorded ("550 5.1.1 <u@example.com>: no such user"). */
  readonly reply: string;
  /** The MX host that gave the reply; absent for local decisions (null MX, NXDOMAIN) and after a restart. */
  readonly remoteMta?: string;
}

export interface BounceInput {
  readonly queueId: string;
  /** The original envelope sender: the bounce's only recipient. Never ''. */
  readonly sender: string;
  readonly arrivedMs: number;
  readonly failed: readonly FailedRecipient[];
  /** Our host name: Reporting-MTA, From: MAILER-DAEMON@…, the Message-ID's domain. */
  readonly hostname: string;
  readonly now: Date;
  /** The original message, streamed. */
  readonly body: AsyncIterable<Buffer>;
}

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

export async function makeBounce(input: BounceInput): Promise<{ envelope: Envelope; body: Buffer }> {
  const originalHeaders = await readHeaderSection(input.body);
  const body = buildDsn({
    reportingMta: input.hostname,
    queueId: input.queueId,
    sender: input.sender,
    arrivalDate: new Date(input.arrivedMs),
    date: input.now,
    recipients: input.failed.map((f) => dsnRecipient(f, input.now)),
    originalHeaders,
    messageIdDomain: input.hostname,
  });
  const envelope: Envelope = {
    sender: '',
    recipients: [input.sender],
    params: {
      size: body.length,
      body: body.some((b) => b > 0x7f) ? '8BITMIME' : '7BIT',
      // RFC 6531: a UTF-8 mailbox can only be reached over SMTPUTF8.
      smtputf8: NON_ASCII.test(input.sender),
    },
    clientIp: '127.0.0.1',
    helo: input.hostname,
    receivedAt: input.now.getTime(),
  };
  return { envelope, body };
}

function dsnRecipient(f: FailedRecipient, now: Date): DsnRecipient {
  const { code, enhanced } = parseReplyText(f.reply);
  return {
    address: f.address,
    action: 'failed',
    status: statusFromReply(code, enhanced),
    remoteMta: f.remoteMta,
    diagnostic: f.reply,
    lastAttempt: now,
  };
}
