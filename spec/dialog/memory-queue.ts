/**
 * An in-memory SessionQueue (src/server/decisions.ts) for running the pure
 * session with the real decide() but no disk: body chunks are collected per
 * transaction, commit() moves them to `messages`, discard() forgets them.
 * Same contract as the real Queue's session side (DESIGN.md "The queue log"):
 * a commit resolves once the message is "durable", a duplicate commit or a
 * commit of the same id twice is refused, and a commit can be made to fail so
 * tests can check that nothing unacknowledged gets a 250.
 */
import type { SessionQueue } from '../../src/server/decisions';
import type { Envelope } from '../../src/queue/queue';

export interface MemoryMessage {
  readonly id: string;
  readonly envelope: Envelope;
  /** Everything appended for the id, in order: Petrel's Received: field, then the body. */
  readonly content: Buffer;
}

export class MemoryQueue implements SessionQueue {
  poisoned = false;
  backlogBytes = 0;
  /** When set, the next commit() rejects with it (then it is cleared). */
  failNextCommit: Error | null = null;
  readonly messages = new Map<string, MemoryMessage>();
  /** Ids discarded while open (aborted transactions), in order. */
  readonly discarded: string[] = [];
  private readonly open = new Map<string, Buffer[]>();
  private seq = 0;

  /** Fifteen characters like the real ids, increasing. */
  newId(): string {
    this.seq += 1;
    return `M${this.seq.toString().padStart(14, '0')}`;
  }

  appendBody(id: string, chunk: Buffer): void {
    if (this.messages.has(id)) throw new Error(`appendBody after commit of ${id}`);
    const parts = this.open.get(id) ?? [];
    // The session hands out subarrays of its input buffer, so keep a copy.
    parts.push(Buffer.from(chunk));
    this.open.set(id, parts);
  }

  discard(id: string): void {
    if (this.open.delete(id)) this.discarded.push(id);
  }

  commit(id: string, env: Envelope, prefix?: Buffer): Promise<void> {
    const failure = this.failNextCommit;
    this.failNextCommit = null;
    if (failure) {
      this.open.delete(id);
      return Promise.reject(failure);
    }
    if (this.messages.has(id)) return Promise.reject(new Error(`queue id ${id} is already committed`));
    const content = Buffer.concat([...(prefix ? [prefix] : []), ...(this.open.get(id) ?? [])]);
    this.open.delete(id);
    this.messages.set(id, { id, envelope: { ...env, recipients: [...env.recipients] }, content });
    return Promise.resolve();
  }

  /** Transactions with body bytes that were neither committed nor discarded. */
  get pending(): string[] {
    return [...this.open.keys()];
  }
}
