/**
 * `petrel sendmail` driven the way cron, PHP's mail() and git send-email
 * drive /usr/sbin/sendmail: a message on stdin, -t, -f, -i/-oi, recipients
 * as arguments. Through a running `petrel serve` (its control socket), and
 * with no server running (the queue opened directly, the message waiting
 * there for the server). Each time `queue list --json` must show the right
 * envelope and the stored text must have Bcc removed and Date, Message-ID
 * and From added. Then the sysexits statuses, and the input normalisation.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/cli/control-client';
import { InputNormalizer, parseSendmailArgs, sendmailCommand, type Invoker } from '../../src/cli/sendmail-cmd';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/observe/log';
import { Queue } from '../../src/queue/queue';
import { ControlServer, maxSubmitLine, type SubmitRequest } from '../../src/server/control';
import { cleanup, queueList, queueShowText, REPO, startPetrel, tempDir, writeConfig, type Settings } from '../helpers/spawn';

afterAll(cleanup);

const WHO: Invoker = { user: 'cronuser', now: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)) };

/** A fresh instance folder with its petrel.conf (the spawn helper's test defaults). */
function instance(settings: Settings = {}): { dir: string; configFile: string; cfg: Config } {
  const dir = tempDir('petrel-sendmail-');
  const configFile = writeConfig(dir, settings);
  return { dir, configFile, cfg: loadConfig(configFile, {}) };
}

async function sendmail(cfg: Config, args: string[], input: string | Buffer, chunk = 0): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const bytes = Buffer.from(input);
  const pieces = chunk > 0 ? Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)) : [bytes];
  const status = await sendmailCommand(args, cfg, Readable.from(pieces), (s) => (out += s), (s) => (err += s), WHO);
  return { status, out, err };
}

const CRON = 'To: root\nCc: Ops <ops@remote.test>\nBcc: secret@remote.test,\n  second-secret@remote.test\nSubject: Cron <root@host> run-parts\n\nline one\n.\nafter the dot\n';

function headerOf(text: string): string {
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}

describe('with no server running: the queue is opened directly and the message waits there', () => {
  it('-t -i -f: recipients from To/Cc/Bcc, Bcc removed, Date/Message-ID/From added, CRLF, the dot line kept', async () => {
    const { cfg, configFile } = instance();
    const r = await sendmail(cfg, ['-FCronDaemon', '-i', '-B8BITMIME', '-oem', '-oi', '-t', '-f', 'root'], CRON, 7);
    expect(r).toEqual({ status: 0, out: '', err: '' });
    const [m, ...more] = await queueList(configFile);
    expect(more).toEqual([]);
    expect(m?.sender).toBe('root@mx.petrel.test');
    expect(m?.recipients.map((x) => x.address)).toEqual(['root@example.test', 'ops@remote.test', 'secret@remote.test', 'second-secret@remote.test']);
    const text = (await queueShowText(configFile, m!.id))!;
    const header = headerOf(text);
    expect(header).not.toMatch(/bcc|secret/i);
    expect(header).toMatch(/^Received: by mx\.petrel\.test \(Petrel sendmail, from user cronuser\);/);
    expect(header).toContain('To: root\r\nCc: Ops <ops@remote.test>\r\nSubject: Cron <root@host> run-parts\r\n');
    expect(header).toContain('From: CronDaemon <root@mx.petrel.test>\r\n');
    expect(header).toContain('Date: Fri, 2 Jan 2026 03:04:05 +0000\r\n');
    expect(header).toMatch(/Message-ID: <[0-9a-z]+\.[0-9a-f]{16}@mx\.petrel\.test>\r\n/);
    expect(text).toContain('\r\n\r\nline one\r\n.\r\nafter the dot\r\n');
  });

  it('without -i a line holding just "." ends the input; recipients as arguments; -v prints the id', async () => {
    const { cfg, configFile } = instance();
    const r = await sendmail(cfg, ['-v', 'a@remote.test', 'B <b@remote.test>, c@remote.test'], 'Subject: x\r\nFrom: me@here.test\r\n\r\nkept\r\n.\r\nlost\r\n');
    expect(r.status).toBe(0);
    const [m] = await queueList(configFile);
    expect(r.out).toBe(`${m?.id} (server not running: queued directly)\n`);
    expect(m?.sender).toBe('cronuser@mx.petrel.test');
    expect(m?.recipients.map((x) => x.address)).toEqual(['a@remote.test', 'b@remote.test', 'c@remote.test']);
    const text = (await queueShowText(configFile, m!.id))!;
    expect(text).toContain('kept');
    expect(text).not.toContain('lost');
    expect(text).toContain('From: me@here.test');
    expect(text.match(/^From:/gm)).toHaveLength(1);
  });

  it('when the queue is held by a live process that answers no socket: 75, nothing written', async () => {
    const { cfg, configFile } = instance();
    const q = await Queue.open(join(cfg.dataDir, 'queue'));
    try {
      const r = await sendmail(cfg, ['a@remote.test'], 'Subject: x\n\nbody\n');
      expect(r.status).toBe(75);
      expect(r.err).toMatch(/in use by process/);
    } finally {
      await q.close();
    }
    expect(await queueList(configFile)).toEqual([]);
  });
});

describe('through a running server (control socket "submit")', () => {
  it('the server queues it, logs it with its id, and queue list shows the envelope', async () => {
    const p = await startPetrel();
    const cfg = loadConfig(p.configFile, {});
    const r = await sendmail(cfg, ['-v', '-t', '-f', 'app@example.test'], 'To: x@remote.test\nBcc: y@remote.test\nSubject: =?utf-8?Q?h=C3=A9?=\n\nhello\n');
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    const id = r.out.trim();
    expect(id).toMatch(/^[0-9A-Z]{15}$/);
    const line = await p.waitForLog((l) => l.event === 'queued' && l.id === id);
    expect(line).toMatchObject({ from: 'app@example.test', to: ['x@remote.test', 'y@remote.test'], client: 'sendmail' });
    const entry = (await queueList(p.configFile)).find((m) => m.id === id);
    expect(entry?.sender).toBe('app@example.test');
    expect(entry?.recipients.map((x) => x.address)).toEqual(['x@remote.test', 'y@remote.test']);
    const text = (await queueShowText(p.configFile, id))!;
    expect(text).not.toMatch(/^Bcc:/im);
    expect(text).toContain('From: app@example.test');
  });

  it('a message queued while no server ran is in the queue the server opens', async () => {
    const { dir, cfg } = instance();
    expect((await sendmail(cfg, ['-t'], 'To: late@remote.test\n\nqueued offline\n')).status).toBe(0);
    const p = await startPetrel({ dir });
    const list = await queueList(p.configFile);
    expect(list.map((m) => m.recipients[0]?.address)).toEqual(['late@remote.test']);
  });
});

describe('sysexits', () => {
  it('65: larger than max_message_size (stdin is not read to the end)', async () => {
    const { cfg, configFile } = instance({ max_message_size: 1000 });
    const r = await sendmail(cfg, ['a@remote.test'], `Subject: big\n\n${'x'.repeat(5000)}\n`, 100);
    expect(r.status).toBe(65);
    expect(r.err).toContain('max_message_size');
    expect(await queueList(configFile)).toEqual([]);
  });

  it('67: an invalid recipient; 64: no recipients, unknown flags, unsupported modes, -f without a value', async () => {
    const { cfg } = instance();
    expect((await sendmail(cfg, ['not an address@@x'], 'x\n')).status).toBe(67);
    expect((await sendmail(cfg, ['-t'], 'To: a@-bad-.test\n\nx\n')).status).toBe(67);
    expect((await sendmail(cfg, [], 'Subject: x\n\nbody\n')).status).toBe(64);
    expect((await sendmail(cfg, ['-t'], 'To: undisclosed-recipients:;\n\nx\n')).status).toBe(64);
    expect((await sendmail(cfg, ['-Z', 'a@remote.test'], 'x\n')).status).toBe(64);
    expect((await sendmail(cfg, ['-bp'], 'x\n')).status).toBe(64);
    const noValue = await sendmail(cfg, ['-f'], 'x\n');
    expect(noValue.status).toBe(64);
    expect(noValue.err).toContain('usage: petrel sendmail');
  });
});

describe('driven like cron: a real process, its stdin a pipe', () => {
  it('`sendmail -t -i` exits 0 and the message is queued', async () => {
    const { dir, cfg, configFile } = instance();
    const driver = join(dir, 'sendmail-driver.mts');
    writeFileSync(
      driver,
      `import { sendmailCommand } from ${JSON.stringify(join(REPO, 'src/cli/sendmail-cmd.ts'))};
import { loadConfig } from ${JSON.stringify(join(REPO, 'src/config/index.ts'))};
const cfg = loadConfig(process.argv[2], {});
const w = (s) => process.stderr.write(s);
process.exitCode = await sendmailCommand(process.argv.slice(3), cfg, process.stdin, (s) => process.stdout.write(s), w);\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', driver, configFile, '-t', '-i'], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.write('To: root\nSubject: nightly\n\n');
    child.stdin.end('.\nall done\n');
    const status = await new Promise<number | null>((res) => child.once('close', res));
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const [m] = await queueList(configFile);
    expect(m?.recipients.map((x) => x.address)).toEqual([`root@${cfg.localDomains[0]}`]);
    expect(await queueShowText(configFile, m!.id)).toContain('\r\n\r\n.\r\nall done\r\n');
  });
});

describe('argument parsing (classic sendmail flags)', () => {
  it('cron, PHP and git send-email command lines', () => {
    expect(parseSendmailArgs(['-FCronDaemon', '-i', '-B8BITMIME', '-oem', '-oi', '-t', '-f', 'root'])).toEqual({
      extract: true, ignoreDots: true, verbose: false, sender: 'root', fullName: 'CronDaemon', recipients: [],
    });
    expect(parseSendmailArgs(['-t', '-i', '-fapp@example.test'])).toMatchObject({ extract: true, ignoreDots: true, sender: 'app@example.test' });
    expect(parseSendmailArgs(['-i', '-odb', '-oem', '--', '-dash@x.test'])).toMatchObject({ recipients: ['-dash@x.test'] });
  });
});

describe('input normalisation', () => {
  const norm = (chunks: string[], ignoreDots: boolean): string => {
    const n = new InputNormalizer(ignoreDots);
    const parts = chunks.map((c) => n.push(Buffer.from(c, 'latin1')));
    return Buffer.concat([...parts, n.end()]).toString('latin1');
  };

  it('LF, CRLF and bare CR all become CRLF; a last line gets its line end', () => {
    expect(norm(['a\nb\r\nc\rd'], true)).toBe('a\r\nb\r\nc\r\nd\r\n');
  });

  it('a lone "." line ends input without -i, and is kept with -i; ".." and ". " are ordinary lines', () => {
    expect(norm(['a\n.\nb\n'], false)).toBe('a\r\n');
    expect(norm(['a\n.'], false)).toBe('a\r\n');
    expect(norm(['a\n.\nb\n'], true)).toBe('a\r\n.\r\nb\r\n');
    expect(norm(['..\n. \n.x\n'], false)).toBe('..\r\n. \r\n.x\r\n');
  });

  it('property: any chunking gives the same bytes', () => {
    const text = fc.array(fc.constantFrom('a', '.', '\r', '\n', '\r\n', 'é'), { maxLength: 40 }).map((a) => a.join(''));
    fc.assert(
      fc.property(text, fc.array(fc.nat(), { maxLength: 5 }), fc.boolean(), (s, cuts, dots) => {
        const b = Buffer.from(s, 'latin1').toString('latin1');
        const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
        const chunks: string[] = [];
        let at = 0;
        for (const p of points) chunks.push(b.slice(at, (at = p)));
        chunks.push(b.slice(at));
        const out = norm(chunks, dots);
        expect(out).toBe(norm([b], dots));
        expect(out).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
      }),
      { numRuns: 500 },
    );
  });
});

describe('the control socket "submit" request (src/server/control.ts)', () => {
  const submit = (body: string | Buffer, more: Partial<SubmitRequest> = {}): SubmitRequest => ({
    op: 'submit',
    sender: 's@example.test',
    recipients: ['r@remote.test'],
    body: Buffer.from(body).toString('base64'),
    ...more,
  });

  async function withServer(maxMessageSize: number, f: (dataDir: string, q: Queue) => Promise<void>): Promise<void> {
    const dataDir = tempDir('petrel-submit-');
    const q = await Queue.open(join(dataDir, 'queue'));
    const server = await ControlServer.start({ dataDir, queue: q, log: createLogger({ write: () => {} }), maxMessageSize });
    try {
      await f(dataDir, q);
    } finally {
      await server.stop();
      await q.close();
    }
  }

  it('a submit line far longer than other requests may be is taken, and the message is durable in the queue', async () => {
    await withServer(4 * 1024 * 1024, async (dataDir, q) => {
      const body = `Subject: big\r\n\r\n${'0123456789abcdef\r\n'.repeat(100_000)}`;
      const res = await controlRequest(dataDir, submit(body));
      expect(res).toEqual({ ok: true, id: expect.stringMatching(/^[0-9A-Z]{15}$/) });
      const m = q.get((res as { id: string }).id);
      expect(m).toMatchObject({ sender: 's@example.test', size: body.length, params: { smtputf8: false } });
    });
  });

  it('refuses what the queue must never hold: bare LF, a bad recipient, an over-size body, a line past the bound', async () => {
    await withServer(1000, async (dataDir, q) => {
      expect(await controlRequest(dataDir, submit('a\nb\r\n'))).toEqual({ ok: false, error: 'bad message: line ends must be CRLF' });
      expect(await controlRequest(dataDir, submit('a\r\n', { recipients: ['no domain'] }))).toMatchObject({ ok: false, error: expect.stringMatching(/^bad recipient/) });
      expect(await controlRequest(dataDir, submit('a\r\n', { recipients: [] }))).toMatchObject({ ok: false, error: expect.stringMatching(/^bad recipient/) });
      expect(await controlRequest(dataDir, submit('x'.repeat(1001)))).toMatchObject({ ok: false, error: expect.stringMatching(/^bad message: larger/) });
      const huge = submit('x'.repeat(maxSubmitLine(1000)));
      expect(await controlRequest(dataDir, huge)).toMatchObject({ ok: false, error: expect.stringMatching(/^request line longer than/) });
      expect(q.list()).toEqual([]);
    });
  });

  it('8-bit bodies and UTF-8 addresses set BODY=8BITMIME and SMTPUTF8 in the envelope', async () => {
    await withServer(1000, async (dataDir, q) => {
      const res = await controlRequest(dataDir, submit('Subject: caf\u00e9\r\n\r\n\u00e9\r\n', { recipients: ['j\u00fcrgen@remote.test'] }));
      expect(q.get((res as { id: string }).id)?.params).toEqual({ body: '8BITMIME', smtputf8: true });
    });
  });
});
