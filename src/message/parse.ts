/**
 * parseMessage: the RFC 5322 reading of a message's header section that
 * `petrel message parse --json` prints (DESIGN.md "Interfaces"): every field
 * in order and unfolded, the originator and destination address fields
 * (§3.6.2, §3.6.3) as {name, address} lists, the Subject with its RFC 2047
 * words decoded (§3.6.5), the Date in UTC (§3.6.1), the Message-ID
 * (§3.6.4) and the defects found. Only the header section is read; the body
 * is not needed. Pure; never throws; a field that cannot be read is a
 * defect and a null or a shorter list, never an error.
 *
 * §3.6 allows one From, To, Cc, Reply-To, Subject, Date and Message-ID each.
 * When an address field repeats, the lists are joined (a reader would see
 * every mailbox); for the others the first one counts. Either way it is a
 * defect. From and Date are required (§3.6): their absence is a defect too.
 */
import { parseAddressList, parseMsgId, type Mailbox } from './address-list';
import { parseDate } from './date-parse';
import { decodeUnstructured } from './encoded-word';
import { DefectList, HeaderParser, type Defect, type HeaderField, type HeaderLimits } from './header';

export interface ParsedMessage {
  headers: { name: string; value: string }[];
  from: Mailbox[];
  to: Mailbox[];
  cc: Mailbox[];
  reply_to: Mailbox[];
  subject: string | null;
  date: string | null;
  message_id: string | null;
  defects: Defect[];
}

const SINGLE = ['from', 'to', 'cc', 'reply-to', 'subject', 'date', 'message-id'];

/** Parses a message held in memory (only its header section is looked at). */
export function parseMessage(bytes: Uint8Array, limits?: HeaderLimits): ParsedMessage {
  const p = new HeaderParser(limits);
  const fields = [...p.push(bytes), ...p.end()];
  return interpret(fields, p.defects);
}

/** Parses a message from a stream, reading no further than the end of its header section. */
export async function parseMessageStream(chunks: AsyncIterable<Uint8Array>, limits?: HeaderLimits): Promise<ParsedMessage> {
  const p = new HeaderParser(limits);
  const fields: HeaderField[] = [];
  for await (const chunk of chunks) {
    fields.push(...p.push(chunk));
    if (p.done) break;
  }
  fields.push(...p.end());
  return interpret(fields, p.defects);
}

/** Turns the fields into the parsed view; `defects` already holds the header parser's. */
export function interpret(fields: readonly HeaderField[], defects: DefectList): ParsedMessage {
  const all = (name: string): HeaderField[] => fields.filter((f) => f.name.toLowerCase() === name);
  for (const name of SINGLE) {
    const n = all(name).length;
    if (n > 1) defects.add('duplicate-field', `${n} ${name} fields; RFC 5322 §3.6 allows one`, name);
  }
  const addresses = (name: string): Mailbox[] => all(name).flatMap((f) => parseAddressList(f.value, defects, f.name));
  const first = (name: string): HeaderField | undefined => all(name)[0];
  const subject = first('subject');
  const date = first('date');
  const id = first('message-id');
  if (all('from').length === 0) defects.add('missing-field', 'no From field (RFC 5322 §3.6)');
  if (!date) defects.add('missing-field', 'no Date field (RFC 5322 §3.6)');
  return {
    headers: fields.map((f) => ({ name: f.name, value: f.value })),
    from: addresses('from'),
    to: addresses('to'),
    cc: addresses('cc'),
    reply_to: addresses('reply-to'),
    subject: subject ? decodeUnstructured(subject.value, defects, subject.name) : null,
    date: date ? parseDate(date.value, defects, date.name) : null,
    message_id: id ? messageId(id, defects) : null,
    defects: defects.items,
  };
}

/** The msg-id; a lone "<...>" that breaks the grammar is still returned, with a defect, since it is what threads by. */
function messageId(f: HeaderField, defects: DefectList): string | null {
  const strict = parseMsgId(f.value);
  if (strict !== null) return strict;
  const loose = /^\s*(<[^<>\s]+>)\s*$/.exec(f.value);
  defects.add('invalid-message-id', `not an RFC 5322 msg-id: ${JSON.stringify(f.value.slice(0, 100))}`, f.name);
  return loose?.[1] ?? null;
}
