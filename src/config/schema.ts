/**
 * The petrel.conf schema: every key, its Config field, how its value is read
 * and printed. One table, so that the parser, the defaults and
 * `petrel check-config` can never disagree about the set of keys.
 * The key names are a contract with operators, tests and tools (DESIGN.md).
 */
import type { LogLevel } from '../observe/log';
import type { Cidr } from '../policy/cidr';
import * as v from './values';
import type { CatchAll, DkimSign, Endpoint, LocalTransportSetting, OutboundTls, Parsed, RateSetting, RelayHost } from './values';

export type { CatchAll, DkimSign, Endpoint, LocalTransportSetting, OutboundTls, RateSetting, RelayHost, Cidr };

export interface Config {
  /** Name in the greeting, EHLO and Received. */
  hostname: string;
  dataDir: string;
  /** SMTP (MX) listeners; STARTTLS is offered when tlsCert is set. */
  listen: Endpoint[];
  /** Port-587-style listeners: STARTTLS, then AUTH required (RFC 6409). */
  listenSubmission: Endpoint[];
  /** Port-465-style listeners: implicit TLS, AUTH required (RFC 8314). */
  listenSmtps: Endpoint[];
  tlsCert: string | null;
  tlsKey: string | null;
  /** Lowercased, no trailing dot. */
  localDomains: string[];
  relayDomains: string[];
  trustedNetworks: Cidr[];
  /** Smart host; null = deliver straight to the recipients' MX hosts. */
  relayHost: RelayHost | null;
  /** Empty = the system's resolvers. */
  dnsServers: Endpoint[];
  outboundPort: number;
  /** STARTTLS policy for outbound connections (RFC 3207): may, encrypt, verify or none. */
  outboundTls: OutboundTls;
  /** Smart-host credentials (RFC 4954); only ever sent over TLS. */
  relayAuthUser: string | null;
  relayAuthPassword: string | null;
  /** Outbound SMTP connections open at once, all destinations together. */
  maxDeliveryConcurrency: number;
  /** Outbound SMTP connections open at once to one destination (a recipient domain or the smart host). */
  destinationConcurrency: number;
  /** Seconds to wait for an outbound TCP connection. */
  connectTimeout: number;
  /** Seconds one DNS query waits for its first answer (retried once, doubling): MX, SPF, DKIM keys, DMARC. */
  dnsTimeout: number;
  maxMessageSize: number;
  maxRecipients: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxErrors: number;
  /** Seconds. */
  idleTimeout: number;
  usersFile: string;
  /** Failed AUTH attempts from one address within authFailureWindow before 421 4.7.0 (0: no limit). */
  authMaxFailures: number;
  /** Seconds. */
  authFailureWindow: number;
  /** New connections per client address (trusted_networks exempt); over it 421 4.7.0. */
  maxConnectionRate: RateSetting;
  /** MAIL transactions per authenticated user; over it 450 4.7.1. */
  maxMessagesPerUser: RateSetting;
  /** Seconds between attempts; the last entry repeats. */
  retrySchedule: number[];
  /** Seconds. */
  maxQueueLifetime: number;
  aliasesFile: string | null;
  catchAll: CatchAll[];
  /** Root of the local Maildirs: <maildirRoot>/<domain>/<user>/Maildir. */
  maildirRoot: string;
  /** Characters separating user from tag in user+tag@domain; '' = no plus-addressing. */
  recipientDelimiter: string;
  /** How local mailboxes are written: Maildir here, or handed to an LMTP server (RFC 2033). */
  localTransport: LocalTransportSetting;
  dkimSign: DkimSign[];
  /** Check SPF, DKIM and DMARC on mail from untrusted, unauthenticated clients; add Authentication-Results (RFC 8601). */
  authChecks: boolean;
  /** What a DMARC failure under the domain's policy does: reject (550 5.7.1 for p=reject), quarantine (a header tag), or none (recorded only). */
  dmarcEnforcement: 'reject' | 'quarantine' | 'none';
  logLevel: LogLevel;
  /** false only for benchmark analysis: acknowledged mail can be lost in a crash. */
  queueFsync: boolean;
  /** RFC 7505 §4.2: refuse MAIL FROM a domain that publishes a null MX (it can never take a bounce). */
  rejectNullMxSender: boolean;
  /** Accept and queue, deliver nothing (like sendmail -odq): maintenance, or a server that only collects mail. */
  queueOnly: boolean;
  /** The configuration file read, or null for the embedded defaults. */
  source: string | null;
}

export type Field = Exclude<keyof Config, 'source'>;

export interface KeySpec<T> {
  /** The name in petrel.conf. */
  readonly key: string;
  readonly parse: (raw: string) => Parsed<T>;
  readonly format: (value: T) => string;
}

export type Schema = { readonly [F in Field]: KeySpec<Config[F]> };

const list = <T>(format: (x: T) => string) => (xs: T[]) => xs.map(format).join(', ');
const str = (s: string) => s;
const maybe = (s: string | null) => s ?? '';
const num = (n: number) => String(n);

/** The schema for a file in baseDir (relative paths resolve against it). Key order is print order. */
export function schema(baseDir: string): Schema {
  return {
    hostname: { key: 'hostname', parse: v.domainName, format: str },
    dataDir: { key: 'data_dir', parse: v.pathIn(baseDir), format: str },
    listen: { key: 'listen', parse: v.listOf(v.listenEndpoint), format: list(v.formatEndpoint) },
    listenSubmission: { key: 'listen_submission', parse: v.listOf(v.listenEndpoint), format: list(v.formatEndpoint) },
    listenSmtps: { key: 'listen_smtps', parse: v.listOf(v.listenEndpoint), format: list(v.formatEndpoint) },
    tlsCert: { key: 'tls_cert', parse: v.optionalPathIn(baseDir), format: maybe },
    tlsKey: { key: 'tls_key', parse: v.optionalPathIn(baseDir), format: maybe },
    localDomains: { key: 'local_domains', parse: v.listOf(v.mailDomain), format: list(str) },
    relayDomains: { key: 'relay_domains', parse: v.listOf(v.mailDomain), format: list(str) },
    trustedNetworks: { key: 'trusted_networks', parse: v.listOf(v.cidr), format: list(v.formatCidr) },
    relayHost: { key: 'relay_host', parse: v.relayHost, format: v.formatRelayHost },
    dnsServers: { key: 'dns_servers', parse: v.listOf(v.dnsServer), format: list(v.formatEndpoint) },
    outboundPort: { key: 'outbound_port', parse: (s) => v.port(s), format: num },
    outboundTls: { key: 'outbound_tls', parse: v.oneOf(['may', 'encrypt', 'verify', 'none'] as const), format: str },
    relayAuthUser: { key: 'relay_auth_user', parse: v.optionalText, format: maybe },
    relayAuthPassword: { key: 'relay_auth_password', parse: v.optionalText, format: v.formatSecret },
    maxDeliveryConcurrency: { key: 'max_delivery_concurrency', parse: v.positiveInt, format: num },
    destinationConcurrency: { key: 'destination_concurrency', parse: v.positiveInt, format: num },
    connectTimeout: { key: 'connect_timeout', parse: v.duration, format: v.formatDuration },
    dnsTimeout: { key: 'dns_timeout', parse: v.duration, format: v.formatDuration },
    maxMessageSize: { key: 'max_message_size', parse: v.size, format: v.formatSize },
    maxRecipients: { key: 'max_recipients', parse: v.positiveInt, format: num },
    maxConnections: { key: 'max_connections', parse: v.positiveInt, format: num },
    maxConnectionsPerIp: { key: 'max_connections_per_ip', parse: v.positiveInt, format: num },
    maxErrors: { key: 'max_errors', parse: v.positiveInt, format: num },
    idleTimeout: { key: 'idle_timeout', parse: v.duration, format: v.formatDuration },
    usersFile: { key: 'users_file', parse: v.pathIn(baseDir), format: str },
    authMaxFailures: { key: 'auth_max_failures', parse: v.count, format: num },
    authFailureWindow: { key: 'auth_failure_window', parse: v.duration, format: v.formatDuration },
    maxConnectionRate: { key: 'max_connection_rate', parse: v.rate, format: v.formatRate },
    maxMessagesPerUser: { key: 'max_messages_per_user', parse: v.rate, format: v.formatRate },
    retrySchedule: { key: 'retry_schedule', parse: v.nonEmptyListOf(v.duration), format: list(v.formatDuration) },
    maxQueueLifetime: { key: 'max_queue_lifetime', parse: v.duration, format: v.formatDuration },
    aliasesFile: { key: 'aliases_file', parse: v.optionalPathIn(baseDir), format: maybe },
    catchAll: { key: 'catch_all', parse: v.listOf(v.catchAll), format: list((c) => `${c.domain}:${c.user}`) },
    maildirRoot: { key: 'maildir_root', parse: v.pathIn(baseDir), format: str },
    recipientDelimiter: { key: 'recipient_delimiter', parse: v.recipientDelimiter, format: str },
    localTransport: { key: 'local_transport', parse: v.localTransportIn(baseDir), format: v.formatLocalTransport },
    dkimSign: {
      key: 'dkim_sign',
      parse: v.listOf(v.dkimSignIn(baseDir)),
      format: list((d) => `${d.domain}:${d.selector}:${d.keyFile}`),
    },
    authChecks: { key: 'auth_checks', parse: v.yesNo, format: (b) => (b ? 'yes' : 'no') },
    dmarcEnforcement: { key: 'dmarc_enforcement', parse: v.oneOf(['reject', 'quarantine', 'none'] as const), format: str },
    logLevel: { key: 'log_level', parse: v.oneOf(['debug', 'info', 'warn', 'error'] as const), format: str },
    queueFsync: { key: 'queue_fsync', parse: v.yesNo, format: (b) => (b ? 'yes' : 'no') },
    rejectNullMxSender: { key: 'reject_null_mx_sender', parse: v.yesNo, format: (b) => (b ? 'yes' : 'no') },
    queueOnly: { key: 'queue_only', parse: v.yesNo, format: (b) => (b ? 'yes' : 'no') },
  };
}

/** Field names in print order. */
export function fields(s: Schema): Field[] {
  return Object.keys(s) as Field[];
}

/** petrel.conf key → Config field. */
export function fieldByKey(s: Schema): Map<string, Field> {
  return new Map(fields(s).map((f) => [s[f].key, f]));
}
