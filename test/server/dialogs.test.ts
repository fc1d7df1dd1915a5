// Conversations are test data (STYLE.md §3 rule 9): every spec/dialogs/*.smtp runs
// over a real TCP socket against a real PetrelServer (real queue on disk, real
// log), with the same expectations as the in-memory run in spec/dialog-memory.test.ts.
// After each dialogue: the queue holds exactly the acknowledged messages (no
// smuggled or refused one), each stored as Received: + the bytes sent, and each
// has one 'queued' log line carrying its queue id.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCertificate, parseDialog, playDialog, splitReceived, type Dialog, type DialogPeer } from '../../spec/dialog/format';
import { dialogConfig, dialogUsers } from '../../spec/dialog/run-memory';
import type { Config } from '../../src/config';
import { formatEntry } from '../../src/policy/users';
import { SmtpTestClient, startServer, type TestServer } from '../helpers/server';
import { RawSmtp } from '../helpers/smtp-raw';

const dir = new URL('../../spec/dialogs/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.smtp')).sort();
const load = (f: string): Dialog => parseDialog(f, readFileSync(new URL(f, dir), 'utf8'));

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

type Client = Pick<DialogPeer, 'write' | 'nextReply'> & { close(): void };

function socketPeer(ts: TestServer, client: Client): DialogPeer {
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
      const users = await usersFile(d);
      const ts = await startServer({ tls: hasCertificate(d.options), smtps: d.options.listener === 'smtps', config: (built) => serverConfig(d, built, users) });
      try {
        const client = await connectTo(ts, d);
        const result = await playDialog(d, socketPeer(ts, client));
        client.close();
        await checkQueueAndLog(ts, result.queued);
      } finally {
        await ts.stop();
        if (users) rmSync(users.dir, { recursive: true, force: true });
      }
    });
  }
});

/** The dialogue's users, written as a users file in a temp folder of their own (null: no users). */
async function usersFile(d: Dialog): Promise<{ dir: string; file: string } | null> {
  if (d.options.users.length === 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'petrel-dialog-users-'));
  const file = join(dir, 'users');
  writeFileSync(file, (await dialogUsers(d.options)).map((u) => `${formatEntry(u)}\n`).join(''), { mode: 0o600 });
  return { dir, file };
}

function serverConfig(d: Dialog, built: Config, users: { file: string } | null): Config {
  const cfg = dialogConfig(d.options, built);
  const submission = d.options.listener === 'submission' ? [{ host: '127.0.0.1', port: 0 }] : [];
  return { ...cfg, listenSubmission: submission, usersFile: users?.file ?? cfg.usersFile };
}

/** The listener the dialogue names: plain SMTP, submission, or implicit TLS (the handshake done before the first S: line). */
async function connectTo(ts: TestServer, d: Dialog): Promise<Client> {
  const port = (kind: string) => ts.server.listening.find((l) => l.kind === kind)?.address.port ?? 0;
  if (d.options.listener === 'smtp') return SmtpTestClient.connect(ts.port);
  if (d.options.listener === 'submission') return SmtpTestClient.connect(port('submission'));
  const c = await RawSmtp.connectTls(port('smtps'));
  return {
    write: async (bytes) => c.send(bytes),
    nextReply: async () => {
      const r = await c.reply();
      return r && { code: r.code, lines: r.lines };
    },
    close: () => c.destroy(),
  };
}

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
