/**
 * The router: which next hop each recipient of a queued message goes to.
 * PURE: configuration and addresses in, groups out; no DNS, no sockets.
 *
 * - Recipients whose domain is in local_domains are not delivered over SMTP
 *   (local delivery is its own transport): they are reported as `local` and
 *   left queued for it.
 * - relay_host set: every other recipient goes to the smart host, one group.
 *   "[host]" means no MX lookup (the Postfix convention, as in RFC 5321 §5.1
 *   an address literal is used as is); a bare `host` is looked up as a mail
 *   domain (MX, then implicit MX).
 * - Otherwise one group per recipient domain (RFC 5321 §5.1: the domain to
 *   the right of "@" is what is looked up). Domains compare case-insensitively
 *   (RFC 5321 §2.4), so Example.COM and example.com share one group, one
 *   lookup, one connection.
 */
import type { RelayHost } from '../config/values';

/** Where a group of recipients goes: the key for per-destination limits and connection reuse. */
export type NextHop =
  /** Deliver to the MX hosts of `domain` (or to its address literal). */
  | { readonly kind: 'mx'; readonly domain: string }
  /** The smart host: `mx` false means connect to `host` itself. */
  | { readonly kind: 'relay'; readonly host: string; readonly port: number; readonly mx: boolean };

export interface RecipientGroup {
  /** Stable name of the destination ("example.com", "relay:[smtp.example.net]:587"). */
  readonly key: string;
  readonly nextHop: NextHop;
  /** Indices into the message's recipient list, in order. */
  readonly indices: readonly number[];
}

export interface Routing {
  readonly groups: readonly RecipientGroup[];
  /** Recipients for local delivery: not this transport's, left queued. */
  readonly local: readonly number[];
}

export interface RouterConfig {
  readonly localDomains: readonly string[];
  readonly relayHost: RelayHost | null;
}

/** The domain part of an address, lowercased; '' when there is none (the caller fails such a recipient). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

export function isLocal(address: string, localDomains: readonly string[]): boolean {
  const d = domainOf(address);
  return d === '' ? false : localDomains.includes(d);
}

/** Groups the recipients at `indices` of `recipients` by next hop. */
export function route(recipients: readonly string[], indices: readonly number[], cfg: RouterConfig): Routing {
  const local: number[] = [];
  const byKey = new Map<string, { nextHop: NextHop; indices: number[] }>();
  for (const i of indices) {
    const address = recipients[i];
    if (address === undefined) continue;
    if (isLocal(address, cfg.localDomains)) {
      local.push(i);
      continue;
    }
    const nextHop = nextHopFor(address, cfg.relayHost);
    const key = destinationKey(nextHop);
    const group = byKey.get(key) ?? { nextHop, indices: [] };
    group.indices.push(i);
    byKey.set(key, group);
  }
  const groups = [...byKey.entries()].map(([key, g]) => ({ key, nextHop: g.nextHop, indices: g.indices }));
  return { groups, local };
}

export function nextHopFor(address: string, relayHost: RelayHost | null): NextHop {
  if (relayHost) return { kind: 'relay', host: relayHost.host, port: relayHost.port, mx: relayHost.mx };
  return { kind: 'mx', domain: domainOf(address) };
}

export function destinationKey(h: NextHop): string {
  if (h.kind === 'mx') return h.domain;
  const host = h.mx ? h.host : `[${h.host}]`;
  return `relay:${host}:${h.port}`;
}
