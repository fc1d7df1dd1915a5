/**
 * A PRIVATE Postfix instance for the delivery tests: the real MTA as Petrel's
 * next hop (RFC 5321 §3.6 relaying), with its own config_directory,
 * queue_directory, data_directory and maillog under a temp folder. The system
 * instance (/etc/postfix, its queue, its pid file) is never read for
 * settings, started or stopped.
 *
 * How it is made to run here (Postfix 3.7, Debian, tests run as root):
 * - `postfix -c DIR start` as root (required: the master opens privileged
 *   sockets and drops to mail_owner = postfix for its daemons); the temp
 *   folder is made 0755 since the daemons, running as postfix, must traverse
 *   it to reach data_directory/master.lock;
 * - inet_interfaces = loopback-only: Postfix refuses an inet_interfaces
 *   address that no interface carries ("no local interface found for
 *   127.0.0.3"), but a master.cf service line may bind any loopback address:
 *   `127.0.0.3:PORT inet n - n - - smtpd`;
 * - our own master.cf lists only what receiving and delivering needs, none
 *   chrooted (Debian's default chroot would need a copy of /etc files);
 * - mailboxes: virtual(8) Maildirs under DIR/mail for each configured user
 *   (texthash: maps need no postmap), owned by the postfix user; every other
 *   address is rejected at RCPT, and default/relay transports are `error:`
 *   so this instance can never send mail anywhere;
 * - local_header_rewrite_clients is empty, so Postfix adds no Date or
 *   Message-ID of its own: only its trace fields (Return-Path,
 *   X-Original-To, Delivered-To, Received);
 * - maillog_file = DIR/maillog via postlogd (maillog_file_prefixes allows DIR).
 * Stopped with `postfix -c DIR stop`, then by the master's own pid if it lingers.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const POSTFIX = '/usr/sbin/postfix';

export interface PostfixOptions {
  /** Loopback address the smtpd listens on (default 127.0.0.3). */
  readonly host?: string;
  readonly port: number;
  /** The virtual mailbox domain (default postfix.test). */
  readonly domain?: string;
  /** Local parts that get a Maildir (default ['alice']). */
  readonly users?: readonly string[];
  /** Relay every non-virtual domain to this next hop, e.g. `[127.0.0.32]:2600` (default: none, `error:`). */
  readonly relayhost?: string;
  /** Extra or overriding main.cf settings, e.g. { default_destination_concurrency_limit: '50' }. */
  readonly mainCf?: Readonly<Record<string, string>>;
}

export interface PostfixInstance {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly domain: string;
  readonly masterPid: number;
  /** Every message file in the user's Maildir (new/ and cur/), as text. */
  mailbox(user: string): string[];
  /** The instance's maillog so far. */
  log(): string;
  /** Stops this instance only and removes its folder (unless PETREL_KEEP_TMP is set). */
  stop(): Promise<void>;
}

interface Run {
  readonly code: number;
  readonly out: string;
}

function run(file: string, args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}${err && typeof err.code !== 'number' ? err.message : ''}` });
    });
  });
}

/** A missing or unusable Postfix fails the test with the reason: the issue asks for this hop, so no silent skip. */
function preflight(): { uid: number; gid: number } {
  if (!existsSync(POSTFIX)) throw new Error('Postfix not found: install the Debian package postfix (apt-get install -y postfix, "No configuration")');
  if (process.getuid?.() !== 0) throw new Error(`a private Postfix instance needs root to start (running as ${userInfo().username})`);
  const owner = postfixUser();
  if (!owner) throw new Error('no "postfix" user in /etc/passwd: the postfix package creates it, and mail_owner needs it');
  return owner;
}

/** The postfix user's uid and gid (the package's; fixed numbers would not match every machine). */
function postfixUser(): { uid: number; gid: number } | null {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === 'postfix') return { uid: Number(uid), gid: Number(gid) };
  }
  return null;
}

function mainCf(dir: string, o: Required<PostfixOptions>, owner: { uid: number; gid: number }): string {
  const lines = [
    'compatibility_level = 3.6',
    `config_directory = ${dir}/etc`,
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    'myhostname = postfix.test',
    'mydomain = postfix.test',
    'myorigin = postfix.test',
    'mydestination =',
    'inet_interfaces = loopback-only',
    'inet_protocols = ipv4',
    'mynetworks = 127.0.0.0/8',
    // no header rewriting for any client: what arrives is what the tests sent (Postfix adds only trace fields)
    'local_header_rewrite_clients =',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    'smtpd_banner = $myhostname ESMTP private Postfix for Petrel tests',
    `maillog_file_prefixes = ${dir}`,
    `maillog_file = ${dir}/maillog`,
    `virtual_mailbox_domains = ${o.domain}`,
    `virtual_mailbox_base = ${dir}/mail`,
    `virtual_mailbox_maps = texthash:${dir}/etc/vmailbox`,
    `virtual_uid_maps = static:${owner.uid}`,
    `virtual_gid_maps = static:${owner.gid}`,
    ...transports(o.relayhost),
  ];
  const extra = Object.entries(o.mainCf);
  // a key set twice makes postfix warn and take the last; drop the base line instead
  const kept = lines.filter((l) => !extra.some(([k]) => l.startsWith(`${k} =`)));
  return `${[...kept, ...extra.map(([k, v]) => `${k} = ${v}`)].join('\n')}\n`;
}

/** Without a relayhost the instance can never send mail anywhere; with one, smtp(8) carries it there and only there. */
function transports(relayhost: string): string[] {
  if (relayhost === '') return ['default_transport = error:this test instance sends nothing onward', 'relay_transport = error:this test instance sends nothing onward'];
  return [`relayhost = ${relayhost}`, 'default_transport = smtp', 'relay_transport = relay'];
}

/** The services smtpd → cleanup → qmgr → virtual need; nothing chrooted, no pickup; outbound smtp only with a relayhost. */
function masterCf(o: Required<PostfixOptions>): string {
  const services = [
    `${o.host}:${o.port} inet n - n - - smtpd`,
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'proxymap unix - - n - - proxymap',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'virtual unix - n n - - virtual',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    ...(o.relayhost === '' ? [] : ['smtp unix - - n - - smtp', 'relay unix - - n - - smtp']),
  ];
  return `${services.join('\n')}\n`;
}

function layout(dir: string, o: Required<PostfixOptions>, owner: { uid: number; gid: number }): void {
  chmodSync(dir, 0o755); // the daemons run as postfix and must reach data/ and mail/
  for (const d of ['etc', 'queue', 'data', 'mail']) mkdirSync(join(dir, d));
  for (const d of ['data', 'mail']) chownSync(join(dir, d), owner.uid, owner.gid);
  writeFileSync(join(dir, 'etc', 'main.cf'), mainCf(dir, o, owner));
  writeFileSync(join(dir, 'etc', 'master.cf'), masterCf(o));
  writeFileSync(join(dir, 'etc', 'vmailbox'), o.users.map((u) => `${u}@${o.domain} ${u}/\n`).join(''));
}

export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  const owner = preflight();
  const o: Required<PostfixOptions> = { host: '127.0.0.3', domain: 'postfix.test', users: ['alice'], relayhost: '', mainCf: {}, ...opts };
  const dir = mkdtempSync(join(tmpdir(), 'petrel-postfix-'));
  layout(dir, o, owner);
  const cfg = join(dir, 'etc');
  const log = (): string => (existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '');
  const check = await run(POSTFIX, ['-c', cfg, 'check']);
  const start = check.code === 0 ? await run(POSTFIX, ['-c', cfg, 'start']) : check;
  const pid = readPid(dir);
  if (start.code !== 0 || pid === null) {
    if (pid !== null) killPid(pid);
    throw new Error(`private Postfix did not start (postfix -c ${cfg} ${check.code === 0 ? 'start' : 'check'} exited ${start.code}): ${start.out}\nmaillog:\n${log()}`);
  }
  return {
    dir, host: o.host, port: o.port, domain: o.domain, masterPid: pid,
    mailbox: (user) => readMaildir(join(dir, 'mail', user)),
    log,
    stop: () => stopInstance(cfg, dir, pid),
  };
}

function readPid(dir: string): number | null {
  const file = join(dir, 'queue', 'pid', 'master.pid');
  if (!existsSync(file)) return null;
  const n = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(n) && n > 1 ? n : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function stopInstance(cfg: string, dir: string, pid: number): Promise<void> {
  if (alive(pid)) await run(POSTFIX, ['-c', cfg, 'stop']);
  for (const end = Date.now() + 5000; alive(pid) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) killPid(pid);
  if (!process.env.PETREL_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
}

function readMaildir(box: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(box, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) out.push(readFileSync(join(d, f), 'utf8'));
  }
  return out;
}
