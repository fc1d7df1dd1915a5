/**
 * What bench/run.ts needs before the first run: root (a private Postfix
 * master must start as root to drop to mail_owner), and the Debian package
 * postfix for smtp-source, smtp-sink and the postfix binaries. A missing
 * package is installed with apt-get, answering debconf "No configuration"
 * so that the package neither writes /etc/postfix/main.cf nor starts a
 * system mail service (as .ci/run does). The system instance is never
 * started, stopped or read for settings.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const NEEDED = ['/usr/sbin/postfix', '/usr/sbin/postconf', '/usr/sbin/smtp-source', '/usr/sbin/smtp-sink'];

function sh(file: string, args: string[], input?: string): void {
  execFileSync(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'], input, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
}

export function ensurePrerequisites(log: (s: string) => void): void {
  if (process.platform !== 'linux') throw new Error('bench/ reads /proc and runs Debian\'s postfix: Linux only');
  if (process.getuid?.() !== 0) throw new Error('npm run bench must run as root: the private Postfix instance starts as root and drops to the postfix user');
  const missing = NEEDED.filter((f) => !existsSync(f));
  if (missing.length === 0) return;
  log(`bench: ${missing.join(', ')} missing; installing the Debian package postfix ("No configuration", no service started)`);
  sh('debconf-set-selections', [], 'postfix postfix/main_mailer_type select No configuration\n');
  sh('apt-get', ['update', '-q']);
  sh('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'postfix']);
  const still = NEEDED.filter((f) => !existsSync(f));
  if (still.length > 0) throw new Error(`still missing after apt-get install postfix: ${still.join(', ')}`);
}

/** `postconf -d mail_version` of the installed package, for the record. */
export function postfixVersion(): string {
  try {
    return execFileSync('/usr/sbin/postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The file system type holding dir (longest mount point prefix in /proc/mounts), or 'unknown'. */
export function fsTypeOf(dir: string): string {
  let best = { at: '', type: 'unknown' };
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, at = '', type = ''] = line.split(' ');
      const inside = dir === at || dir.startsWith(at.endsWith('/') ? at : `${at}/`);
      if (inside && at.length >= best.at.length) best = { at, type };
    }
  } catch {
    // not Linux: ensurePrerequisites has already refused
  }
  return best.type;
}
