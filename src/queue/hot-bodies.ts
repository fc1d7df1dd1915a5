/**
 * Bodies of recently committed messages, kept in memory so that the usual
 * case — delivery starting right after the 250 — streams from RAM instead
 * of reading back what was just written (a pread and a thread-pool round
 * trip per message, ~15% of the CPU under load). Bounded in bytes, oldest
 * evicted first; anything not here is read from the log as before. A copy,
 * never a view of a socket buffer, so a cached body pins nothing else.
 */
export const HOT_BYTES = 8 * 1024 * 1024;
/** Larger messages are read from the log: a few of them would flush everything else. */
export const HOT_MAX_MESSAGE = 512 * 1024;

export class HotBodies {
  private readonly bodies = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly budget: number = HOT_BYTES) {}

  put(id: string, body: Buffer): void {
    if (body.length > this.budget || body.length > HOT_MAX_MESSAGE) return;
    this.delete(id);
    this.bodies.set(id, body);
    this.bytes += body.length;
    // Map iteration is insertion order: the first entries are the oldest.
    for (const [old, b] of this.bodies) {
      if (this.bytes <= this.budget) break;
      this.bodies.delete(old);
      this.bytes -= b.length;
    }
  }

  get(id: string): Buffer | undefined {
    return this.bodies.get(id);
  }

  delete(id: string): void {
    const b = this.bodies.get(id);
    if (!b) return;
    this.bodies.delete(id);
    this.bytes -= b.length;
  }

  get size(): number {
    return this.bytes;
  }
}
