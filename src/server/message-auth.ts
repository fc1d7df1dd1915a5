/**
 * Sender authentication at the edge of the server: for each transaction,
 * whether the message is signed (a trusted or authenticated client, and a
 * dkim_sign key for its From domain) or checked (anyone else, while
 * auth_checks is on); the observer that watches the message stream into the
 * queue; and at end of data the header fields to store with it (a
 * DKIM-Signature or an Authentication-Results field), or a DMARC refusal.
 *
 * The pure work is in src/auth; this adapter adds the clock, the DNS and one
 * deadline over the whole check, so hostile or dead DNS costs a session a
 * bounded wait and a temperror result, never a hang.
 */
import { renderAuthResults } from '../auth/auth-results';
import type { SigningKey } from '../auth/dkim/keys';
import { evaluateInbound, rejectReply, type InboundDns } from '../auth/inbound';
import { MessageObserver } from '../auth/message-observer';
import { signObserved, signWhole, type SignOutcome } from '../auth/outbound-sign';
import type { Queue } from '../queue/queue';
import type { ControlQueue } from './control';
import type { Logger } from '../observe/log';
import { R, type Reply } from '../smtp/reply';
import { assertNever } from '../smtp/assert-never';

/** The whole inbound check (SPF's ten lookups, every DKIM key, DMARC) ends within this. */
export const CHECK_DEADLINE_MS = 20_000;

export interface MessageAuthConfig {
  /** This server's name, the authserv-id of its Authentication-Results fields (RFC 8601 §2.5). */
  readonly authservId: string;
  readonly keys: readonly SigningKey[];
  readonly checks: boolean;
  readonly enforcement: 'reject' | 'quarantine' | 'none';
  readonly dns: InboundDns;
  /** ms since the epoch. */
  readonly now: () => number;
  readonly deadlineMs?: number;
}

export interface SenderFacts {
  readonly clientIp: string;
  readonly helo: string;
  /** Reverse-path without brackets, '' for <>. */
  readonly mailFrom: string;
}

export type EndOfData =
  | { readonly kind: 'accept'; readonly prefix: Buffer | null; readonly log: Record<string, unknown> | null }
  | { readonly kind: 'reject'; readonly reply: Reply; readonly log: Record<string, unknown> };

export class MessageAuth {
  /** Observers begun for signing; the rest check. */
  private readonly signers = new WeakSet<MessageObserver>();

  constructor(private readonly cfg: MessageAuthConfig) {}

  /** The observer for a new transaction, or null when this message is neither signed nor checked. */
  begin(client: { readonly trusted: boolean; readonly authenticated: boolean }): MessageObserver | null {
    const own = client.trusted || client.authenticated;
    const sign = own && this.cfg.keys.length > 0;
    const verify = !own && this.cfg.checks;
    if (!sign && !verify) return null;
    const observer = new MessageObserver({ authservId: this.cfg.authservId, sign, verify });
    if (sign) this.signers.add(observer);
    return observer;
  }

  /** After observer.end(): what to store in front of the message, or a refusal. */
  async finish(observer: MessageObserver, facts: SenderFacts): Promise<EndOfData> {
    if (this.signers.has(observer)) return { kind: 'accept', ...this.sign(observer) };
    return this.check(observer, facts);
  }

  private sign(observer: MessageObserver): { prefix: Buffer | null; log: Record<string, unknown> } {
    const observed = observer.observed;
    if (!observed) return { prefix: null, log: { dkim: 'not signed: header section too large' } };
    return signedLog(signObserved(observed, this.cfg.keys, Math.floor(this.cfg.now() / 1000)));
  }

  private async check(observer: MessageObserver, facts: SenderFacts): Promise<EndOfData> {
    const verdict = await withDeadline(
      evaluateInbound(observer.observed, { ...facts, authservId: this.cfg.authservId, now: Math.floor(this.cfg.now() / 1000) }, this.cfg.dns, {
        enforcement: this.cfg.enforcement,
        random: Math.random, // DMARC pct= sampling (RFC 7489 §6.6.4)
      }),
      this.cfg.deadlineMs ?? CHECK_DEADLINE_MS,
    );
    if (verdict === null) return this.timedOut(facts);
    // A header section too large to check must not be a way around DMARC: tag it rather than pass it.
    const action = observer.observed === null && this.cfg.enforcement !== 'none' ? 'quarantine' : verdict.action;
    const log = { ...verdict.logFields, action };
    switch (action) {
      case 'reject':
        return { kind: 'reject', reply: rejectReply(verdict) ?? R.localError(), log };
      case 'quarantine': {
        const why = observer.observed === null ? 'header-too-large' : `dmarc=fail policy=${verdict.dmarc?.policy ?? 'none'}`;
        return { kind: 'accept', prefix: Buffer.concat([verdict.header, quarantineTag(why)]), log };
      }
      case 'accept':
        return { kind: 'accept', prefix: verdict.header, log };
      default:
        return assertNever(action);
    }
  }

  /** Every method temperror: the message is accepted and marked as unchecked, never refused for our DNS. */
  private timedOut(facts: SenderFacts): EndOfData {
    const reason = 'checks did not finish in time';
    const header = renderAuthResults({
      authservId: this.cfg.authservId,
      spf: { result: 'temperror', reason, ...(facts.mailFrom ? { mailfrom: facts.mailFrom } : { helo: facts.helo }) },
      dkim: [{ result: 'temperror', reason }],
    });
    return { kind: 'accept', prefix: header, log: { spf: 'temperror', dkim: 'temperror', dmarc: 'temperror', reason } };
  }
}

/**
 * A DMARC quarantine is a tag, not a folder: X-Spam-Flag is what Sieve
 * scripts, Dovecot and most mail clients already file on.
 */
function quarantineTag(why: string): Buffer {
  return Buffer.from(`X-Spam-Flag: YES\r\nX-Petrel-Quarantine: ${why}\r\n`);
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  return Promise.race([p.catch(() => null), deadline]).finally(() => clearTimeout(timer));
}

function signedLog(s: SignOutcome): { prefix: Buffer | null; log: Record<string, unknown> } {
  if ('skip' in s) return { prefix: null, log: { dkim: `not signed: ${s.skip}` } };
  return { prefix: s.field, log: { dkim: 'signed', d: s.domain, s: s.selector } };
}

/**
 * The queue as the control socket (or `petrel sendmail` without a server)
 * sees it: a locally submitted message is the host's own mail, so it is
 * DKIM-signed like mail from a trusted client.
 */
export function signingQueue(queue: Queue, keys: readonly SigningKey[], log: Logger | null, now: () => number = Date.now): ControlQueue {
  return {
    operate: (id, op) => queue.operate(id, op),
    list: () => queue.list(),
    submit: async (envelope, body) => {
      const signed = keys.length > 0 ? signedLog(signWhole(body, keys, Math.floor(now() / 1000))) : null;
      if (signed) log?.info('sender-auth', { ...signed.log, via: 'sendmail' });
      return queue.submit(envelope, body, signed?.prefix ?? undefined);
    },
  };
}
