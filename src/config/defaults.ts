/**
 * The embedded defaults: what `petrel serve` runs with when there is no
 * petrel.conf (DESIGN.md: listen on 127.0.0.1:2525, data in ./var, local
 * domain localhost, trust loopback). Protocol limits come from
 * src/smtp/limits.ts so that a default is written down exactly once.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseCidr, type Cidr } from '../policy/cidr';
import { LIMITS } from '../smtp/limits';
import type { Config } from './schema';

function cidrs(...s: string[]): Cidr[] {
  return s.map((x) => {
    const c = parseCidr(x);
    if (!c) throw new Error(`bad built-in CIDR ${x}`);
    return c;
  });
}

/** Defaults with relative paths resolved against baseDir; usersFile and maildirRoot follow dataDir. */
export function defaultValues(baseDir: string): Omit<Config, 'source'> {
  const dataDir = resolve(baseDir, 'var');
  return {
    hostname: hostname(),
    dataDir,
    listen: [{ host: '127.0.0.1', port: 2525 }],
    listenSubmission: [],
    listenSmtps: [],
    tlsCert: null,
    tlsKey: null,
    localDomains: ['localhost'],
    relayDomains: [],
    trustedNetworks: cidrs('127.0.0.0/8', '::1/128'),
    relayHost: null,
    dnsServers: [],
    outboundPort: 25,
    outboundTls: 'may',
    relayAuthUser: null,
    relayAuthPassword: null,
    maxDeliveryConcurrency: 100,
    destinationConcurrency: 20,
    connectTimeout: 30,
    dnsTimeout: 3,
    maxMessageSize: LIMITS.maxMessageSize,
    // RFC 5321 §4.5.3.1.8: at least 100 recipients per transaction.
    maxRecipients: LIMITS.maxRecipients,
    maxConnections: 1000,
    maxConnectionsPerIp: 50,
    maxErrors: LIMITS.maxErrors,
    // RFC 5321 §4.5.3.2.7: the server timeout SHOULD be at least 5 minutes.
    idleTimeout: 300,
    usersFile: resolve(dataDir, 'users'),
    // Password guessing: 10 wrong passwords per address per 15 minutes, then 421 4.7.0.
    authMaxFailures: 10,
    authFailureWindow: 15 * 60,
    // Generous: a connection flood from one address, not a busy MX, should hit it; trusted_networks are exempt.
    maxConnectionRate: { count: 300, per: 60 },
    // A stolen password sends at most this much before someone notices.
    maxMessagesPerUser: { count: 500, per: 3600 },
    retrySchedule: [60, 300, 900, 1800, 3600],
    // RFC 5321 §4.5.4.1: give up after at least 4–5 days.
    maxQueueLifetime: 5 * 86400,
    aliasesFile: null,
    catchAll: [],
    maildirRoot: resolve(dataDir, 'mail'),
    recipientDelimiter: '+',
    localTransport: { kind: 'maildir' },
    dkimSign: [],
    logLevel: 'info',
    queueFsync: true,
    // Off by default: it costs a DNS lookup per MAIL FROM, and RFC 7505 makes it a MAY.
    authChecks: true,
    // Tagging a failure loses no mail while honouring the domain's wish; rejecting is an explicit choice.
    dmarcEnforcement: 'quarantine',
    rejectNullMxSender: false,
    queueOnly: false,
  };
}

/** The configuration used when no file is given; paths relative to cwd. */
export function defaultConfig(cwd: string = process.cwd()): Config {
  return { ...defaultValues(cwd), source: null };
}
