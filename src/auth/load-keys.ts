/**
 * Reads the dkim_sign key files (the I/O half of dkim/keys.ts): once, when
 * the server starts, so a missing or unusable key stops it with the reason.
 */
import { readFile } from 'node:fs/promises';
import type { DkimSign } from '../config';
import { DkimKeyError, signingKeyFrom, type SigningKey } from './dkim/keys';

/** Reads every key; rejects with a DkimKeyError on the first unusable one. */
export async function loadSigningKeys(entries: readonly DkimSign[]): Promise<SigningKey[]> {
  const keys: SigningKey[] = [];
  for (const entry of entries) {
    let pem: Buffer;
    try {
      pem = await readFile(entry.keyFile);
    } catch (e) {
      throw new DkimKeyError(entry.keyFile, entry.domain, `cannot read it: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    keys.push(signingKeyFrom(entry, pem));
  }
  return keys;
}
