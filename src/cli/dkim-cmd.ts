/**
 * `petrel dkim keygen|show`: makes a DKIM signing key and prints what to
 * publish and configure.
 *
 *   petrel dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--out FILE] [--force]
 *   petrel dkim show DOMAIN SELECTOR [KEYFILE]
 *
 * keygen writes the private key as PKCS#8 PEM, mode 0600, by default to
 * data_dir/dkim/DOMAIN.SELECTOR.key, and never replaces an existing file
 * without --force: the old key may still be what the published record and
 * mail in transit rely on (RFC 6376 §3.1: rotate by publishing a new
 * selector). RSA is 2048 bits by default (RFC 8301 §3.2: at least 1024,
 * SHOULD 2048); Ed25519 follows RFC 8463. stdout carries the TXT record at
 * SELECTOR._domainkey.DOMAIN (RFC 6376 §3.6.2.1) in zone-file syntax, cut
 * into character-strings of at most 255 octets, and the dkim_sign line;
 * notes go to stderr. show re-prints both for an existing key file.
 *
 * Exit codes (sysexits.h): 0 ok, 64 usage, 65 the key file holds no usable
 * key, 66 the key file cannot be read, 73 the key file cannot be created.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { DkimSign } from '../config';
import { domainName } from '../config/values';
import { DkimKeyError, keyRecordName, normalizeDomain, publicKeyRecord, signingKeyFrom, zoneFileRecord } from '../auth/dkim/keys';

type Print = (s: string) => void;

export const DKIM_USAGE = [
  '  dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--out FILE] [--force]',
  '                                make a DKIM key; print its DNS record and the dkim_sign line',
  '  dkim show DOMAIN SELECTOR [KEYFILE]  print the DNS record and dkim_sign line of an existing key',
];

/** What the command needs from the configuration (a Config fits). */
export interface DkimCommandConfig {
  readonly dataDir: string;
  readonly dkimSign: readonly DkimSign[];
}

const EX_USAGE = 64;
const EX_DATAERR = 65;
const EX_NOINPUT = 66;
const EX_CANTCREAT = 73;
const DEFAULT_RSA_BITS = 2048;
/** RFC 8301 §3.2: verifiers must handle 1024 to 4096 bits; a larger key may not verify everywhere. */
const RSA_BITS_RANGE = [1024, 4096] as const;

type KeyType = 'rsa' | 'ed25519';

interface KeygenArgs {
  readonly domain: string;
  readonly selector: string;
  readonly type: KeyType;
  readonly bits: number;
  readonly out: string | null;
  readonly force: boolean;
}

export async function dkimCommand(args: string[], cfg: DkimCommandConfig, out: Print, err: Print): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'keygen':
      return keygen(rest, cfg, out, err);
    case 'show':
      return show(rest, cfg, out, err);
    default:
      err(`usage: petrel dkim keygen|show\n${DKIM_USAGE.join('\n')}`);
      return EX_USAGE;
  }
}

async function keygen(args: string[], cfg: DkimCommandConfig, out: Print, err: Print): Promise<number> {
  const parsed = keygenArgs(args);
  if (typeof parsed === 'string') {
    err(`petrel dkim keygen: ${parsed}\nusage:\n${DKIM_USAGE.join('\n')}`);
    return EX_USAGE;
  }
  const file = parsed.out === null ? defaultKeyFile(cfg.dataDir, parsed.domain, parsed.selector) : resolve(parsed.out);
  const key = await generate(parsed.type, parsed.bits);
  const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  const problem = await writeKeyFile(file, pem, parsed.force);
  if (problem !== null) {
    err(`petrel dkim keygen: ${problem}`);
    return EX_CANTCREAT;
  }
  err(`wrote ${file} (${parsed.type === 'rsa' ? `RSA ${parsed.bits} bits` : 'Ed25519'}, PKCS#8, mode 0600)`);
  if (parsed.type === 'rsa' && parsed.bits < DEFAULT_RSA_BITS) err(`note: RFC 8301 §3.2 asks for at least ${DEFAULT_RSA_BITS}-bit RSA keys`);
  noteExisting(cfg, parsed.domain, parsed.selector, file, err);
  printPublication(parsed.domain, parsed.selector, key, file, cfg, out);
  return 0;
}

async function show(args: string[], cfg: DkimCommandConfig, out: Print, err: Print): Promise<number> {
  const [rawDomain, rawSelector, keyFile, extra] = args;
  const names = rawDomain === undefined || rawSelector === undefined ? 'petrel dkim show DOMAIN SELECTOR [KEYFILE]' : checkNames(rawDomain, rawSelector);
  if (typeof names === 'string' || extra !== undefined || keyFile?.startsWith('-')) {
    err(`petrel dkim show: ${typeof names === 'string' ? names : 'unexpected arguments'}\nusage:\n${DKIM_USAGE.join('\n')}`);
    return EX_USAGE;
  }
  const file = keyFile === undefined ? defaultKeyFile(cfg.dataDir, names.domain, names.selector) : resolve(keyFile);
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (e) {
    err(`petrel dkim show: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    return EX_NOINPUT;
  }
  try {
    const key = signingKeyFrom({ domain: names.domain, selector: names.selector, keyFile: file }, pem);
    err(`${file}: ${key.algorithm === 'rsa-sha256' ? `RSA ${key.bits} bits` : 'Ed25519'}`);
    printPublication(names.domain, names.selector, key.privateKey, file, cfg, out);
    return 0;
  } catch (e) {
    if (!(e instanceof DkimKeyError)) throw e;
    err(`petrel dkim show: ${e.message}`);
    return EX_DATAERR;
  }
}

function keygenArgs(args: string[]): KeygenArgs | string {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  let force = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (flag === '--force') force = true;
    else if (flag === '--type' || flag === '--bits' || flag === '--out') {
      const value = eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : args[++i];
      if (value === undefined || value === '') return `${flag} needs a value`;
      flags.set(flag, value);
    } else if (a.startsWith('-')) return `unknown option "${a}"`;
    else positional.push(a);
  }
  if (positional.length !== 2) return positional.length < 2 ? 'which DOMAIN and SELECTOR?' : `unexpected argument "${positional[2]}"`;
  const names = checkNames(positional[0] ?? '', positional[1] ?? '');
  if (typeof names === 'string') return names;
  const type = flags.get('--type') ?? 'rsa';
  if (type !== 'rsa' && type !== 'ed25519') return `--type is rsa or ed25519, not "${type}"`;
  const bits = keyBits(type, flags.get('--bits'));
  if (typeof bits === 'string') return bits;
  return { ...names, type, bits, out: flags.get('--out') ?? null, force };
}

function keyBits(type: KeyType, raw: string | undefined): number | string {
  if (type === 'ed25519') return raw === undefined ? 256 : '--bits applies to RSA keys only (an Ed25519 key is always 256 bits)';
  if (raw === undefined) return DEFAULT_RSA_BITS;
  const bits = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
  const [min, max] = RSA_BITS_RANGE;
  return bits >= min && bits <= max ? bits : `--bits is a number from ${min} to ${max} (RFC 8301 §3.2), not "${raw}"`;
}

/** DOMAIN as A-labels, lowercase; SELECTOR dot-separated labels (RFC 6376 §3.1); the owner name within 253 octets. */
function checkNames(rawDomain: string, rawSelector: string): { domain: string; selector: string } | string {
  const domain = domainName(normalizeDomain(rawDomain));
  if (!domain.ok) return `"${rawDomain}" is not a domain name such as example.com`;
  const selector = domainName(rawSelector);
  if (!selector.ok || rawSelector.endsWith('.')) return `"${rawSelector}" is not a selector: letters, digits and hyphens, labels separated by dots, such as mail or 2025a`;
  const name = keyRecordName(selector.value.toLowerCase(), domain.value);
  if (name.length > 253) return `${name} is longer than the 253 octets a DNS name may have`;
  return { domain: domain.value, selector: selector.value.toLowerCase() };
}

export function defaultKeyFile(dataDir: string, domain: string, selector: string): string {
  return resolve(dataDir, 'dkim', `${domain}.${selector}.key`);
}

async function generate(type: KeyType, bits: number): Promise<KeyObject> {
  const gen = promisify(generateKeyPair);
  const pair = type === 'rsa' ? await gen('rsa', { modulusLength: bits }) : await gen('ed25519', {});
  return pair.privateKey;
}

/**
 * Creates `file` with mode 0600 and the key in it, durably (data, then the
 * directory entry). Without `force` an existing file is refused (O_EXCL);
 * with it the new file replaces the old one by rename, so a crash leaves
 * either key whole. Returns why it could not, or null.
 */
async function writeKeyFile(file: string, pem: string, force: boolean): Promise<string | null> {
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const target = force ? `${file}.${process.pid}.tmp` : file;
    const written = await writeExclusive(target, pem);
    if (written === 'exists') return force ? `${target} is in the way` : `${file} exists; it may be the key your DNS record publishes (use a new selector, or --force to replace it)`;
    if (force) await rename(target, file);
    await syncDir(dirname(file));
    return null;
  } catch (e) {
    return `cannot write ${file}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

async function writeExclusive(file: string, text: string): Promise<'ok' | 'exists'> {
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
    throw e;
  }
  try {
    await handle.chmod(0o600); // the umask can only have removed bits; this also states the intent
    await handle.writeFile(text);
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(file).catch(() => undefined); // no half-written key left behind
    throw e;
  }
  await handle.close();
  return 'ok';
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function noteExisting(cfg: DkimCommandConfig, domain: string, selector: string, file: string, err: Print): void {
  const same = cfg.dkimSign.find((d) => normalizeDomain(d.domain) === domain && d.selector.toLowerCase() === selector);
  if (same !== undefined && resolve(same.keyFile) !== file) {
    err(`note: dkim_sign already has ${domain}:${selector} with ${same.keyFile}; publishing a new key under the same selector breaks mail signed with the old one until it is delivered`);
  }
}

/** stdout: the record to publish, then the dkim_sign line (with the entries already configured). */
function printPublication(domain: string, selector: string, key: KeyObject, file: string, cfg: DkimCommandConfig, out: Print): void {
  const entry = `${domain}:${selector}:${file}`;
  const others = cfg.dkimSign.filter((d) => !(normalizeDomain(d.domain) === domain && d.selector.toLowerCase() === selector));
  out('; publish this TXT record in the DNS zone of the domain');
  out(zoneFileRecord(selector, domain, publicKeyRecord(key)));
  out('; and add this key to petrel.conf');
  out(`dkim_sign = ${[...others.map((d) => `${d.domain}:${d.selector}:${d.keyFile}`), entry].join(', ')}`);
}
