/**
 * Structured log: one JSON object per line on stdout,
 *   {"ts":"2026-11-28T07:11:23.123Z","level":"info","event":"queued","id":"…",…}
 * so that `grep ID` tells a message's whole story (DESIGN.md, "Log").
 * Logging never throws: a log call is never why a session or the queue fails.
 * Lines are batched and written once per event-loop turn, so a burst of
 * thousands of lines costs a handful of write syscalls, not thousands.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

type Fields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: Fields): void;
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
  /** A logger that adds these fields to every line (e.g. the session or queue id). */
  child(fields: Fields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Receives one complete JSON line, without the newline. Default: batched stdout. */
  write?: (line: string) => void;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** Keys every line starts with; fields of these names are renamed rather than allowed to forge them. */
const RESERVED = new Set(['ts', 'level', 'event']);

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const write = opts.write ?? writeStdout;
  const stamp = opts.now ? () => timestamp(opts.now as () => Date) : cachedStamp;
  const make = (bound: Fields): Logger => {
    const emit = (level: LogLevel) => (event: string, fields?: Fields) => {
      if (RANK[level] < min) return;
      const ts = stamp();
      let line: string;
      try {
        line = formatLine(ts, level, event, bound, fields);
      } catch {
        // A throwing getter or proxy in the fields: keep the event, lose the fields.
        line = formatLine(ts, level, event, {}, { log_error: 'fields could not be read' });
      }
      try {
        write(line);
      } catch {
        // A failing sink must not take the caller down; there is nowhere left to report it.
      }
    };
    return {
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      child: (more) => make({ ...bound, ...more }),
    };
  };
  return make({});
}

/** Lines of one millisecond share one toISOString(): a burst of lines then formats its time once. */
let lastMs = -1;
let lastStamp = '';
function cachedStamp(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastStamp = new Date(ms).toISOString();
  }
  return lastStamp;
}

function timestamp(now: () => Date): string {
  try {
    return now().toISOString();
  } catch {
    return 'invalid-time';
  }
}

/** The JSON line for one event; call-site fields override bound ones. */
export function formatLine(ts: string, level: LogLevel, event: string, bound: Fields, fields?: Fields): string {
  let line = `{"ts":${JSON.stringify(ts)},"level":"${level}","event":${JSON.stringify(String(event))}`;
  const merged = fields ? { ...bound, ...fields } : bound;
  for (const k in merged) {
    if (!Object.hasOwn(merged, k)) continue;
    const json = encodeValue(merged[k]);
    if (json === undefined) continue;
    const key = RESERVED.has(k) ? `field_${k}` : k;
    line += `,${PLAIN_KEY.test(key) ? `"${key}"` : JSON.stringify(key)}:${json}`;
  }
  return line + '}';
}

/** Keys that JSON.stringify would return unchanged inside quotes: the usual snake_case field names. */
const PLAIN_KEY = /^[A-Za-z0-9_.-]*$/;

/** JSON for one field value; circular or otherwise unserialisable values become a placeholder string. */
function encodeValue(value: unknown): string | undefined {
  // ~10 lines per message, most fields strings and numbers: a replacer-free stringify is several times cheaper
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return JSON.stringify(value);
  try {
    return JSON.stringify(value, replacer);
  } catch (e) {
    const why = e instanceof Error && /circular/i.test(e.message) ? 'circular' : 'unserializable';
    return JSON.stringify(`[${why}]`);
  }
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

// ---- the default sink: batched writes to stdout ----

let pending: string[] = [];
let pendingBytes = 0;
let scheduled = false;
let hooked = false;
/** Flush early past this many buffered characters, so a tight loop cannot grow memory without bound. */
const MAX_BUFFER = 256 * 1024;

function writeStdout(line: string): void {
  if (!hooked) hookProcess();
  pending.push(line);
  pendingBytes += line.length + 1;
  if (pendingBytes >= MAX_BUFFER) flushLog();
  else if (!scheduled) {
    scheduled = true;
    setImmediate(flushLog);
  }
}

function hookProcess(): void {
  hooked = true;
  process.once('exit', flushLog);
  // EPIPE (stdout closed by `| head`) is emitted as an 'error' event; unhandled,
  // it would crash the server over a log line.
  process.stdout.on('error', () => {});
}

/** Writes every buffered line now. Called on process exit and before a deliberate exit. */
export function flushLog(): void {
  scheduled = false;
  if (pending.length === 0) return;
  const text = pending.join('\n') + '\n';
  pending = [];
  pendingBytes = 0;
  try {
    process.stdout.write(text);
  } catch {
    // stdout gone: nothing else can be done with a log line.
  }
}
