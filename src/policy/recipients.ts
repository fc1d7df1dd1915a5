/**
 * Who exists in a local domain, and where their mail goes. PURE: the user
 * list, the alias table and the configuration come in as values.
 *
 * One local address is looked up in this order (Postfix local(8) and
 * virtual(5) order, so operators meet no surprises):
 *   1. an alias `local@domain`, then `local` (aliases.ts);
 *   2. a user in users_file (one list serves SMTP AUTH and mailboxes);
 *   3. postmaster, case-insensitively: always exists (RFC 5321 §4.5.1) and,
 *      when neither aliased nor a user, is that domain's postmaster mailbox;
 *   4. plus-addressing: `user+tag` is looked up again as `user` (steps 1–3)
 *      when a recipient_delimiter character occurs in the local part;
 *   5. the domain's catch-all user (catch_all = domain:user), itself an
 *      alias or a mailbox;
 *   6. unknown: 550 5.1.1 at RCPT time (RFC 3463 X.1.1 bad destination
 *      mailbox), so that nobody is bounced to later (no backscatter).
 * Local parts are matched case-insensitively, as Postfix's lookups do
 * (RFC 5321 §2.4 leaves the choice to the receiving host).
 */
import { assertNever } from '../smtp/assert-never';
import { reply, type Reply } from '../smtp/reply';
import { expand, type AliasTable, type AliasTarget, type Expansion, type Step } from './aliases';

/** A local mailbox: the Maildir (or LMTP user) that final delivery writes to. */
export interface Mailbox {
  /** Lowercased local part without the +tag. */
  readonly user: string;
  /** Lowercased local domain. */
  readonly domain: string;
}

/** Answers "is this local@domain a user?" (a snapshot of the users file, policy/users.ts). */
export interface KnownUsers {
  /** `address` = local@domain, domain lowercased. */
  has(address: string): boolean;
}

export interface Directory {
  readonly localDomains: readonly string[];
  readonly users: KnownUsers;
  readonly aliases: AliasTable;
  /** domain → user (catch_all). */
  readonly catchAll: ReadonlyMap<string, string>;
  /** recipient_delimiter: each character separates a user from its tag; '' disables plus-addressing. */
  readonly delimiters: string;
}

/** Where a local recipient's mail goes once every alias is expanded. */
export type Destination =
  | { readonly kind: 'mailbox'; readonly mailbox: Mailbox }
  /** A remote address, or a local one that does not exist (its own recipient: it fails and bounces on its own). */
  | { readonly kind: 'forward'; readonly address: string };

export type Resolution = Expansion<Destination> | { readonly kind: 'unknown' };

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address, domain: '' };
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase().replace(/\.$/, '') };
}

export function isLocalDomain(domain: string, dir: Directory): boolean {
  return domain !== '' && dir.localDomains.includes(domain.toLowerCase());
}

/** The alias for local@domain, with local names in its targets qualified by `domain`. */
function aliasOf(local: string, domain: string, dir: Directory): AliasTarget[] | null {
  const l = local.toLowerCase();
  const targets = dir.aliases.get(`${l}@${domain}`) ?? dir.aliases.get(l);
  if (!targets) return null;
  return targets.map((t) => (t.address.includes('@') ? t : { ...t, address: `${t.address}@${domain}` }));
}

function isUser(local: string, domain: string, dir: Directory): boolean {
  return dir.users.has(`${local}@${domain}`) || dir.users.has(`${local.toLowerCase()}@${domain}`);
}

const mailbox = (user: string, domain: string): Step<Destination> => ({
  kind: 'final',
  value: { kind: 'mailbox', mailbox: { user: user.toLowerCase(), domain } },
});

/** Steps 1–3 for one exact local part; null when none applies. */
function exact(local: string, domain: string, dir: Directory, mailboxOnly: boolean): Step<Destination> | null {
  const alias = mailboxOnly ? null : aliasOf(local, domain, dir);
  if (alias) return { kind: 'alias', targets: alias };
  if (isUser(local, domain, dir) || local.toLowerCase() === 'postmaster') return mailbox(local, domain);
  return null;
}

/** The part before the first delimiter character, or null when there is none (or nothing before it). */
export function baseUser(local: string, delimiters: string): string | null {
  let cut = -1;
  for (const ch of delimiters) {
    const i = local.indexOf(ch);
    if (i > 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut > 0 ? local.slice(0, cut) : null;
}

/** One lookup of one address (steps 1–6); 'unknown' leaves it to the caller. */
export function lookup(address: string, dir: Directory, mailboxOnly = false): Step<Destination> | 'unknown' {
  const { local, domain } = splitAddress(address);
  if (!isLocalDomain(domain, dir)) return { kind: 'final', value: { kind: 'forward', address } };
  const hit = exact(local, domain, dir, mailboxOnly);
  if (hit) return hit;
  const base = baseUser(local, dir.delimiters);
  const baseHit = base === null ? null : exact(base, domain, dir, mailboxOnly);
  if (baseHit) return baseHit;
  const catchUser = dir.catchAll.get(domain);
  if (catchUser !== undefined) {
    const alias = mailboxOnly ? null : aliasOf(catchUser, domain, dir);
    // The catch-all names a mailbox the operator chose: it exists even when not in users_file.
    return alias ? { kind: 'alias', targets: alias } : mailbox(catchUser, domain);
  }
  // A `\name` or self-listed target names a mailbox explicitly; only an unknown name given by the sender is unknown.
  return mailboxOnly ? mailbox(local, domain) : 'unknown';
}

const addressKey = (a: string): string => {
  const { local, domain } = splitAddress(a);
  return `${local.toLowerCase()}@${domain}`;
};

/** Every final destination of a local recipient, or why there is none. */
export function resolveRecipient(address: string, dir: Directory): Resolution {
  const first = lookup(address, dir);
  if (first === 'unknown') return { kind: 'unknown' };
  return expand<Destination>(address, {
    // An unknown local target inside an alias becomes its own recipient, which then fails with 5.1.1 and a DSN.
    step: (a, mailboxOnly) => {
      const s = a === address && !mailboxOnly ? first : lookup(a, dir, mailboxOnly);
      return s === 'unknown' ? { kind: 'final', value: { kind: 'forward', address: a } } : s;
    },
    key: addressKey,
    finalKey: (d) => (d.kind === 'mailbox' ? `m:${d.mailbox.user}@${d.mailbox.domain}` : `f:${addressKey(d.address)}`),
  });
}

export const unknownUser = (address: string): Reply => reply(550, '5.1.1', `<${address}>: Recipient address rejected: user unknown`);
export const aliasLoop = (chain: readonly string[]): Reply => reply(550, '5.4.6', `Alias expansion loop: ${chain.join(' -> ')}`);
export const tooManyTargets = (limit: number): Reply => reply(550, '5.5.3', `Alias expansion exceeds ${limit} (depth or recipients)`);

/** The RCPT-time verdict for a recipient in a local domain: null to accept, else the refusal. */
export function verifyRecipient(address: string, dir: Directory): Reply | null {
  const r = resolveRecipient(address, dir);
  switch (r.kind) {
    case 'ok': return null;
    case 'unknown': return unknownUser(address);
    case 'loop': return aliasLoop(r.chain);
    case 'too-many': return tooManyTargets(r.limit);
    default: return assertNever(r);
  }
}
