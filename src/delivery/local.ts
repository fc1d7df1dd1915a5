/**
 * The local transport: what the delivery engine calls for recipients in
 * local_domains. Each recipient is resolved (policy/recipients.ts: aliases,
 * users, postmaster, plus-addressing, catch-all), then:
 * - its local mailboxes get the message, in Maildirs (maildir.ts) or over
 *   LMTP (lmtp.ts, RFC 2033) when local_transport says so;
 * - its remote alias targets (and local targets that do not exist) are
 *   re-queued as ONE new message with the same envelope sender (RFC 5321
 *   §3.9.1: forwarding through an alias keeps the return path) and a
 *   Delivered-To field for the alias on top. Each target then has its own
 *   queue state, retries and DSN; the original recipient counts as
 *   delivered once the new message is durable (queue.submit).
 * The recipient's reply is the worst of its parts: any 4yz defers it (the
 * whole recipient is retried, at-least-once), else any 5yz fails it.
 *
 * Loops: an alias cycle is found during expansion (550 5.4.6), and a message
 * that already carries "Delivered-To: <this recipient>" has been here
 * before through some forwarder (Postfix local(8)'s check; RFC 5321 §6.3
 * asks for loop detection): it fails with 5.4.6 and bounces rather than
 * circling forever.
 *
 * LocalDirectory is the I/O half of policy/recipients.ts: it re-reads the
 * aliases file when it changes and answers RCPT-time verification.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Config } from '../config/schema';
import { readHeaderSection } from '../message/header-scan';
import type { Logger } from '../observe/log';
import { parseAliases, type AliasTable } from '../policy/aliases';
import {
  aliasLoop, resolveRecipient, tooManyTargets, unknownUser, verifyRecipient,
  type Destination, type Directory, type KnownUsers, type Mailbox,
} from '../policy/recipients';
import type { Envelope, QueuedMessage } from '../queue/types';
import { assertNever } from '../smtp/assert-never';
import { reply, type Reply } from '../smtp/reply';
import { deliverToMaildir, deliveryHeaders, maildirFailure, maildirPath } from './maildir';
import { lmtpDeliver, type LmtpTarget } from './lmtp';
import type { LocalTransportSetting } from '../config/values';

/** The aliases file is stat()ed, and the user list asked for, at most this often; a changed file is read again. */
const RELOAD_CHECK_MS = 1000;

/** The users file (policy/users.ts UserStore): entries named by lowercase address. */
export interface UserSource {
  list(): Promise<readonly { readonly name: string }[]>;
}

export interface DirectoryOptions {
  readonly localDomains: readonly string[];
  readonly aliasesFile: string | null;
  readonly catchAll: readonly { domain: string; user: string }[];
  readonly delimiters: string;
  readonly users: UserSource;
  readonly log: Logger;
  readonly now?: () => number;
}

export class LocalDirectory {
  private aliases: AliasTable | null;
  private stamp = '';
  private checkedAt = -Infinity;
  private reloading: Promise<void> | null = null;
  private readonly catchAll: Map<string, string>;
  private users: KnownUsers | null = null;
  private usersAt = -Infinity;

  constructor(private readonly opts: DirectoryOptions) {
    this.aliases = opts.aliasesFile === null ? new Map() : null;
    this.catchAll = new Map(opts.catchAll.map((c) => [c.domain.toLowerCase(), c.user]));
  }

  /** The directory as of now; null while a configured aliases file has never been readable (callers answer 4yz). */
  async current(): Promise<Directory | null> {
    await this.reload();
    const users = await this.knownUsers();
    if (this.aliases === null || users === null) return null;
    const { localDomains, delimiters } = this.opts;
    return { localDomains, users, aliases: this.aliases, catchAll: this.catchAll, delimiters };
  }

  /** RCPT-time check of a local recipient: null to accept, else the reply (550 5.1.1 for an unknown user). */
  async verify(address: string): Promise<Reply | null> {
    const dir = await this.current();
    return dir ? verifyRecipient(address, dir) : aliasesUnavailable();
  }

  /** A snapshot of the user names, refreshed at most once per RELOAD_CHECK_MS (UserStore re-reads a changed file). */
  private async knownUsers(): Promise<KnownUsers | null> {
    const now = (this.opts.now ?? Date.now)();
    if (this.users !== null && now - this.usersAt < RELOAD_CHECK_MS) return this.users;
    try {
      const names = new Set((await this.opts.users.list()).map((u) => u.name.toLowerCase()));
      this.users = { has: (a) => names.has(a.toLowerCase()) };
      this.usersAt = now;
    } catch (err) {
      this.opts.log.error('users-unreadable', { error: err, using_previous: this.users !== null });
    }
    return this.users;
  }

  /** Re-reads a changed aliases file, at most once per RELOAD_CHECK_MS; concurrent callers share one check. */
  private reload(): Promise<void> {
    const file = this.opts.aliasesFile;
    const now = (this.opts.now ?? Date.now)();
    if (file === null || now - this.checkedAt < RELOAD_CHECK_MS) return this.reloading ?? Promise.resolve();
    this.checkedAt = now;
    this.reloading = this.readAliases(file).finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  /** Off the event loop (fs/promises): a slow disk must not stall every session. */
  private async readAliases(file: string): Promise<void> {
    try {
      const st = await stat(file);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (stamp === this.stamp && this.aliases !== null) return;
      const parsed = parseAliases(await readFile(file, 'utf8'));
      for (const p of parsed.problems) this.opts.log.warn('aliases-problem', { file: `${file}:${p.line}`, reason: p.reason });
      this.aliases = parsed.table;
      this.stamp = stamp;
      this.opts.log.info('aliases-loaded', { file, aliases: parsed.table.size });
    } catch (err) {
      // Keep the last good table: an editor mid-save or a brief permission slip must not turn aliases into 550s.
      this.opts.log.error('aliases-unreadable', { file, error: err, using_previous: this.aliases !== null });
    }
  }

}

const aliasesUnavailable = (): Reply => reply(451, '4.3.0', 'Recipient directory unavailable, try again later');

/** What the local transport needs of the queue. */
export interface LocalQueue {
  readBody(id: string): AsyncIterable<Buffer>;
  /** Enqueues a message made here; without it, forwarding through an alias is deferred. */
  submit?(envelope: Envelope, body: Buffer): Promise<string>;
}

export type LocalMessage = QueuedMessage & { readonly params?: Envelope['params'] };

export interface LocalResult {
  readonly index: number;
  readonly reply: Reply;
}

export interface LocalOptions {
  readonly directory: LocalDirectory;
  readonly transport: LocalTransportSetting;
  readonly maildirRoot: string;
  readonly hostname: string;
  readonly log: Logger;
  readonly fsync?: boolean;
  readonly now?: () => number;
  /** LMTP: connect and reply timeout (default 30 s). */
  readonly lmtpTimeoutMs?: number;
}

interface Resolved {
  readonly index: number;
  readonly address: string;
  readonly mailboxes: readonly Mailbox[];
  readonly forwards: readonly string[];
}

export class LocalDelivery {
  constructor(readonly opts: LocalOptions) {}

  static fromConfig(cfg: Config, deps: { users: UserSource; log: Logger }): LocalDelivery {
    const directory = new LocalDirectory({
      localDomains: cfg.localDomains, aliasesFile: cfg.aliasesFile, catchAll: cfg.catchAll,
      delimiters: cfg.recipientDelimiter, users: deps.users, log: deps.log,
    });
    return new LocalDelivery({
      directory, transport: cfg.localTransport, maildirRoot: cfg.maildirRoot, hostname: cfg.hostname, log: deps.log, fsync: cfg.queueFsync,
    });
  }

  /** Delivers the recipients at `indices` of `msg`; one reply per index, never throws for a delivery problem. */
  async deliver(queue: LocalQueue, msg: LocalMessage, indices: readonly number[]): Promise<LocalResult[]> {
    const dir = await this.opts.directory.current();
    if (!dir) return indices.map((index) => ({ index, reply: aliasesUnavailable() }));
    const seen = await deliveredTo(queue.readBody(msg.id));
    const results: LocalResult[] = [];
    const work: Resolved[] = [];
    for (const index of indices) {
      const address = msg.recipients[index]?.address ?? '';
      const r = this.resolve(dir, address, seen);
      if ('reply' in r) results.push({ index, reply: r.reply });
      else work.push({ index, address, ...r });
    }
    const mailboxReplies = await this.toMailboxes(queue, msg, work);
    for (const w of work) {
      const own = mailboxReplies.get(w.index) ?? [];
      const fwd = w.forwards.length > 0 ? await this.forward(queue, msg, w) : null;
      results.push({ index: w.index, reply: combine(w, own, fwd) });
    }
    return results.sort((a, b) => a.index - b.index);
  }

  private resolve(dir: Directory, address: string, seen: ReadonlySet<string>): { reply: Reply } | { mailboxes: Mailbox[]; forwards: string[] } {
    if (seen.has(address.toLowerCase())) return { reply: reply(550, '5.4.6', `Mail forwarding loop for <${address}>`) };
    const r = resolveRecipient(address, dir);
    switch (r.kind) {
      case 'unknown': return { reply: unknownUser(address) };
      case 'loop': return { reply: aliasLoop(r.chain) };
      case 'too-many': return { reply: tooManyTargets(r.limit) };
      case 'ok': return split(r.finals);
      default: return assertNever(r);
    }
  }

  /** index → one reply per mailbox of that recipient. */
  private async toMailboxes(queue: LocalQueue, msg: LocalMessage, work: readonly Resolved[]): Promise<Map<number, Reply[]>> {
    const out = new Map<number, Reply[]>();
    const t = this.opts.transport;
    if (t.kind !== 'maildir') {
      const targets: LmtpTarget[] = work.flatMap((w) => w.mailboxes.map((m) => ({ index: w.index, address: `${m.user}@${m.domain}` })));
      if (targets.length === 0) return out;
      const replies = await lmtpDeliver(t, { from: msg.sender, targets, body: () => queue.readBody(msg.id), hostname: this.opts.hostname, timeoutMs: this.opts.lmtpTimeoutMs ?? 30_000 });
      targets.forEach((tg, k) => out.set(tg.index, [...(out.get(tg.index) ?? []), replies[k] ?? reply(451, '4.3.0', 'No LMTP reply')]));
      return out;
    }
    for (const w of work) out.set(w.index, await Promise.all(w.mailboxes.map((m) => this.toMaildir(queue, msg, w.address, m))));
    return out;
  }

  private async toMaildir(queue: LocalQueue, msg: LocalMessage, address: string, m: Mailbox): Promise<Reply> {
    const path = maildirPath(this.opts.maildirRoot, m);
    try {
      const file = await deliverToMaildir(path, deliveryHeaders(msg.sender, address), queue.readBody(msg.id), { hostname: this.opts.hostname, fsync: this.opts.fsync });
      this.opts.log.debug('maildir-written', { id: msg.id, to: address, file });
      return reply(250, '2.0.0', `Delivered to maildir of ${m.user}@${m.domain}`);
    } catch (err) {
      const r = maildirFailure(err);
      this.opts.log.warn('maildir-failed', { id: msg.id, to: address, mailbox: path, error: err, reply: r });
      return r;
    }
  }

  /** Re-queues the remote (and unknown local) targets of one alias as one new message. */
  private async forward(queue: LocalQueue, msg: LocalMessage, w: Resolved): Promise<Reply> {
    if (!queue.submit) return reply(451, '4.3.0', 'Forwarding is not available');
    try {
      const chunks: Buffer[] = [Buffer.from(`Delivered-To: ${w.address.replace(/[\r\n]/g, '')}\r\n`)];
      for await (const c of queue.readBody(msg.id)) chunks.push(c);
      const body = Buffer.concat(chunks);
      const envelope: Envelope = {
        sender: msg.sender, recipients: [...w.forwards],
        params: { ...(msg.params ?? { smtputf8: false }), size: body.length },
        clientIp: '127.0.0.1', helo: this.opts.hostname, receivedAt: (this.opts.now ?? Date.now)(),
      };
      const id = await queue.submit(envelope, body);
      this.opts.log.info('forwarded', { id: msg.id, to: w.address, new_id: id, recipients: w.forwards });
      return reply(250, '2.0.0', `Forwarded to ${w.forwards.length} recipient(s) as ${id}`);
    } catch (err) {
      this.opts.log.error('forward-failed', { id: msg.id, to: w.address, error: err });
      return reply(451, '4.3.0', 'Could not queue the forwarded copy');
    }
  }
}

function split(finals: readonly Destination[]): { mailboxes: Mailbox[]; forwards: string[] } {
  const mailboxes: Mailbox[] = [];
  const forwards: string[] = [];
  for (const d of finals) {
    if (d.kind === 'mailbox') mailboxes.push(d.mailbox);
    else forwards.push(d.address);
  }
  return { mailboxes, forwards };
}

/** Any 4yz → that one (retry everything); else any 5yz; else a summary 250. */
function combine(w: Resolved, own: readonly Reply[], fwd: Reply | null): Reply {
  const all = fwd ? [...own, fwd] : [...own];
  const temp = all.find((r) => Math.floor(r.code / 100) === 4);
  if (temp) return temp;
  const perm = all.find((r) => Math.floor(r.code / 100) === 5);
  if (perm) return perm;
  if (all.length === 1 && all[0]) return all[0];
  return reply(250, '2.0.0', `Delivered to ${w.mailboxes.length} mailbox(es)${fwd ? `; ${fwd.lines.join(' ')}` : ''}`);
}

/** Lowercased addresses of every Delivered-To field in the header section. */
export async function deliveredTo(body: AsyncIterable<Buffer>): Promise<Set<string>> {
  const text = (await readHeaderSection(body)).toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const out = new Set<string>();
  for (const m of text.matchAll(/^delivered-to:[ \t]*<?([^>\r\n]*?)>?[ \t]*$/gim)) out.add((m[1] ?? '').toLowerCase());
  return out;
}
