/**
 * Bytes held while a message streams in, in a bounded number of pieces.
 * The session hands on each socket read as it comes; a client that dribbles
 * its message a byte per packet would otherwise make a held list of one
 * Buffer object (~100 bytes of heap) per byte. Small chunks are copied into
 * shared 4 KiB blocks, large ones kept as they are: at most about two pieces
 * per KiB, whatever the chunking. Pure.
 */
/** Chunks below this are copied; at or above it they are kept by reference. */
const SMALL = 1024;
const BLOCK = 4096;

export class ChunkList {
  private readonly parts: Buffer[] = [];
  private block: Buffer | null = null;
  private used = 0;
  /** Bytes held now. */
  bytes = 0;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (chunk.length >= SMALL) {
      this.seal();
      this.parts.push(chunk);
      return;
    }
    if (this.block && this.used + chunk.length > this.block.length) this.seal();
    this.block ??= Buffer.allocUnsafe(BLOCK);
    chunk.copy(this.block, this.used);
    this.used += chunk.length;
  }

  /** Pieces held now (the open block counts as one). */
  get pieces(): number {
    return this.parts.length + (this.used > 0 ? 1 : 0);
  }

  /** Everything pushed, in order; the list is empty afterwards. */
  take(): Buffer[] {
    this.seal();
    this.bytes = 0;
    return this.parts.splice(0);
  }

  private seal(): void {
    if (this.block && this.used > 0) this.parts.push(this.block.subarray(0, this.used));
    this.block = null;
    this.used = 0;
  }
}
