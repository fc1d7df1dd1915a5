/**
 * `petrel user add|remove|list`: the SMTP AUTH users in users_file (format
 * and hashing in src/policy/users.ts). A running server sees each change at
 * the next login, without a restart.
 *
 *   petrel user add NAME [--sender ADDRESS]...   password from stdin, or a prompt without echo on a terminal
 *   petrel user remove NAME
 *   petrel user list
 *
 * Exit codes (sysexits.h): 0 ok, 64 usage, 65 bad password input, 67 no
 * such user, 74 cannot write the file, 78 users_file is malformed.
 */
import type { Config } from '../config';
import { hashPassword, normalizeAddress, removeUser, setUser, UserStore, UsersFileError } from '../policy/users';

export const USER_USAGE = [
  '  user add NAME [--sender ADDR]  add an AUTH user (an address) or change its password; password from stdin or a prompt',
  '  user remove NAME              remove an AUTH user',
  '  user list                     list AUTH users and the extra sender addresses each may use',
];

/** Where the password comes from: a terminal (prompt, no echo) or anything piped in (first line). */
export interface PasswordInput extends NodeJS.ReadableStream {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

type Out = (s: string) => void;

/** RFC 4616 §2: a PLAIN password is at most 255 octets, so a longer one could never be used to log in. */
const MAX_PASSWORD = 255;

export async function userCommand(args: string[], cfg: Config, stdin: PasswordInput, out: Out, err: Out): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'add':
        return await add(rest, cfg, stdin, out, err);
      case 'remove':
        return await remove(rest, cfg, out, err);
      case 'list':
        return await list(rest, cfg, out, err);
      default:
        err(`usage: petrel user add|remove|list\n${USER_USAGE.join('\n')}`);
        return 64;
    }
  } catch (e) {
    if (e instanceof UsersFileError) {
      err(`petrel user: ${e.message}`);
      return 78;
    }
    err(`petrel user: cannot update ${cfg.usersFile}: ${e instanceof Error ? e.message : String(e)}`);
    return 74;
  }
}

async function add(args: string[], cfg: Config, stdin: PasswordInput, out: Out, err: Out): Promise<number> {
  const parsed = addArgs(args);
  if (typeof parsed === 'string') {
    err(`petrel user add: ${parsed}`);
    return 64;
  }
  const password = await readPassword(stdin, parsed.name);
  if (typeof password !== 'string') {
    err(`petrel user add: ${password.problem}`);
    return 65;
  }
  const hash = await hashPassword(password);
  const result = await setUser(cfg.usersFile, { name: parsed.name, hash, senders: parsed.senders });
  const domain = parsed.name.slice(parsed.name.lastIndexOf('@') + 1);
  if (!cfg.localDomains.includes(domain)) err(`note: ${domain} is not in local_domains: ${parsed.name} may send, but has no mailbox here`);
  out(`${result} ${parsed.name}`);
  return 0;
}

function addArgs(args: string[]): { name: string; senders: string[] } | string {
  let name: string | null = null;
  const senders: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--sender') {
      const s = normalizeAddress(args[++i] ?? '');
      if (s === null) return `--sender needs an address such as sales@example.com`;
      senders.push(s);
    } else if (name === null && !a.startsWith('-')) {
      name = normalizeAddress(a);
      if (name === null) return `"${a}" is not a user name: use an address such as alice@example.com`;
    } else return `unexpected argument "${a}"`;
  }
  return name === null ? 'which user? petrel user add NAME' : { name, senders };
}

async function remove(args: string[], cfg: Config, out: Out, err: Out): Promise<number> {
  const name = args.length === 1 ? normalizeAddress(args[0] ?? '') : null;
  if (name === null) {
    err('usage: petrel user remove NAME');
    return 64;
  }
  if (!(await removeUser(cfg.usersFile, name))) {
    err(`petrel user remove: no user ${name} in ${cfg.usersFile}`);
    return 67;
  }
  out(`removed ${name}`);
  return 0;
}

async function list(args: string[], cfg: Config, out: Out, err: Out): Promise<number> {
  if (args.length > 0) {
    err('usage: petrel user list');
    return 64;
  }
  let problem: string | null = null;
  const users = await new UserStore(cfg.usersFile, (m) => (problem = m)).list();
  if (problem !== null) throw new UsersFileError(cfg.usersFile, 0, problem);
  for (const u of users) out(u.senders.length > 0 ? `${u.name} (also sends as ${u.senders.join(', ')})` : u.name);
  return 0;
}

// ---- reading the password ----

async function readPassword(stdin: PasswordInput, name: string): Promise<string | { problem: string }> {
  const tty = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  const first = tty ? await prompt(stdin, `Password for ${name}: `) : await firstLine(stdin);
  if (first === null) return { problem: 'no password given' };
  const problem = passwordProblem(first);
  if (problem) return { problem };
  if (tty && (await prompt(stdin, 'Retype password: ')) !== first) return { problem: 'the passwords do not match' };
  return first;
}

function passwordProblem(p: string): string | null {
  if (p === '') return 'the password is empty';
  if (Buffer.byteLength(p) > MAX_PASSWORD) return `the password is longer than ${MAX_PASSWORD} bytes (SASL PLAIN cannot carry it)`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return 'the password contains control characters';
  return null;
}

/** The first line of piped input (CR LF or LF stripped); null on empty input. */
async function firstLine(stdin: NodeJS.ReadableStream): Promise<string | null> {
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.includes('\n') || text.length > 4 * MAX_PASSWORD) break;
  }
  if (text === '') return null;
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}

/** Reads one line from a terminal in raw mode, echoing nothing; null on Ctrl-C or Ctrl-D.
 *  The prompt goes to the terminal's stderr as is (the `err` printer would end it with a newline). */
function prompt(stdin: PasswordInput, question: string): Promise<string | null> {
  process.stderr.write(question);
  return new Promise((resolve) => {
    let typed = '';
    const finish = (value: string | null): void => {
      stdin.removeListener('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      process.stderr.write('\n');
      resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish(typed);
        if (ch === '\u0003' || (ch === '\u0004' && typed === '')) return finish(null);
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += ch;
      }
    };
    stdin.setRawMode?.(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}
