/**
 * Checks that span several keys or touch the file system, run after every
 * value has parsed: TLS certificate and key come as a pair and are readable
 * (RFC 3207 STARTTLS, RFC 8314 implicit TLS cannot work otherwise), a domain
 * is either local or relayed, no address is listened on twice, DKIM keys
 * (RFC 6376) are readable. Errors point at the line of the offending key.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { ConfigError, fsReason } from './errors';
import { formatEndpoint, type Endpoint } from './values';
import type { Config, Field } from './schema';

type Lines = ReadonlyMap<Field, number>;

export function validate(c: Config, lines: Lines, file: string): void {
  const fail = (f: Field, reason: string): never => {
    throw new ConfigError(file, lines.get(f) ?? 0, reason);
  };
  checkTls(c, fail);
  checkDomains(c, fail);
  checkListeners(c, lines, fail);
  checkRelayAuth(c, fail);
  if (c.dnsTimeout < 1) fail('dnsTimeout', 'dns_timeout must be at least 1s');
  for (const d of c.dkimSign) {
    const problem = unreadable(d.keyFile);
    if (problem) fail('dkimSign', `cannot read DKIM key ${d.keyFile} for ${d.domain}: ${problem}`);
  }
}

type Fail = (f: Field, reason: string) => never;

function checkTls(c: Config, fail: Fail): void {
  if (c.tlsCert !== null && c.tlsKey === null) fail('tlsCert', 'tls_cert is set but tls_key is not (set both or neither)');
  if (c.tlsKey !== null && c.tlsCert === null) fail('tlsKey', 'tls_key is set but tls_cert is not (set both or neither)');
  if (c.tlsCert !== null) {
    const problem = unreadable(c.tlsCert);
    if (problem) fail('tlsCert', `cannot read tls_cert file ${c.tlsCert}: ${problem}`);
  }
  if (c.tlsKey !== null) {
    const problem = unreadable(c.tlsKey);
    if (problem) fail('tlsKey', `cannot read tls_key file ${c.tlsKey}: ${problem}`);
  }
  // Submission listeners require STARTTLS before AUTH (DESIGN.md) and SMTPS is
  // TLS from the first byte (RFC 8314 §3.3): both are unusable without a certificate.
  if (c.tlsCert === null) {
    if (c.listenSmtps.length > 0) fail('listenSmtps', 'listen_smtps needs tls_cert and tls_key');
    if (c.listenSubmission.length > 0) fail('listenSubmission', 'listen_submission needs tls_cert and tls_key (AUTH only after STARTTLS)');
  }
}

function checkDomains(c: Config, fail: Fail): void {
  const local = new Set(c.localDomains);
  const both = c.relayDomains.find((d) => local.has(d));
  // A domain cannot be delivered both here and onward: which one wins would be an accident of code order.
  if (both !== undefined) fail('relayDomains', `${both} is in both local_domains and relay_domains`);
}

function checkRelayAuth(c: Config, fail: Fail): void {
  if (c.relayAuthUser !== null && c.relayAuthPassword === null) fail('relayAuthUser', 'relay_auth_user is set but relay_auth_password is not (set both or neither)');
  if (c.relayAuthPassword !== null && c.relayAuthUser === null) fail('relayAuthPassword', 'relay_auth_password is set but relay_auth_user is not (set both or neither)');
  if (c.relayAuthUser === null) return;
  if (c.relayHost === null) fail('relayAuthUser', 'relay_auth_user needs relay_host: credentials are only ever sent to the smart host');
  // RFC 4954 §4: a password in the clear is readable by anyone on the path; Petrel sends AUTH only over TLS.
  if (c.outboundTls === 'none') fail('relayAuthUser', 'relay_auth_user needs TLS, but outbound_tls = none');
}

function checkListeners(c: Config, lines: Lines, fail: Fail): void {
  const groups: [Field, string, Endpoint[]][] = [
    ['listen', 'listen', c.listen],
    ['listenSubmission', 'listen_submission', c.listenSubmission],
    ['listenSmtps', 'listen_smtps', c.listenSmtps],
  ];
  // Report at the later of the two lines, where the repetition was written.
  groups.sort((a, b) => (lines.get(a[0]) ?? 0) - (lines.get(b[0]) ?? 0));
  const seen = new Map<string, string>();
  for (const [field, key, endpoints] of groups) {
    for (const e of endpoints) {
      if (e.port === 0) continue; // port 0: the system picks a free port each time
      const id = formatEndpoint({ host: e.host.toLowerCase(), port: e.port });
      const where = seen.get(id);
      if (where !== undefined) fail(field, `${formatEndpoint(e)} is listened on twice (also in ${where})`);
      seen.set(id, key);
    }
  }
}

/** Why a file cannot be read, or null when it can. */
function unreadable(path: string): string | null {
  try {
    if (!statSync(path).isFile()) return 'not a regular file';
    accessSync(path, constants.R_OK);
    return null;
  } catch (e) {
    return fsReason(e);
  }
}
