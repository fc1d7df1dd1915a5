// petrel.conf: every key with a good and a bad value, comments, lists, duplicates,
// unknown keys, cross-key checks, and describeConfig → parseConfig round trips.
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, describeConfig, parseConfig, type Config } from '../src/config/index';
import { duration, formatDuration, formatSize, size } from '../src/config/values';

const FILE = '/cfg/petrel.conf';
/** Any readable regular file stands in for a certificate or key: only readability is checked here. */
const READABLE = fileURLToPath(import.meta.url);
const TLS = `\ntls_cert = ${READABLE}\ntls_key = ${READABLE}`;
const HEADER = '# petrel test\n\n'; // the key under test sits on line 3

const parse = (text: string): Config => parseConfig(text, FILE);

function failure(text: string): ConfigError {
  try {
    parse(text);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

type Row = [key: string, good: string, field: keyof Config, value: unknown, bad: string, reason: string, extra?: string];

const rows: Row[] = [
  ['hostname', 'Mail.Example.com.', 'hostname', 'Mail.Example.com', 'mail_host!', 'expected a domain name'],
  ['data_dir', 'spool', 'dataDir', '/cfg/spool', '', 'expected a path, found nothing'],
  ['listen', '127.0.0.1:25, [::1]:2525 ,0.0.0.0:0', 'listen', [{ host: '127.0.0.1', port: 25 }, { host: '::1', port: 2525 }, { host: '0.0.0.0', port: 0 }], '::1:25', 'found "::1:25"'],
  ['listen_submission', 'localhost:587', 'listenSubmission', [{ host: 'localhost', port: 587 }], '127.0.0.1', 'expected host:port', TLS],
  ['listen_smtps', '[::1]:465', 'listenSmtps', [{ host: '::1', port: 465 }], '127.0.0.1:99999', 'expected host:port', TLS],
  ['tls_cert', READABLE, 'tlsCert', READABLE, '/nonexistent/cert.pem', 'cannot read tls_cert file /nonexistent/cert.pem: no such file', `\ntls_key = ${READABLE}`],
  ['tls_key', READABLE, 'tlsKey', READABLE, '/cfg', 'cannot read tls_key file /cfg', `\ntls_cert = ${READABLE}`],
  ['local_domains', 'Example.COM, localhost., [192.0.2.1], [IPv6:2001:db8::1]', 'localDomains', ['example.com', 'localhost', '[192.0.2.1]', '[ipv6:2001:db8::1]'], 'example.com, exa mple.org', 'found "exa mple.org"'],
  ['relay_domains', 'Backup.Example.net', 'relayDomains', ['backup.example.net'], '[300.0.0.1]', 'address literal'],
  ['trusted_networks', '10.0.0.0/8, 192.0.2.7, 2001:db8::/32', 'trustedNetworks', undefined, '10.0.0.1/8', 'host bits are set'],
  ['relay_host', '[smtp.example.com]:587', 'relayHost', { host: 'smtp.example.com', port: 587, mx: false }, 'a:b:c', 'expected [host]:port'],
  ['dns_servers', '127.0.0.1, [::1]:5353, 192.0.2.53:53', 'dnsServers', [{ host: '127.0.0.1', port: 53 }, { host: '::1', port: 5353 }, { host: '192.0.2.53', port: 53 }], 'dns.example.com', 'an IP address'],
  ['outbound_port', '2525', 'outboundPort', 2525, '70000', 'a port number 1-65535, found "70000"'],
  ['outbound_tls', 'Verify', 'outboundTls', 'verify', 'always', 'one of may, encrypt, verify, none, found "always"'],
  ['relay_auth_user', 'relay-user', 'relayAuthUser', 'relay-user', '', '', '\nrelay_auth_password = s3cret\nrelay_host = [smtp.example.com]:587'],
  ['relay_auth_password', 'p w=#x', 'relayAuthPassword', 'p w=#x', '', '', '\nrelay_auth_user = u\nrelay_host = [smtp.example.com]:587'],
  ['max_delivery_concurrency', '7', 'maxDeliveryConcurrency', 7, '0', 'a positive integer'],
  ['destination_concurrency', '2', 'destinationConcurrency', 2, 'two', 'a positive integer'],
  ['connect_timeout', '10s', 'connectTimeout', 10, '10 s', 'a duration'],
  ['max_message_size', '10M', 'maxMessageSize', 10 * 1024 * 1024, '10MB', 'a size in bytes'],
  ['max_recipients', '500', 'maxRecipients', 500, '0', 'a positive integer, found "0"'],
  ['max_connections', '20', 'maxConnections', 20, '-1', 'a positive integer'],
  ['max_connections_per_ip', '5', 'maxConnectionsPerIp', 5, '1.5', 'a positive integer'],
  ['max_errors', '3', 'maxErrors', 3, 'three', 'a positive integer'],
  ['idle_timeout', '5m', 'idleTimeout', 300, '5 minutes', 'a duration'],
  ['users_file', 'etc/users', 'usersFile', '/cfg/etc/users', '', 'expected a path'],
  ['retry_schedule', '30s, 2m,1h', 'retrySchedule', [30, 120, 3600], '1m,,2m', 'without empty items'],
  ['max_queue_lifetime', '2d', 'maxQueueLifetime', 2 * 86400, '0', 'a duration'],
  ['aliases_file', '../aliases', 'aliasesFile', '/aliases', '', ''], // any path is acceptable; empty = none
  ['catch_all', 'example.com:admin, Example.org:postmaster', 'catchAll', [{ domain: 'example.com', user: 'admin' }, { domain: 'example.org', user: 'postmaster' }], 'example.com', 'domain:user'],
  ['dkim_sign', `Example.com:mail:${READABLE}`, 'dkimSign', [{ domain: 'example.com', selector: 'mail', keyFile: READABLE }], 'example.com:mail:/nonexistent.key', 'cannot read DKIM key /nonexistent.key'],
  ['log_level', 'debug', 'logLevel', 'debug', 'verbose', 'one of debug, info, warn, error, found "verbose"'],
  ['queue_fsync', 'no', 'queueFsync', false, 'maybe', 'yes or no'],
  ['reject_null_mx_sender', 'yes', 'rejectNullMxSender', true, 'sometimes', 'yes or no'],
  ['queue_only', 'yes', 'queueOnly', true, 'perhaps', 'yes or no'],
  ['auth_checks', 'no', 'authChecks', false, 'maybe', 'yes or no'],
  ['dmarc_enforcement', 'reject', 'dmarcEnforcement', 'reject', 'drop', 'one of reject, quarantine, none, found "drop"'],
  ['dns_timeout', '2s', 'dnsTimeout', 2, 'soon', 'a duration'],
  ['maildir_root', 'mailboxes', 'maildirRoot', '/cfg/mailboxes', '', 'expected a path'],
  ['recipient_delimiter', '+-', 'recipientDelimiter', '+-', 'x', 'characters such as + or +-'],
  ['local_transport', 'lmtp:127.0.0.1:24', 'localTransport', { kind: 'lmtp', host: '127.0.0.1', port: 24 }, 'lmtp:nowhere', 'maildir, lmtp:host:port or lmtp:unix:/path'],
  ['auth_max_failures', '0', 'authMaxFailures', 0, '-1', 'expected a whole number'],
  ['auth_failure_window', '1h', 'authFailureWindow', 3600, '0', 'expected a duration'],
  ['max_connection_rate', '100/1m', 'maxConnectionRate', { count: 100, per: 60 }, '100', 'expected a rate such as 100/1m'],
  ['max_messages_per_user', '0', 'maxMessagesPerUser', { count: 0, per: 60 }, '5/x', 'expected a rate'],
];

describe('every key', () => {
  it('the table covers every key describeConfig prints', () => {
    const printed = describeConfig(defaultConfig('/')).split('\n').filter((l) => /^\w+ =/.test(l)).map((l) => l.split(' ')[0]);
    expect(rows.map((r) => r[0]).sort()).toEqual(printed.sort());
  });

  it.each(rows)('%s = %s', (key, good, field, value, _bad, _reason, extra = '') => {
    const c = parse(`${HEADER}${key} = ${good}${extra}`);
    if (value !== undefined) expect(c[field]).toEqual(value);
    else expect(c[field]).not.toEqual(defaultConfig('/cfg')[field]);
  });

  it.each(rows.filter((r) => r[5] !== ''))('%s: a bad value is reported on its line', (key, _good, _field, _value, bad, reason, extra = '') => {
    const e = failure(`${HEADER}${key} = ${bad}${extra}`);
    expect(e.file).toBe(FILE);
    expect(e.line).toBe(3);
    expect(e.message).toContain(reason);
  });

  it('a bad value message says which key, what was expected and what was found', () => {
    expect(failure('max_recipients = lots').message).toBe('bad value for max_recipients: expected a positive integer, found "lots"');
  });

  it('aliases_file and relay_host may be empty: not set', () => {
    const c = parse('aliases_file =\nrelay_host =');
    expect(c.aliasesFile).toBeNull();
    expect(c.relayHost).toBeNull();
  });

  it.each([
    ['smtp.example.com', { host: 'smtp.example.com', port: 25, mx: true }],
    ['smtp.example.com:2525', { host: 'smtp.example.com', port: 2525, mx: true }],
    ['[smtp.example.com]', { host: 'smtp.example.com', port: 25, mx: false }],
    ['[::1]:2525', { host: '::1', port: 2525, mx: false }],
    ['127.0.0.2:2525', { host: '127.0.0.2', port: 2525, mx: false }], // an IP address has no MX records
  ])('relay_host = %s', (text, expected) => {
    expect(parse(`relay_host = ${text}`).relayHost).toEqual(expected);
  });

  it.each([
    ['1024', 1024],
    ['64k', 65536],
    ['1G', 1024 ** 3],
  ])('max_message_size = %s is %i bytes', (text, bytes) => {
    expect(parse(`max_message_size = ${text}`).maxMessageSize).toBe(bytes);
  });

  it.each([
    ['45', 45],
    ['45s', 45],
    ['2h', 7200],
    ['1D', 86400],
  ])('idle_timeout = %s is %i seconds', (text, seconds) => {
    expect(parse(`idle_timeout = ${text}`).idleTimeout).toBe(seconds);
  });
});

describe('file syntax', () => {
  it('comments: whole lines, indented lines, and after a value when preceded by whitespace', () => {
    const c = parse('# a comment\n   # indented\nmax_errors = 4 # four\nlocal_domains = a.example,b.example\t# tab\ndata_dir = a#b');
    expect(c.maxErrors).toBe(4);
    expect(c.localDomains).toEqual(['a.example', 'b.example']);
    expect(c.dataDir).toBe('/cfg/a#b'); // no whitespace before "#": part of the value
  });

  it('blank lines, CRLF line ends, a byte-order mark and spaces around "=" are fine', () => {
    const c = parse('\uFEFFmax_errors=4\r\n\r\n  max_recipients   =   7  \r\n');
    expect([c.maxErrors, c.maxRecipients]).toEqual([4, 7]);
  });

  it('lists: blanks around items ignored, an empty value is an empty list', () => {
    const c = parse('listen =\nlocal_domains =   a.example ,  b.example  \ntrusted_networks = # nobody');
    expect(c.listen).toEqual([]);
    expect(c.localDomains).toEqual(['a.example', 'b.example']);
    expect(c.trustedNetworks).toEqual([]);
  });

  it('a line without "=" is an error on its line', () => {
    const e = failure('max_errors = 4\n\nhostname mail.example.com');
    expect([e.line, e.message]).toEqual([3, 'expected "key = value", found "hostname mail.example.com"']);
  });

  it('a missing key is an error', () => {
    expect(failure('= 4').message).toBe('missing key before "="');
  });

  it('a duplicate key is an error on the second line, naming the first', () => {
    const e = failure('max_errors = 4\nhostname = a.example\nmax_errors = 5');
    expect([e.line, e.message]).toEqual([3, 'duplicate key max_errors (first set on line 1)']);
  });

  it.each([
    ['hostnme', 'unknown key hostnme (did you mean hostname?)'],
    ['max_recipient', 'unknown key max_recipient (did you mean max_recipients?)'],
    ['Local_Domains', 'unknown key Local_Domains (did you mean local_domains?)'],
    ['relay_hots', 'unknown key relay_hots (did you mean relay_host?)'],
    ['frobnicate', 'unknown key frobnicate'],
    ['smtpd_banner', 'unknown key smtpd_banner'],
  ])('unknown key %s', (key, message) => {
    const e = failure(`${HEADER}${key} = 1`);
    expect([e.line, e.message]).toEqual([3, message]);
  });

  it('ConfigError is an Error with file and line', () => {
    const e = failure('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ConfigError');
    expect([e.file, e.line]).toEqual([FILE, 1]);
  });
});

describe('defaults and paths', () => {
  it('an empty file gives the embedded defaults, paths relative to the file', () => {
    expect(parse('')).toEqual({ ...defaultConfig('/cfg'), source: FILE });
  });

  it('the embedded defaults (DESIGN.md)', () => {
    const c = defaultConfig('/srv');
    expect(c.source).toBeNull();
    expect(c.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(c.dataDir).toBe('/srv/var');
    expect(c.usersFile).toBe('/srv/var/users');
    expect(c.localDomains).toEqual(['localhost']);
    expect(describeConfig(c)).toContain('trusted_networks = 127.0.0.0/8, ::1/128\n');
    expect(c.retrySchedule).toEqual([60, 300, 900, 1800, 3600]);
    expect([c.maxMessageSize, c.maxRecipients, c.idleTimeout, c.maxQueueLifetime]).toEqual([26214400, 100, 300, 432000]);
    expect([c.maxConnections, c.maxConnectionsPerIp, c.maxErrors, c.outboundPort]).toEqual([1000, 50, 10, 25]);
    expect([c.logLevel, c.queueFsync, c.tlsCert, c.relayHost]).toEqual(['info', true, null, null]);
  });

  it('users_file follows data_dir unless set', () => {
    expect(parse('data_dir = /var/petrel').usersFile).toBe('/var/petrel/users');
    expect(parse('data_dir = /var/petrel\nusers_file = /etc/petrel-users').usersFile).toBe('/etc/petrel-users');
  });

  it('relative paths resolve against the directory of a relative config file name', () => {
    const c = parseConfig('data_dir = spool', 'conf/petrel.conf');
    expect(c.dataDir).toBe(`${process.cwd()}/conf/spool`);
  });
});

describe('checks across keys', () => {
  it('tls_cert without tls_key, and the reverse', () => {
    expect(failure(`max_errors = 1\ntls_cert = ${READABLE}`)).toMatchObject({ line: 2, message: expect.stringContaining('tls_key is not') });
    expect(failure(`tls_key = ${READABLE}`)).toMatchObject({ line: 1, message: expect.stringContaining('tls_cert is not') });
  });

  it('implicit-TLS and submission listeners need a certificate', () => {
    expect(failure('listen_smtps = 127.0.0.1:465')).toMatchObject({ line: 1, message: 'listen_smtps needs tls_cert and tls_key' });
    expect(failure('\nlisten_submission = 127.0.0.1:587').line).toBe(2);
  });

  it('a domain cannot be both local and relayed', () => {
    const e = failure('local_domains = a.example, b.example\nrelay_domains = B.example');
    expect([e.line, e.message]).toEqual([2, 'b.example is in both local_domains and relay_domains']);
  });

  it('relay_auth_user and relay_auth_password come as a pair, need relay_host, and need TLS', () => {
    const host = 'relay_host = [smtp.example.com]:587\n';
    expect(failure(`${host}relay_auth_user = u`)).toMatchObject({ line: 2, message: expect.stringContaining('relay_auth_password is not') });
    expect(failure(`${host}relay_auth_password = p`)).toMatchObject({ line: 2, message: expect.stringContaining('relay_auth_user is not') });
    expect(failure('relay_auth_user = u\nrelay_auth_password = p')).toMatchObject({ line: 1, message: expect.stringContaining('needs relay_host') });
    expect(failure(`${host}outbound_tls = none\nrelay_auth_user = u\nrelay_auth_password = p`)).toMatchObject({ line: 3, message: expect.stringContaining('needs TLS') });
    expect(parse(`${host}relay_auth_user = u\nrelay_auth_password = p`).relayAuthPassword).toBe('p');
  });

  it('check-config never prints the relay password', () => {
    const c = parse('relay_host = [smtp.example.com]:587\nrelay_auth_user = u\nrelay_auth_password = s3cret-value');
    const printed = describeConfig(c);
    expect(printed).not.toContain('s3cret-value');
    expect(printed).toContain('relay_auth_password = (hidden)\n');
  });

  it('an address listened on twice is reported where it repeats', () => {
    const e = failure(`listen_submission = 127.0.0.1:2525${TLS}`); // listen defaults to 127.0.0.1:2525
    expect([e.line, e.message]).toEqual([1, '127.0.0.1:2525 is listened on twice (also in listen)']);
    expect(parse('listen = 127.0.0.1:0, 127.0.0.1:0').listen).toHaveLength(2); // port 0: a fresh port each
  });
});

describe('describeConfig', () => {
  it('prints every key and parses back to the same configuration', () => {
    const text = [
      'hostname = mx.example.com',
      'listen = 127.0.0.1:25, [::1]:25',
      `listen_smtps = 127.0.0.1:465${TLS}`,
      'local_domains = example.com, [192.0.2.1]',
      'trusted_networks = 10.0.0.0/8, 2001:db8::/32, 192.0.2.7',
      'relay_host = [::1]:2525',
      'dns_servers = 127.0.0.1:5353',
      'max_message_size = 1000',
      'idle_timeout = 90',
      'retry_schedule = 1s, 90m, 2d',
      'catch_all = example.com:admin',
      `dkim_sign = example.com:s1:${READABLE}`,
      'queue_fsync = no',
    ].join('\n');
    const c = parse(text);
    const printed = describeConfig(c);
    expect(printed).toContain('retry_schedule = 1s, 90m, 2d\n');
    expect(printed).toContain('queue_fsync = no\n');
    expect(printed).toMatch(/UNSAFE/);
    expect(parse(printed)).toEqual(c);
  });

  it('the defaults parse back to themselves', () => {
    // The machine's name need not be a valid domain name, so the test pins one.
    const c = { ...defaultConfig('/cfg'), hostname: 'mx.example' };
    expect(parse(describeConfig(c))).toEqual({ ...c, source: FILE });
  });

  it('sizes and durations print in the largest exact unit and read back (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (n) => {
        expect(size(formatSize(n))).toEqual({ ok: true, value: n });
        expect(duration(formatDuration(n))).toEqual({ ok: true, value: n });
      }),
    );
    expect([formatSize(26214400), formatDuration(300), formatDuration(432000), formatDuration(61)]).toEqual(['25M', '5m', '5d', '61s']);
  });
});
