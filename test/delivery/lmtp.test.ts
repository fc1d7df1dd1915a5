/**
 * LMTP (RFC 2033) as the local transport, against a small LMTP peer written
 * here (Dovecot's lmtp is not installed in this environment; the peer is
 * first checked against Python's smtplib.LMTP, a client nobody here wrote):
 * LHLO instead of EHLO, one reply per accepted recipient after the final
 * dot (§4.2), a mailbox that is full (4yz) deferred while its neighbour is
 * delivered, an unknown one (5yz) failed, dot-stuffing intact, TCP and Unix
 * sockets, and an unreachable server as a temporary failure.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lmtpDeliver } from '../../src/delivery/lmtp';
import { LocalDelivery, LocalDirectory } from '../../src/delivery/local';
import { createLogger } from '../../src/observe/log';
import type { QueuedMessage } from '../../src/queue/types';
import { freePort } from './harness';

/** What the peer does with a mailbox: accept, refuse at RCPT, or fail it after DATA (full / rejected). */
const BEHAVIOUR: Record<string, 'ok' | 'unknown' | 'full' | 'reject'> = {
  'alice@petrel.local': 'ok',
  'bob@petrel.local': 'full',
  'carol@petrel.local': 'reject',
  'ghost@petrel.local': 'unknown',
};

interface Received {
  from: string;
  to: string[];
  data: string;
}

class LmtpPeer {
  readonly commands: string[] = [];
  readonly messages: Received[] = [];
  constructor(readonly server: Server) {}

  static async start(listen: (s: Server) => Promise<void>): Promise<LmtpPeer> {
    const server = createServer();
    const peer = new LmtpPeer(server);
    server.on('connection', (s) => peer.session(s));
    await listen(server);
    return peer;
  }

  private session(s: Socket): void {
    let buf = '';
    let inData = false;
    let from = '';
    let to: string[] = [];
    s.write('220 lmtp.test LMTP ready\r\n');
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0 && !buf.startsWith('.\r\n')) return;
          const raw = buf.startsWith('.\r\n') ? '' : buf.slice(0, end + 2);
          buf = buf.slice(buf.startsWith('.\r\n') ? 3 : end + 5);
          inData = false;
          this.messages.push({ from, to, data: raw.replace(/^\./gm, '') });
          // RFC 2033 §4.2: one reply per accepted recipient, in order
          for (const r of to) s.write(afterData(r));
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        this.commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'LHLO') s.write('250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n');
        else if (verb === 'MAIL') {
          from = /<(.*)>/.exec(line)?.[1] ?? '';
          to = [];
          s.write('250 2.1.0 OK\r\n');
        } else if (verb === 'RCPT') {
          const rcpt = /<(.*)>/.exec(line)?.[1] ?? '';
          if (BEHAVIOUR[rcpt] === 'unknown' || BEHAVIOUR[rcpt] === undefined) s.write(`550 5.1.1 <${rcpt}> User doesn't exist\r\n`);
          else {
            to.push(rcpt);
            s.write('250 2.1.5 OK\r\n');
          }
        } else if (verb === 'DATA') {
          inData = true;
          s.write('354 OK\r\n');
        } else if (verb === 'QUIT') s.end('221 2.0.0 Bye\r\n');
        else if (verb === 'RSET') s.write('250 2.0.0 OK\r\n');
        else s.write('500 5.5.1 Unknown command (this is LMTP: LHLO, not EHLO)\r\n');
      }
    });
    s.on('error', () => undefined);
  }
}

function afterData(rcpt: string): string {
  switch (BEHAVIOUR[rcpt]) {
    case 'full': return `452 4.2.2 <${rcpt}> Mailbox is full\r\n`;
    case 'reject': return `554 5.6.0 <${rcpt}> Message rejected\r\n`;
    default: return `250 2.0.0 <${rcpt}> Saved\r\n`;
  }
}

function runPython(script: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', script, ...args], { timeout: 10_000 });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', () => resolve({ stdout, stderr }));
  });
}

const MESSAGE = 'From: a@remote.example\r\nSubject: lmtp\r\n\r\nline\r\n.starts with a dot\r\n..two dots\r\nend\r\n';
async function* body(): AsyncIterable<Buffer> {
  yield Buffer.from(MESSAGE.slice(0, 30));
  yield Buffer.from(MESSAGE.slice(30));
}

let tcp: LmtpPeer;
let unix: LmtpPeer;
let port: number;
let sockDir: string;

beforeAll(async () => {
  port = await freePort('127.0.0.1');
  tcp = await LmtpPeer.start((s) => new Promise((r) => s.listen(port, '127.0.0.1', () => r())));
  sockDir = mkdtempSync(join(tmpdir(), 'petrel-lmtp-'));
  unix = await LmtpPeer.start((s) => new Promise((r) => s.listen(join(sockDir, 'lmtp.sock'), () => r())));
});

afterAll(async () => {
  await new Promise((r) => tcp.server.close(r));
  await new Promise((r) => unix.server.close(r));
  rmSync(sockDir, { recursive: true, force: true });
});

describe('the LMTP test peer', () => {
  it('speaks LMTP as Python smtplib.LMTP expects', async () => {
    const script = `
import smtplib, sys
c = smtplib.LMTP('127.0.0.1', int(sys.argv[1]))
refused = c.sendmail('py@remote.example', ['alice@petrel.local', 'ghost@petrel.local'], b'Subject: py\\r\\n\\r\\n.dot\\r\\n')
c.quit()
print(sorted(refused))
`;
    const before = tcp.messages.length;
    // Asynchronous: the peer runs in this process, so a blocking spawnSync would wait on itself.
    const r = await runPython(script, String(port));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe("['ghost@petrel.local']");
    expect(tcp.messages.slice(before)).toEqual([{ from: 'py@remote.example', to: ['alice@petrel.local'], data: 'Subject: py\r\n\r\n.dot\r\n' }]);
  });
});

describe('lmtpDeliver', () => {
  const job = (targets: string[]) => ({
    from: 'a@remote.example', targets: targets.map((address, index) => ({ index, address })), body, hostname: 'petrel.test', timeoutMs: 5000,
  });

  it('one reply per recipient: accepted, full (4yz after DATA), rejected (5yz after DATA), unknown (5yz at RCPT)', async () => {
    const before = tcp.messages.length;
    const replies = await lmtpDeliver({ kind: 'lmtp', host: '127.0.0.1', port }, job(['alice@petrel.local', 'bob@petrel.local', 'ghost@petrel.local', 'carol@petrel.local']));
    expect(replies.map((r) => `${r.code} ${r.enhanced}`)).toEqual(['250 2.0.0', '452 4.2.2', '550 5.1.1', '554 5.6.0']);
    expect(tcp.messages.slice(before)).toEqual([{ from: 'a@remote.example', to: ['alice@petrel.local', 'bob@petrel.local', 'carol@petrel.local'], data: MESSAGE }]);
    expect(tcp.commands).toContain('LHLO petrel.test');
    expect(tcp.commands.some((c) => /^(EHLO|HELO)/i.test(c))).toBe(false);
  });

  it('over a Unix socket (lmtp:unix:/path), with the null sender', async () => {
    const replies = await lmtpDeliver({ kind: 'lmtp-unix', path: join(sockDir, 'lmtp.sock') }, { ...job(['alice@petrel.local']), from: '' });
    expect(replies.map((r) => r.code)).toEqual([250]);
    expect(unix.messages.at(-1)).toMatchObject({ from: '', data: MESSAGE });
  });

  it('no recipient accepted: no DATA is sent', async () => {
    const n = tcp.messages.length;
    const replies = await lmtpDeliver({ kind: 'lmtp', host: '127.0.0.1', port }, job(['ghost@petrel.local']));
    expect(replies.map((r) => r.code)).toEqual([550]);
    expect(tcp.messages.length).toBe(n);
  });

  it('an unreachable LMTP server is a temporary failure for every recipient', async () => {
    const closed = await freePort('127.0.0.1');
    const replies = await lmtpDeliver({ kind: 'lmtp', host: '127.0.0.1', port: closed }, job(['alice@petrel.local', 'bob@petrel.local']));
    expect(replies.map((r) => `${r.code} ${r.enhanced}`)).toEqual(['451 4.4.1', '451 4.4.1']);
  });
});

describe('LocalDelivery with local_transport = lmtp', () => {
  it('aliases are expanded here; a recipient is deferred if any of its mailboxes is, failed if one failed for good', async () => {
    const log = createLogger({ write: () => undefined });
    const directory = new LocalDirectory({
      localDomains: ['petrel.local'], aliasesFile: null, catchAll: [], delimiters: '+', log,
      users: { list: async () => ['alice', 'bob', 'carol'].map((u) => ({ name: `${u}@petrel.local` })) },
    });
    const local = new LocalDelivery({ directory, transport: { kind: 'lmtp', host: '127.0.0.1', port }, maildirRoot: '/nonexistent', hostname: 'petrel.test', log });
    const rcpts = ['alice+x@petrel.local', 'bob@petrel.local', 'carol@petrel.local', 'nobody@petrel.local'];
    const msg: QueuedMessage = {
      id: 'LMTP0000000001', sender: 'a@remote.example', size: MESSAGE.length, arrived: Date.now(), held: false, clientIp: '127.0.0.1', helo: 'x',
      recipients: rcpts.map((address) => ({ address, state: 'queued', attempts: 0, nextAttempt: null, lastReply: null })),
    };
    const before = tcp.messages.length;
    const results = await local.deliver({ readBody: () => body() }, msg, [0, 1, 2, 3]);
    expect(results.map((r) => `${r.index} ${r.reply.code} ${r.reply.enhanced}`)).toEqual(['0 250 2.0.0', '1 452 4.2.2', '2 554 5.6.0', '3 550 5.1.1']);
    // one LMTP transaction for the message, RCPT with the mailbox address (the +tag resolved here)
    expect(tcp.messages.slice(before)).toHaveLength(1);
    expect(tcp.messages.at(-1)?.to).toEqual(['alice@petrel.local', 'bob@petrel.local', 'carol@petrel.local']);
  });
});
