/**
 * Runs a dialogue against the pure ServerSession in memory: the exact bytes
 * the socket runner sends, fed whole per write or one byte at a time (any
 * chunking must give the same replies, STYLE.md §3 rule 10), with the
 * session's questions answered by the real decide() (src/server/decisions.ts)
 * over a MemoryQueue. This mirrors src/server/connection.ts minus the socket,
 * timers and TLS (an smtps dialogue starts as if the handshake were done).
 */
import { defaultConfig, type Config } from '../../src/config';
import { createLogger, type Logger } from '../../src/observe/log';
import { MECHANISMS } from '../../src/policy/auth';
import { inNetworks, parseCidr, type Cidr } from '../../src/policy/cidr';
import { RateWindow } from '../../src/policy/rate';
import { hashPassword, type UserEntry } from '../../src/policy/users';
import { decide, type AuthContext, type ClientFacts, type DecisionContext } from '../../src/server/decisions';
import { assertNever } from '../../src/smtp/assert-never';
import { renderReply } from '../../src/smtp/reply';
import { ServerSession } from '../../src/smtp/server-session';
import type { Output, Question, SessionConfig } from '../../src/smtp/session-types';
import { hasCertificate, playDialog, ReplyReader, type Dialog, type DialogOptions, type DialogPeer, type PlayResult, type StoredView, type WireReply } from './format';
import { MemoryQueue } from './memory-queue';

/** 'writes': each write group is one chunk; 'bytes': every byte is its own chunk. */
export type Chunking = 'writes' | 'bytes';

export interface MemoryRun {
  readonly result: PlayResult;
  readonly queue: MemoryQueue;
  /** The JSON log lines the session and decide() wrote. */
  readonly logs: readonly string[];
}

/** The client address both runners use (the socket runner connects from it). */
export const CLIENT_IP = '127.0.0.1';

const LOOPBACK: Cidr[] = ['127.0.0.0/8', '::1/128'].map((s) => parseCidr(s) as Cidr);

/** The server configuration a dialogue's options describe, over `base` (the socket runner adds listeners, data_dir, TLS files). */
export function dialogConfig(o: DialogOptions, base: Config = defaultConfig('/nonexistent')): Config {
  return {
    ...base,
    hostname: o.hostname,
    maxMessageSize: o.maxMessageSize ?? base.maxMessageSize,
    maxRecipients: o.maxRecipients ?? base.maxRecipients,
    maxErrors: o.maxErrors ?? base.maxErrors,
    localDomains: [...o.localDomains],
    // Every local part exists: dialogues test the protocol, not the recipient directory (the memory runner has none).
    catchAll: o.localDomains.map((domain) => ({ domain, user: 'postmaster' })),
    relayDomains: [...o.relayDomains],
    trustedNetworks: o.trusted ? LOOPBACK : [],
    authMaxFailures: o.authMaxFailures ?? base.authMaxFailures,
  };
}

/** The dialogue's users as users-file entries; scrypt at a tiny cost, since only the code path is under test. */
export async function dialogUsers(o: DialogOptions): Promise<UserEntry[]> {
  const cheap = { ln: 4, r: 8, p: 1 };
  return Promise.all(o.users.map(async (u) => ({ name: u.name.toLowerCase(), hash: await hashPassword(u.password, cheap), senders: u.senders })));
}

async function memoryAuth(o: DialogOptions, cfg: Config): Promise<AuthContext> {
  const users = new Map((await dialogUsers(o)).map((u) => [u.name, u]));
  return {
    users: { lookup: async (name) => users.get(name.toLowerCase()) ?? null },
    failures: new RateWindow({ limit: cfg.authMaxFailures, windowMs: cfg.authFailureWindow * 1000 }),
    messages: new RateWindow({ limit: cfg.maxMessagesPerUser.count, windowMs: cfg.maxMessagesPerUser.per * 1000 }),
    now: Date.now,
  };
}

export async function runMemory(dialog: Dialog, chunking: Chunking): Promise<MemoryRun> {
  const cfg = dialogConfig(dialog.options);
  const logs: string[] = [];
  const log = createLogger({ write: (line) => logs.push(line) });
  const queue = new MemoryQueue();
  const o = dialog.options;
  // As in src/server/server.ts: AUTH exists only where a certificate does.
  const auth = hasCertificate(o) ? await memoryAuth(o, cfg) : undefined;
  const ctx: DecisionContext & { queue: MemoryQueue } = { hostname: cfg.hostname, queue, log, localDomains: cfg.localDomains, relayDomains: cfg.relayDomains, nullMxCheck: null, auth };
  const session: SessionConfig = {
    hostname: cfg.hostname,
    maxMessageSize: cfg.maxMessageSize,
    maxRecipients: cfg.maxRecipients,
    maxErrors: cfg.maxErrors,
    tlsAvailable: hasCertificate(o),
    authMechanisms: auth ? MECHANISMS : [],
  };
  const facts = { clientIp: CLIENT_IP, tls: o.listener === 'smtps', authRequired: o.listener !== 'smtp' };
  const peer = new MemoryPeer(new ServerSession(session, facts), ctx, inNetworks(CLIENT_IP, cfg.trustedNetworks), log, chunking);
  await peer.start();
  const result = await playDialog(dialog, peer);
  // Every transaction that got body bytes must end committed or discarded: nothing leaks in the queue.
  if (queue.pending.length > 0) throw new Error(`${dialog.name}: transactions left open in the queue: ${queue.pending.join(', ')}`);
  return { result, queue, logs };
}

/** connection.ts without the socket: outputs in, replies through the wire grammar, questions to decide(). */
class MemoryPeer implements DialogPeer, ClientFacts {
  readonly clientIp = CLIENT_IP;
  traceBytes = 0;
  observer = null;
  private readonly reader = new ReplyReader();
  private readonly replies: WireReply[] = [];

  constructor(
    private readonly session: ServerSession,
    private readonly ctx: DecisionContext & { queue: MemoryQueue },
    readonly trusted: boolean,
    readonly log: Logger,
    private readonly chunking: Chunking,
  ) {}

  get authUser(): string | null {
    return this.session.authUser;
  }

  get authenticated(): boolean {
    return this.session.authUser !== null;
  }

  tlsInfo(): undefined {
    return undefined;
  }

  start(): Promise<void> {
    return this.run(this.session.start());
  }

  async write(bytes: Buffer): Promise<void> {
    if (this.chunking === 'writes') return this.run(this.session.receive(bytes));
    for (let i = 0; i < bytes.length; i++) await this.run(this.session.receive(bytes.subarray(i, i + 1)));
  }

  async nextReply(): Promise<WireReply | null> {
    const r = this.replies.shift();
    if (r) return r;
    if (this.session.closed) return null;
    throw new Error('no reply: the session is waiting for more input');
  }

  async stored(id: string): Promise<StoredView | undefined> {
    const m = this.ctx.queue.messages.get(id);
    return m && { content: m.content, sender: m.envelope.sender, recipients: m.envelope.recipients };
  }

  /** Handles outputs; answers each question and goes on with what its decision produced. */
  private async run(outputs: Output[]): Promise<void> {
    let batch = outputs;
    for (;;) {
      let question: Question | null = null;
      for (const o of batch) question = this.emit(o) ?? question;
      if (!question) return;
      batch = this.session.decide(await decide(question, this.ctx, this));
    }
  }

  private emit(o: Output): Question | null {
    switch (o.type) {
      case 'reply':
        this.replies.push(...this.reader.push(renderReply(o.reply)));
        return null;
      case 'body':
        this.ctx.queue.appendBody(o.id, o.data);
        return null;
      case 'abort':
        this.ctx.queue.discard(o.id);
        this.log.info('aborted', { id: o.id, reason: o.reason });
        return null;
      case 'event':
        this.log.info(o.event, o.fields);
        return null;
      case 'ask':
        return o.question;
      case 'start-tls':
        throw new Error('a STARTTLS handshake cannot be run in a dialogue');
      case 'close':
        this.log.info('close', { reason: o.reason });
        return null;
      default:
        return assertNever(o);
    }
  }
}
