/**
 * Bare CR / bare LF detection for BDAT content (RFC 3030 CHUNKING).
 *
 * BDAT carries raw octets with no dot-stuffing and no terminator, so it cannot be
 * smuggled through the way DATA can, but RFC 5321 §2.3.8 still forbids CR and LF
 * outside CRLF, and a message we accept with a bare LF may be relayed to a peer
 * that reads it as a line end (SMTP smuggling, CVE-2023-51764). The session refuses
 * such content exactly as it refuses it in DATA, so this checker reports the same
 * condition as DataDecoder's bareLineEnding, across any chunking.
 */

const CR = 0x0d;
const LF = 0x0a;

export class LineEndingChecker {
  private prevCr = false;
  private found = false;

  /** Scans one chunk; the CR/LF pairing carries across chunk boundaries. */
  push(chunk: Buffer): void {
    if (this.found || chunk.length === 0) return;
    if (this.prevCr !== (chunk[0] === LF)) {
      // A pending CR with no LF after it, or an LF that opens the chunk with no CR before it.
      this.found = true;
      return;
    }
    this.found = hasBareInside(chunk);
    this.prevCr = chunk[chunk.length - 1] === CR;
  }

  /** The content is complete: a CR as its very last octet has no LF and is bare. */
  end(): void {
    if (this.prevCr) this.found = true;
    this.prevCr = false;
  }

  get bare(): boolean {
    return this.found;
  }
}

/**
 * True when chunk has a CR followed by something other than LF, or an LF at index
 * > 0 not preceded by CR. The chunk's first LF and its last CR are checked by the caller.
 */
function hasBareInside(chunk: Buffer): boolean {
  const last = chunk.length - 1;
  let cr = chunk.indexOf(CR);
  let lf = chunk.indexOf(LF, 1);
  for (;;) {
    if (cr !== -1 && cr < last && chunk[cr + 1] !== LF) return true;
    if (lf !== -1 && chunk[lf - 1] !== CR) return true;
    if (cr === -1 && lf === -1) return false;
    // Each matched CRLF pair consumes one CR and one LF; move both past it.
    const next = Math.max(cr, lf) + 1;
    cr = cr === -1 ? -1 : chunk.indexOf(CR, next);
    lf = lf === -1 ? -1 : chunk.indexOf(LF, next);
    if (cr === -1 && lf === -1) return false;
  }
}
