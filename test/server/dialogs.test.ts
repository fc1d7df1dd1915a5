// Conversations are test data (STYLE.md §3 rule 9): every spec/dialogs/*.smtp runs
// over a real TCP socket against a real PetrelServer (real queue on disk, real
// log), with the same expectations as the in-memory run in spec/dialog-memory.test.ts.
// After each dialogue: the queue holds exactly the acknowledged messages (no
// smuggled or refused one), each stored as Received: + the bytes sent, and each
// has one 'queued' log line carrying its queue id.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDialog, playDialog, splitReceived, type Dialog, type DialogPeer } from '../../spec/dialog/format';
import { dialogConfig } from '../../spec/dialog/run-memory';
import { SmtpTestClient, startServer, type TestServer } from '../helpers/server';

const dir = new URL('../../spec/dialogs/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.smtp')).sort();
const load = (f: string): Dialog => parseDialog(f, readFileSync(new URL(f, dir), 'utf8'));

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

function socketPeer(ts: TestServer, client: SmtpTestClient): DialogPeer {
  return {
    write: (bytes) => client.write(bytes),
    nextReply: () => client.nextReply(),
    stored: async (id) => {
      const m = ts.server.queue.get(id);
      if (!m) return undefined;
      const content = await readAll(ts.server.queue.readBody(id));
      return { content, sender: m.sender, recipients: m.recipients.map((r) => r.address) };
    },
  };
}

describe('dialogues over a socket against the real server', () => {
  for (const f of files) {
    it(f, async () => {
      const d = load(f);
      const ts = await startServer({ tls: d.options.tls, config: (built) => dialogConfig(d.options, built) });
      try {
        const client = await SmtpTestClient.connect(ts.port);
        const result = await playDialog(d, socketPeer(ts, client));
        client.close();
        await checkQueueAndLog(ts, result.queued);
      } finally {
        await ts.stop();
      }
    });
  }
});

async function checkQueueAndLog(ts: TestServer, queued: readonly string[]): Promise<void> {
  // Exactly the acknowledged messages: nothing refused, smuggled or half-received got in.
  expect(ts.server.queue.list().map((m) => m.id).sort()).toEqual([...queued].sort());
  for (const id of queued) {
    const content = await readAll(ts.server.queue.readBody(id));
    const split = splitReceived(content);
    expect(split?.field).toMatch(new RegExp(`^Received: from \\S+ \\(\\[127\\.0\\.0\\.1\\]\\)[\\s\\S]* id ${id}[;\\s]`));
    expect(ts.server.queue.get(id)?.size).toBe(content.length);
    // The 'queued' line's size is what is stored (our Received: field included), the same figure `queue list` shows.
    expect(ts.events('queued').find((l) => l.id === id)?.size).toBe(content.length);
  }
  const lines = ts.events('queued');
  expect(lines.map((l) => l.id).sort()).toEqual([...queued].sort());
  for (const l of lines) expect(ts.logs.filter((raw) => raw.includes(`"id":"${String(l.id)}"`)).length).toBeGreaterThan(1);
}

describe('the socket runner can fail', () => {
  it('a reply that differs from the dialogue fails with file:line', async () => {
    const text = readFileSync(new URL('happy-path.smtp', dir), 'utf8').replace('S: 250 2.1.5 Recipient OK', 'S: 250 2.1.5 Recipient KO');
    const ts = await startServer({ config: (built) => dialogConfig(parseDialog('m', text).options, built) });
    try {
      const client = await SmtpTestClient.connect(ts.port);
      await expect(playDialog(parseDialog('mutant.smtp', text), socketPeer(ts, client))).rejects.toThrow(/mutant\.smtp:\d+: expected 250 2\.1\.5 Recipient KO/);
      client.close();
    } finally {
      await ts.stop();
    }
  });
});
