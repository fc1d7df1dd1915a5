/**
 * `petrel message parse [FILE] [--json]`: the RFC 5322 reading of a message,
 * for debugging (DESIGN.md "Interfaces"). FILE "-" or none reads stdin. Only
 * the header section is read, through the streaming parser, so a huge file
 * costs no more memory than its header. With --json it prints one object:
 * headers (every field in order, {name, value}, unfolded), from, to, cc,
 * reply_to ({name, address} lists, groups flattened, names decoded), subject
 * (RFC 2047 decoded), date (ISO 8601 UTC or null), message_id (with its
 * angle brackets, or null) and defects ({code, field?, detail}). Without it,
 * the same as text. A malformed message is still exit status 0: its problems
 * are the defects. Exit statuses (sysexits): 64 usage, 66 no such file, 74 I/O error.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Mailbox } from '../message/address-list';
import { parseMessageStream, type ParsedMessage } from '../message/parse';

type Print = (s: string) => void;

export const MESSAGE_USAGE = 'usage: petrel message parse [FILE] [--json]\n';
const EX_USAGE = 64;
const EX_NOINPUT = 66;
const EX_IOERR = 74;

export async function messageCommand(args: string[], out: Print, err: Print, stdin: AsyncIterable<Buffer> = process.stdin): Promise<number> {
  const [sub, ...rest] = args;
  const json = rest.includes('--json');
  const files = rest.filter((a) => a !== '--json');
  const bad = files.find((a) => a.startsWith('-') && a !== '-');
  if (sub !== 'parse' || files.length > 1 || bad !== undefined) {
    err(sub === undefined || sub === 'parse' ? (bad ? `petrel message: unknown option ${bad}\n${MESSAGE_USAGE}` : MESSAGE_USAGE) : `petrel message: unknown subcommand "${sub}"\n${MESSAGE_USAGE}`);
    return EX_USAGE;
  }
  const file = files[0] ?? '-';
  let parsed: ParsedMessage;
  try {
    parsed = await parseMessageStream(file === '-' ? stdin : await openFile(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    err(`petrel message parse: ${file}: ${e instanceof Error ? e.message : String(e)}\n`);
    return code === 'ENOENT' || code === 'EISDIR' ? EX_NOINPUT : EX_IOERR;
  }
  if (json) out(`${JSON.stringify(parsed, null, 2)}\n`);
  else for (const line of textLines(parsed)) out(`${line}\n`);
  return 0;
}

async function openFile(file: string): Promise<AsyncIterable<Buffer>> {
  const st = await stat(file);
  if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  return createReadStream(file, { highWaterMark: 64 * 1024 });
}

function textLines(p: ParsedMessage): string[] {
  const boxes = (l: Mailbox[]): string => l.map((m) => (m.name === null ? `<${m.address}>` : `${JSON.stringify(m.name)} <${m.address}>`)).join(', ');
  const lines = [
    `From:       ${boxes(p.from)}`,
    `To:         ${boxes(p.to)}`,
    `Cc:         ${boxes(p.cc)}`,
    `Reply-To:   ${boxes(p.reply_to)}`,
    `Subject:    ${p.subject === null ? '(none)' : JSON.stringify(p.subject)}`,
    `Date:       ${p.date ?? '(none or unparseable)'}`,
    `Message-ID: ${p.message_id ?? '(none)'}`,
    '',
    `Header fields (${p.headers.length}):`,
    ...p.headers.map((h) => `  ${h.name}: ${JSON.stringify(h.value)}`),
    '',
    `Defects (${p.defects.length}):`,
    ...p.defects.map((d) => `  ${d.code}${d.field === undefined ? '' : ` [${d.field}]`}: ${d.detail}`),
  ];
  return lines;
}
