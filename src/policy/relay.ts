/**
 * Relay control: may this client hand us mail for this recipient? PURE
 * decisions over facts the server adapter gathered (client trusted? AUTH
 * done?); no I/O, so every combination is a table test.
 *
 * RFC 5321 §3.6 (relaying is the server's policy decision), §3.6.1 and
 * App. C (source routes are obsolete; servers SHOULD NOT rely on them),
 * §4.1.1.3 (bare "postmaster" must be accepted), §4.1.3 (address literals),
 * §2.4 (domains are case-insensitive), RFC 2505 (anti-relay advice
 * for the "%" and "!" tricks).
 */
import type { Mailbox, Path } from '../smtp/path';
import { reply, type Reply } from '../smtp/reply';

export interface RelayFacts {
  /** The client address is in trusted_networks. */
  trusted: boolean;
  /** The client completed SMTP AUTH in this session. */
  authenticated: boolean;
}

export interface RelayPolicy {
  localDomains: readonly string[];
  relayDomains: readonly string[];
}

/** local: deliver here · relay-domain: accept from anyone, forward · relay: forward for a trusted/authenticated client. */
export type RcptRoute = 'local' | 'relay-domain' | 'relay';

export type RelayDecision = { ok: true; route: RcptRoute } | { ok: false; reply: Reply; reason: string };

const relayDenied = (): Reply => reply(554, '5.7.1', 'Relay access denied');
const routingDenied = (): Reply => reply(554, '5.7.1', 'Relay access denied: sender-specified routing is not accepted');
const nullRecipient = (): Reply => reply(501, '5.1.3', 'Bad recipient address syntax');

/**
 * Routing chosen by the sender rather than by DNS: an explicit source route
 * (@a,@b:user@c), the "percent hack" (user%remote@local), a UUCP bang path
 * (remote!user@local), or a quoted local part hiding an address
 * ("user@remote"@local). Servers or delivery agents that honour any of these
 * turn a local domain into an open relay (RFC 2505), so untrusted clients
 * may not use them at all.
 */
export function hasSenderRouting(m: Mailbox, route: readonly string[]): boolean {
  if (route.length > 0) return true;
  if (/[%!]/.test(m.localPart)) return true;
  return m.quoted && m.localPart.includes('@');
}

export function decideRecipient(rcpt: Path, facts: RelayFacts, policy: RelayPolicy): RelayDecision {
  const m = rcpt.mailbox;
  // RCPT TO:<> is not a recipient; the path parser should have refused it already.
  if (m === null) return { ok: false, reply: nullRecipient(), reason: 'null recipient path' };
  const privileged = facts.trusted || facts.authenticated;
  if (!privileged && hasSenderRouting(m, rcpt.route)) {
    return { ok: false, reply: routingDenied(), reason: `sender-specified routing in ${describe(m, rcpt.route)}` };
  }
  if (m.domainKind === 'none') return postmaster(m);
  const route = classify(normalizeDomain(m), policy);
  if (route !== null) return { ok: true, route };
  if (privileged) return { ok: true, route: 'relay' };
  return { ok: false, reply: relayDenied(), reason: `relay to ${m.domain} denied for untrusted, unauthenticated client` };
}

/** RFC 5321 §4.1.1.3: "postmaster" without a domain is local, case-insensitively. */
function postmaster(m: Mailbox): RelayDecision {
  if (m.localPart.toLowerCase() === 'postmaster') return { ok: true, route: 'local' };
  return { ok: false, reply: nullRecipient(), reason: `recipient ${m.localPart} has no domain` };
}

function classify(domain: string, policy: RelayPolicy): RcptRoute | null {
  if (policy.localDomains.some((d) => normalizeName(d) === domain)) return 'local';
  if (policy.relayDomains.some((d) => normalizeName(d) === domain)) return 'relay-domain';
  return null;
}

/**
 * An address literal ([192.0.2.1]) is compared as text with the listed domains,
 * so it is local only when an operator lists it in local_domains: RFC 5321
 * §4.1.3 lets a host accept mail for its own literal, but accepting every
 * literal would let anyone relay through us to an arbitrary IP address.
 * Different spellings of one IPv6 literal are therefore distinct.
 */
function normalizeDomain(m: Mailbox): string {
  const d = normalizeName(m.domain);
  if (m.domainKind === 'dns' || d.startsWith('[')) return d;
  return `[${d}]`;
}

/** Domains compare case-insensitively (RFC 5321 §2.4) and "example.com." is "example.com". */
function normalizeName(d: string): string {
  const lower = d.toLowerCase();
  return lower.endsWith('.') && !lower.startsWith('[') ? lower.slice(0, -1) : lower;
}

function describe(m: Mailbox, route: readonly string[]): string {
  const addr = `${m.localPart}@${m.domain}`;
  return route.length > 0 ? `${route.map((r) => `@${r.replace(/^@/, '')}`).join(',')}:${addr}` : addr;
}
