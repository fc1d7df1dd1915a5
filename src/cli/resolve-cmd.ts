/**
 * `petrel resolve DOMAIN [--json]` (DESIGN.md command line): prints the route
 * Petrel would use for mail to DOMAIN, from the same resolver the delivery
 * code uses (src/dns/resolver.ts; RFC 5321 §5.1 MX order, RFC 7505 null MX),
 * against the configured dns_servers.
 *
 * The answer goes to stdout even when it is a failure ("no such domain" is
 * an answer, as with host(1)); stderr carries only usage errors. Exit status
 * follows sysexits(3) the way the delivery code treats the outcome:
 * 0 a route, 1 a permanent failure (the mail would bounce), 75 EX_TEMPFAIL
 * (the mail would be deferred), 64 EX_USAGE.
 */
import { assertNever } from '../smtp/assert-never';
import { routeFailure, type Route } from '../dns/mx';
import { createResolver, type DnsServer } from '../dns/resolver';

type Print = (s: string) => void;

const USAGE = 'usage: petrel resolve DOMAIN [--json]\n';
const EX_USAGE = 64;
const EX_PERMANENT = 1;
const EX_TEMPFAIL = 75;

export interface ResolveCommandOptions {
  readonly timeoutMs?: number;
  readonly tries?: number;
}

export async function resolveCommand(
  args: string[],
  dnsServers: readonly DnsServer[],
  out: Print,
  err: Print,
  opts: ResolveCommandOptions = {},
): Promise<number> {
  const json = args.includes('--json');
  const rest = args.filter((a) => a !== '--json');
  const [domain, extra] = rest;
  if (domain === undefined || extra !== undefined || domain.startsWith('-')) {
    err(domain === undefined || domain.startsWith('-') ? USAGE : `petrel resolve: unexpected argument "${extra}"\n${USAGE}`);
    return EX_USAGE;
  }
  // Caching is pointless for one question; a fresh answer is what an operator wants.
  const resolver = createResolver({ servers: dnsServers, cache: null, ...opts });
  const route = await resolver.resolveRoute(domain);
  out(json ? `${JSON.stringify(toJson(domain, route), null, 2)}\n` : describeRoute(domain, route));
  return exitStatus(route);
}

function exitStatus(route: Route): number {
  const failure = routeFailure(route);
  if (!failure) return 0;
  return failure.permanent ? EX_PERMANENT : EX_TEMPFAIL;
}

/** Human-readable route: one line per MX host, "pref NAME ADDRESSES" in the order they would be tried. */
export function describeRoute(domain: string, route: Route): string {
  switch (route.kind) {
    case 'hosts': {
      const head = route.implicit
        ? `${domain}: no MX records; implicit MX: the domain itself (RFC 5321 §5.1)`
        : `${domain}: MX hosts in the order they are tried (equal preferences shuffled, RFC 5321 §5.1)`;
      const width = Math.max(...route.hosts.map((h) => h.name.length));
      const lines = route.hosts.map((h) => `  ${String(h.preference).padStart(5)}  ${h.name.padEnd(width)}  ${h.addresses.join(' ')}`);
      return [head, ...lines].join('\n') + '\n';
    }
    case 'null-mx':
      return `${domain}: null MX: domain accepts no mail (RFC 7505)\n`;
    case 'no-such-domain':
      return `${domain}: no such domain (NXDOMAIN)\n`;
    case 'unroutable':
      return `${domain}: permanent failure: ${route.reason}\n`;
    case 'temporary':
      return `${domain}: temporary failure: ${route.reason}\n`;
    default:
      return assertNever(route);
  }
}

/** `--json`: `{domain, kind, implicit, hosts}` for a route, `{domain, kind, permanent, enhanced, reason}` otherwise. */
export function toJson(domain: string, route: Route): Record<string, unknown> {
  if (route.kind === 'hosts') return { domain, kind: route.kind, implicit: route.implicit, hosts: route.hosts };
  const failure = routeFailure(route);
  return { domain, kind: route.kind, permanent: failure?.permanent, enhanced: failure?.enhanced, reason: failure?.text };
}
