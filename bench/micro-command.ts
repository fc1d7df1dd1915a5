/**
 * Microbenchmark of the SMTP command path (RFC 5321 §4.1, pipelined per RFC 2920):
 * a ServerSession fed a pipelined stream of EHLO / MAIL / RCPT / DATA / QUIT in
 * socket-sized chunks, with every question answered "accept" at once (no policy,
 * no queue: what is measured is line splitting, verb dispatch, path and parameter
 * parsing, reply building); then parseMailArgs / parseRcptArgs alone in a loop.
 * Prints MB/s and ops/s (median of several rounds after warm-up); asserts nothing.
 *
 *   npx tsx bench/micro-command.ts
 */
import { parseMailArgs, parseRcptArgs } from '../src/smtp/params';
import { ServerSession } from '../src/smtp/server-session';
import type { Output, Question, SessionConfig } from '../src/smtp/session-types';

const SESSIONS = 2000; // per round
const TXNS_PER_SESSION = 5;
const RCPTS_PER_TXN = 3;
const CHUNK = 16 * 1024;
const ARG_LOOPS = 200_000;
const ROUNDS = 7;

const CONFIG: SessionConfig = { hostname: 'mx.bench.example', maxMessageSize: 50 << 20, maxRecipients: 1000, maxErrors: 1000, tlsAvailable: false };

/** One connection's pipelined input; the body is a short one-line message so that commands dominate. */
function sessionScript(n: number): Buffer {
  const lines = [`EHLO client-${n}.example.org`];
  for (let t = 0; t < TXNS_PER_SESSION; t++) {
    lines.push(`MAIL FROM:<sender.${n}.${t}@example.org> SIZE=1234 BODY=8BITMIME`);
    for (let r = 0; r < RCPTS_PER_TXN; r++) lines.push(`RCPT TO:<user${r}+tag@mail.example.net>`);
    lines.push('DATA', 'Subject: x', '', 'hello', '.');
  }
  lines.push('QUIT', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

const COMMANDS_PER_SESSION = 1 + TXNS_PER_SESSION * (2 + RCPTS_PER_TXN) + 1; // EHLO, MAIL, RCPT×n, DATA, QUIT
const scripts = Array.from({ length: 16 }, (_, i) => sessionScript(i));
const chunked = scripts.map((s) => {
  const out: Buffer[] = [];
  for (let i = 0; i < s.length; i += CHUNK) out.push(s.subarray(i, i + CHUNK));
  return out;
});

let ids = 0;
/** The adapter's part: accept every question (MAIL gets a queue id), until no question is open. */
function settle(session: ServerSession, outs: Output[]): number {
  let replies = 0;
  for (;;) {
    let question: Question | null = null;
    for (const o of outs) {
      if (o.type === 'reply') replies++;
      else if (o.type === 'ask') question = o.question;
    }
    if (!question) return replies;
    outs = session.decide(question.kind === 'mail' ? { accept: true, id: `B${(ids++).toString(36).padStart(14, '0')}` } : { accept: true });
  }
}

function runSessions(): number {
  let replies = 0;
  for (let s = 0; s < SESSIONS; s++) {
    const session = new ServerSession(CONFIG, { clientIp: '192.0.2.1', tls: false });
    replies += settle(session, session.start());
    for (const c of chunked[s % chunked.length] ?? []) replies += settle(session, session.receive(c));
  }
  return replies;
}

/** Warm-up rounds first (the JIT settles), then the median and best of ROUNDS. */
function measure(name: string, bytes: number, ops: number, run: () => void): void {
  for (let w = 0; w < 3; w++) run();
  const secs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    run();
    secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  secs.sort((x, y) => x - y);
  const median = secs[Math.floor(secs.length / 2)] ?? 1;
  const best = secs[0] ?? 1;
  const mb = (s: number) => (bytes / s / 1e6).toFixed(1).padStart(7);
  const kops = (s: number) => (ops / s / 1e3).toFixed(0).padStart(6);
  console.log(`${name.padEnd(34)} median ${mb(median)} MB/s ${kops(median)} k ops/s   best ${mb(best)} MB/s ${kops(best)} k ops/s`);
}

const sessionBytes = Array.from({ length: SESSIONS }, (_, s) => scripts[s % scripts.length]?.length ?? 0).reduce((a, b) => a + b, 0);
console.log(`ServerSession: ${SESSIONS} sessions/round, each EHLO + ${TXNS_PER_SESSION} × (MAIL, ${RCPTS_PER_TXN} RCPT, DATA, 1-line body) + QUIT, pipelined in ${CHUNK / 1024} KB chunks`);
console.log('  ops = commands (EHLO/MAIL/RCPT/DATA/QUIT); MB/s over all input bytes incl. the tiny bodies');
measure('ServerSession pipelined stream', sessionBytes, SESSIONS * COMMANDS_PER_SESSION, () => {
  const replies = runSessions();
  // 220 + one reply per command + the 250 after each body
  if (replies !== SESSIONS * (1 + COMMANDS_PER_SESSION + TXNS_PER_SESSION)) throw new Error(`bench: ${replies} replies, the script went wrong`);
});

const MAIL_ARGS = ['FROM:<alice.smith@example.org> SIZE=12345 BODY=8BITMIME', 'FROM:<> SIZE=999', 'FROM:<"quoted local"@[192.0.2.1]>', 'FROM:<bounce+x=y@lists.example.com> BODY=7BIT'];
const RCPT_ARGS = ['TO:<bob@example.net>', 'TO:<Postmaster>', 'TO:<user+tag@sub.mail.example.co.uk>', 'TO:<x@[IPv6:2001:db8::1]>'];
const argBytes = (list: string[]) => Array.from({ length: ARG_LOOPS }, (_, i) => Buffer.byteLength(list[i % list.length] ?? '')).reduce((a, b) => a + b, 0);

measure('parseMailArgs', argBytes(MAIL_ARGS), ARG_LOOPS, () => {
  for (let i = 0; i < ARG_LOOPS; i++) if (!parseMailArgs(MAIL_ARGS[i % MAIL_ARGS.length] ?? '', { maxSize: 1 << 30 }).ok) throw new Error('bench: MAIL args refused');
});
measure('parseRcptArgs', argBytes(RCPT_ARGS), ARG_LOOPS, () => {
  for (let i = 0; i < ARG_LOOPS; i++) if (!parseRcptArgs(RCPT_ARGS[i % RCPT_ARGS.length] ?? '', { smtputf8: false }).ok) throw new Error('bench: RCPT args refused');
});
