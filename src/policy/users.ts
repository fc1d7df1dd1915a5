/**
 * The SMTP AUTH users file (users_file): who may log in, with which password,
 * and which sender addresses each may use. One user per line:
 *
 *   # comment
 *   alice@example.com:$scrypt$ln=14,r=8,p=1$SALT$KEY
 *   bob@example.com:$scrypt$ln=14,r=8,p=1$SALT$KEY:sales@example.com,bob.smith@example.com
 *
 * name (an address, compared without regard to case) ":" password hash
 * [":" more sender addresses, comma-separated]. The hash is scrypt (RFC 7914)
 * in a PHC-style string: ln = log2 N, r, p, then salt and key in base64
 * without padding. The user's own name is always one of its senders.
 *
 * Reading: a running server re-reads the file when it changes (inode, size or
 * mtime), so `petrel user add` needs no restart. Writing: temp file, fsync,
 * rename, fsync of the directory (STYLE.md §3 rule 11), mode 0600 (hashes
 * are still worth stealing). Password checks are constant-time, and an
 * unknown user costs the same scrypt as a known one, so neither timing nor
 * replies tell an attacker which names exist.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface UserEntry {
  /** Lowercase address. */
  readonly name: string;
  readonly hash: string;
  /** Other addresses this user may put in MAIL FROM (lowercase). */
  readonly senders: readonly string[];
}

export class UsersFileError extends Error {
  override readonly name = 'UsersFileError';
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

const ADDRESS = /^[^\s:,@"<>]+@[^\s:,@"<>[\]]+$/;

/** A user name or sender as stored: a plain address (no quotes, no ":" or ","), lowercased; null if unusable. */
export function normalizeAddress(raw: string): string | null {
  const s = raw.trim().toLowerCase();
  return s.length <= 254 && ADDRESS.test(s) ? s : null;
}

// ---- the file format ----

export function parseUsers(text: string, file: string): Map<string, UserEntry> {
  const users = new Map<string, UserEntry>();
  text.split('\n').forEach((raw, i) => {
    const entry = parseLine(raw.replace(/\r$/, ''), file, i + 1);
    if (!entry) return;
    if (users.has(entry.name)) throw new UsersFileError(file, i + 1, `user ${entry.name} is listed twice`);
    users.set(entry.name, entry);
  });
  return users;
}

function parseLine(line: string, file: string, n: number): UserEntry | null {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const [rawName = '', hash = '', extra = '', ...rest] = trimmed.split(':');
  const name = normalizeAddress(rawName);
  if (name === null) throw new UsersFileError(file, n, `expected "address:hash", found user name "${rawName}"`);
  if (rest.length > 0) throw new UsersFileError(file, n, 'too many ":" fields (expected address:hash[:senders])');
  if (parseHash(hash) === null) throw new UsersFileError(file, n, `the password of ${name} is not a $scrypt$ hash (use petrel user add)`);
  const senders: string[] = [];
  for (const s of extra === '' ? [] : extra.split(',')) {
    const a = normalizeAddress(s);
    if (a === null) throw new UsersFileError(file, n, `bad sender address "${s.trim()}" for ${name}`);
    senders.push(a);
  }
  return { name, hash, senders };
}

export function formatEntry(e: UserEntry): string {
  return e.senders.length > 0 ? `${e.name}:${e.hash}:${e.senders.join(',')}` : `${e.name}:${e.hash}`;
}

/** May `user` send as `sender` (MAIL FROM)? The null sender is allowed: it only ever carries notifications. */
export function mayUseSender(user: UserEntry, sender: string): boolean {
  if (sender === '') return true;
  const s = sender.toLowerCase();
  return s === user.name || user.senders.includes(s);
}

// ---- scrypt hashes (RFC 7914) ----

interface ScryptHash {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

/** RFC 7914 §2 suggests N = 2^14 (16 MiB with r = 8) for interactive logins. */
export const DEFAULT_COST = { ln: 14, r: 8, p: 1 } as const;
const KEY_BYTES = 32;

function parseHash(s: string): ScryptHash | null {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,})\$([A-Za-z0-9+/]{32,})$/.exec(s);
  if (!m) return null;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Bounds keep a hand-edited file from asking for gigabytes of memory per login.
  if (ln < 1 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  return { ln, r, p, salt: Buffer.from(m[4] ?? '', 'base64'), key: Buffer.from(m[5] ?? '', 'base64') };
}

function derive(password: string, h: Pick<ScryptHash, 'ln' | 'r' | 'p' | 'salt'>, keylen: number): Promise<Buffer> {
  const N = 2 ** h.ln;
  const opts: ScryptOptions = { N, r: h.r, p: h.p, maxmem: 256 * N * h.r + (1 << 20) };
  return new Promise((resolve, reject) => scryptCb(password.normalize('NFC'), h.salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

/** A new hash of `password` with a random salt; `cost` is for tests (cheaper) or stronger settings. */
export async function hashPassword(password: string, cost: { ln: number; r: number; p: number } = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, { ...cost, salt }, KEY_BYTES);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${b64(salt)}$${b64(key)}`;
}

/** Constant-time check of a password against a stored hash; false for a hash it cannot read. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const h = parseHash(hash);
  if (h === null) return false;
  const key = await derive(password, h, h.key.length);
  return timingSafeEqual(key, h.key);
}

let dummy: Promise<string> | null = null;

/** Spends the time of one password check on nothing: the answer for a user that does not exist. */
export async function verifyNobody(password: string): Promise<false> {
  dummy ??= hashPassword('petrel-no-such-user');
  await verifyPassword(password, await dummy);
  return false;
}

// ---- the live store a server reads ----

/** Where AUTH looks users up: the users file, or an in-memory table in tests. */
export interface UserDirectory {
  lookup(name: string): Promise<UserEntry | null>;
}

/** The users file, re-read whenever it changed on disk; a missing file means no users. */
export class UserStore implements UserDirectory {
  private users = new Map<string, UserEntry>();
  private version = '';

  /** `onError` hears about a file that cannot be read or parsed; the last good list stays in use. */
  constructor(
    readonly file: string,
    private readonly onError: (message: string) => void = () => undefined,
  ) {}

  async lookup(name: string): Promise<UserEntry | null> {
    await this.refresh();
    return this.users.get(name.toLowerCase()) ?? null;
  }

  async list(): Promise<UserEntry[]> {
    await this.refresh();
    return [...this.users.values()];
  }

  private async refresh(): Promise<void> {
    let version: string;
    try {
      const st = await stat(this.file);
      version = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return this.onError(`cannot stat ${this.file}: ${String(e)}`);
      version = 'missing';
    }
    if (version === this.version) return;
    try {
      this.users = version === 'missing' ? new Map() : parseUsers(await readFile(this.file, 'utf8'), this.file);
      this.version = version;
    } catch (e) {
      // Remember the bad version so the error is reported once, not on every login.
      this.version = version;
      this.onError(e instanceof Error ? e.message : String(e));
    }
  }
}

// ---- editing the file (petrel user add/remove) ----

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Adds a user or replaces its password; other lines, comments included, are kept as they are. */
export async function setUser(file: string, entry: UserEntry): Promise<'added' | 'updated'> {
  const text = await readText(file);
  const existing = parseUsers(text, file);
  const old = existing.get(entry.name);
  const line = formatEntry({ ...entry, senders: entry.senders.length > 0 ? entry.senders : (old?.senders ?? []) });
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const at = lines.findIndex((l) => lineName(l) === entry.name);
  if (at >= 0) lines[at] = line;
  else lines.push(line);
  writeAtomically(file, `${lines.join('\n')}\n`);
  return old ? 'updated' : 'added';
}

/** Removes a user; false when there was none by that name. */
export async function removeUser(file: string, name: string): Promise<boolean> {
  const text = await readText(file);
  if (!parseUsers(text, file).has(name)) return false;
  const kept = text.replace(/\n$/, '').split('\n').filter((l) => lineName(l) !== name);
  writeAtomically(file, kept.length > 0 ? `${kept.join('\n')}\n` : '');
  return true;
}

function lineName(line: string): string | null {
  const t = line.trim();
  return t === '' || t.startsWith('#') ? null : normalizeAddress(t.split(':')[0] ?? '');
}

/** Temp file in the same directory, fsync, rename over, fsync the directory: readers see the old or the new file. */
function writeAtomically(file: string, text: string): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
