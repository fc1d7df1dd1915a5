/**
 * `petrel queue list [--json]`, `show ID`, `hold ID`, `release ID`,
 * `delete ID` and `flush [ID]` (DESIGN.md command line). list and show read
 * the queue log directly and read-only (src/queue/reader.ts), so they work
 * with or without a running server. The table follows Postfix postqueue -p:
 * id (with `!` when held), size, arrival, sender, then the recipients
 * indented, with why a recipient is still waiting. The operations go to the
 * running server over its control socket (./control-client.ts); with no
 * server running they open the queue themselves (Queue.open takes the LOCK,
 * so they can never write beside a live server).
 *
 * Every call of `out`/`err` carries whole lines ending in "\n", so a writer
 * that passes text through and one that adds a missing newline print the same.
 * Exit statuses are sysexits(3): 64 usage, 69 unavailable, 74 I/O error.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { readQueue } from '../queue/queue';
import { isValidId } from '../queue/records';
import type { QueuedMessage, QueuedRecipient } from '../queue/queue';
import { isoTime, messageJson, NO_SUCH_MESSAGE, type ControlOp, type ControlResponse, type OpRequest } from '../server/control';
import { assertNever } from '../smtp/assert-never';
import { requestOrDirect } from './control-client';

type Print = (s: string) => void;

const USAGE = 'usage: petrel queue list [--json] | show ID | flush [ID] | delete ID | hold ID | release ID\n';
const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_IOERR = 74;

/** `petrel queue list [--json]` and `petrel queue show ID`; returns the exit status. */
export async function queueCommand(args: string[], dataDir: string, out: Print, err: Print): Promise<number> {
  const dir = path.join(dataDir, 'queue');
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'list':
        return await listCommand(dir, rest, out, err);
      case 'show':
        return await showCommand(dir, rest, out, err);
      case 'flush':
      case 'delete':
      case 'hold':
      case 'release':
        return await opCommand(sub, rest, dataDir, out, err);
      default:
        err(sub === undefined ? USAGE : `petrel queue: unknown subcommand "${sub}"\n${USAGE}`);
        return EX_USAGE;
    }
  } catch (e) {
    err(`petrel queue: ${e instanceof Error ? e.message : String(e)}\n`);
    return EX_IOERR;
  }
}

/** hold/release/delete/flush: one line on stdout ("held ID"), or the reason on stderr. */
async function opCommand(op: ControlOp, rest: string[], dataDir: string, out: Print, err: Print): Promise<number> {
  const id = rest[0];
  const req = rest.length > 1 || id?.startsWith('-') ? null : opRequest(op, id);
  if (!req) {
    err(USAGE);
    return EX_USAGE;
  }
  if (id !== undefined && !isValidId(id)) return report(req, { ok: false, error: NO_SUCH_MESSAGE }, '', out, err);
  const offline = ' (server not running: applied to the queue directly)';
  // No queue directory: no server ever ran here, and the offline path must not create one.
  if (!existsSync(path.join(dataDir, 'queue'))) return report(req, emptyQueueAnswer(req), offline, out, err);
  const sent = await requestOrDirect(dataDir, req);
  if ('unavailable' in sent) return unreachable(sent.unavailable, err);
  return report(req, sent.res, sent.direct ? offline : '', out, err);
}

function emptyQueueAnswer(req: OpRequest): ControlResponse {
  return req.op === 'flush' && req.id === undefined ? { ok: true, flushed: 0 } : { ok: false, error: NO_SUCH_MESSAGE };
}

function opRequest(op: ControlOp, id: string | undefined): OpRequest | null {
  if (op === 'flush') return id === undefined ? { op } : { op, id };
  return id === undefined ? null : { op, id };
}

function report(req: OpRequest, res: ControlResponse, note: string, out: Print, err: Print): number {
  const n = res.ok ? (res.flushed ?? 0) : 0;
  const what = 'id' in req && req.id !== undefined ? req.id : `${n} message${n === 1 ? '' : 's'}`;
  if (res.ok) {
    out(`${PAST[req.op]} ${what}${note}\n`);
    return 0;
  }
  err(res.error === NO_SUCH_MESSAGE ? `no such message: ${what}${note}\n` : `petrel queue ${req.op}: ${res.error}\n`);
  return res.error === NO_SUCH_MESSAGE ? 1 : EX_UNAVAILABLE;
}

const PAST: Record<ControlOp, string> = { hold: 'held', release: 'released', delete: 'deleted', flush: 'flushed' };

function unreachable(why: string, err: Print): number {
  err(`petrel queue: ${why}\n`);
  return EX_UNAVAILABLE;
}


async function listCommand(dir: string, rest: string[], out: Print, err: Print): Promise<number> {
  const json = rest.includes('--json');
  const unknown = rest.filter((a) => a !== '--json');
  if (unknown.length > 0) {
    err(`petrel queue list: unexpected argument "${unknown[0]}"\n${USAGE}`);
    return EX_USAGE;
  }
  const { messages } = await readQueue(dir);
  if (json) out(`${JSON.stringify(messages.map(toJson), null, 2)}\n`);
  else for (const line of table(messages)) out(`${line}\n`);
  return 0;
}

/** The `queue list --json` shape of DESIGN.md (shared with the control socket's `list`). */
export const toJson = messageJson;

function table(messages: QueuedMessage[]): string[] {
  if (messages.length === 0) return ['Queue is empty'];
  const idWidth = Math.max(16, ...messages.map((m) => m.id.length + 2));
  const indent = ' '.repeat(idWidth + 10 + 22);
  const lines = [`${'-Queue ID-'.padEnd(idWidth)}${'--Size--'.padStart(8)}  ${'---Arrival Time---'.padEnd(20)}  -Sender/Recipient-------`];
  for (const m of messages) {
    const id = `${m.id}${m.held ? '!' : ''}`.padEnd(idWidth);
    lines.push(`${id}${String(m.size).padStart(8)}  ${isoTime(m.arrived).padEnd(20)}  ${m.sender || '<>'}`);
    for (const r of m.recipients) {
      const why = recipientNote(r);
      if (why) lines.push(`${indent}${why}`);
      lines.push(`${indent}${r.address}`);
    }
    lines.push('');
  }
  lines.push(`-- ${messages.length} messages`);
  return lines;
}

/** postqueue -p puts the reason in parentheses above a recipient still waiting. */
function recipientNote(r: QueuedRecipient): string | null {
  switch (r.state) {
    case 'queued':
      return r.attempts > 0 ? `(queued after ${r.attempts} attempts: ${r.lastReply ?? ''})` : null;
    case 'deferred': {
      const next = r.nextAttempt === null ? '' : `, next ${isoTime(r.nextAttempt)}`;
      return `(deferred, ${r.attempts} attempts${next}: ${r.lastReply ?? ''})`;
    }
    case 'delivered':
      return '(delivered)';
    case 'failed':
      return `(failed: ${r.lastReply ?? ''})`;
    default:
      return assertNever(r.state);
  }
}

async function showCommand(dir: string, rest: string[], out: Print, err: Print): Promise<number> {
  const id = rest[0];
  if (id === undefined || rest.length > 1) {
    err(USAGE);
    return EX_USAGE;
  }
  const snapshot = await readQueue(dir);
  const m = snapshot.messages.find((x) => x.id === id);
  if (!m) {
    err(`petrel queue show: no such message: ${id}\n`);
    return 1;
  }
  for (const line of envelopeLines(m)) out(`${line}\n`);
  await printText(snapshot.readBody(id), out);
  return 0;
}

function envelopeLines(m: QueuedMessage): string[] {
  const lines = [
    `Queue-ID: ${m.id}`,
    `Sender: <${m.sender}>`,
    `Arrived: ${isoTime(m.arrived)}`,
    `Size: ${m.size}`,
    `Held: ${m.held ? 'yes' : 'no'}`,
    `Client: ${m.clientIp} (HELO ${m.helo})`,
    'Recipients:',
  ];
  for (const r of m.recipients) {
    const next = r.nextAttempt === null ? '' : ` next=${isoTime(r.nextAttempt)}`;
    const reply = r.lastReply === null ? '' : ` last_reply=${JSON.stringify(r.lastReply)}`;
    lines.push(`  <${r.address}> ${r.state} attempts=${r.attempts}${next}${reply}`);
  }
  lines.push('');
  return lines;
}

/** Streams the stored message text, handing `out` whole lines (UTF-8 split safely across chunks). */
async function printText(body: AsyncIterable<Buffer>, out: Print): Promise<void> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of body) {
    pending += decoder.write(chunk);
    const cut = pending.lastIndexOf('\n') + 1;
    if (cut > 0) {
      out(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
  }
  pending += decoder.end();
  if (pending.length > 0) out(`${pending}\n`);
}
