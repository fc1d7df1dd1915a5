/** Re-chunking for "any chunking gives the same result" properties (STYLE.md rule 10). */

/** Splits buf at the given cut points (any order, duplicates allowed: empty chunks are valid input). */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const at = cuts.map((c) => c % (buf.length + 1)).sort((x, y) => x - y);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, buf.length]) {
    parts.push(buf.subarray(prev, c));
    prev = c;
  }
  return parts;
}
