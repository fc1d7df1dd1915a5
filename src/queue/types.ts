/**
 * Shared shapes of the queue: what a message's envelope is (RFC 5321 §3.3:
 * reverse-path, forward-paths, MAIL parameters from RFC 1870 SIZE, RFC 6152
 * 8BITMIME and RFC 6531 SMTPUTF8) and what the queue reports about a message.
 * Types and one error class only, so the pure layers can share them.
 */

export interface Envelope {
  /** Reverse-path without angle brackets; '' for the null path `<>`. */
  sender: string;
  recipients: string[];
  params: { size?: number; body?: '7BIT' | '8BITMIME'; smtputf8: boolean };
  clientIp: string;
  helo: string;
  /** ms since the epoch. */
  receivedAt: number;
  /** Set by the queue: the stored body ends with header fields that delivery puts first (Queue.commit's `prefix`). */
  prefixed?: boolean;
}

export type RecipientState = 'queued' | 'deferred' | 'delivered' | 'failed';

export interface QueuedRecipient {
  address: string;
  state: RecipientState;
  attempts: number;
  nextAttempt: number | null;
  lastReply: string | null;
}

export interface QueuedMessage {
  id: string;
  sender: string;
  size: number;
  arrived: number;
  held: boolean;
  recipients: QueuedRecipient[];
  clientIp: string;
  helo: string;
  /** MAIL parameters as received (SIZE, BODY=8BITMIME, SMTPUTF8): what the next hop must be offered. Always set by the queue. */
  params?: Envelope['params'];
}

export type QueueErrorCode = 'storage-full' | 'io' | 'poisoned' | 'closed';

/**
 * Every queue failure is temporary from the client's point of view: the SMTP
 * layer answers 452 4.3.1 (storage-full) or 451 4.3.0 and the client retries.
 */
export class QueueError extends Error {
  readonly temporary = true as const;
  constructor(
    readonly code: QueueErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'QueueError';
  }
}
