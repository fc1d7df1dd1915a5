/**
 * The `petrel` command (DESIGN.md "Interfaces that others rely on").
 * Every subcommand takes --config FILE or the PETREL_CONFIG variable; with
 * neither, the embedded defaults are used (127.0.0.1:2525, data in ./var).
 */
import { ConfigError, loadConfig, type Config } from '../config';
import { flushLog } from '../observe/log';
import { checkConfigCommand } from './check-config';
import { messageCommand } from './message-cmd';
import { queueCommand } from './queue-cmd';
import { resolveCommand } from './resolve-cmd';
import { sendmailCommand } from './sendmail-cmd';
import { serveCommand } from './serve';
import { USER_USAGE, userCommand } from './user-cmd';
import { DKIM_USAGE, dkimCommand } from './dkim-cmd';

const VERSION = '0.1.0';

const USAGE = `usage: petrel <command> [--config FILE] [arguments]

commands:
  serve                         run the MTA in the foreground (SIGTERM stops it gracefully)
  check-config                  validate petrel.conf and print the effective configuration
  queue list [--json]           list queued messages
  queue show ID                 show one message: envelope, recipient states, content
  queue hold|release|delete ID  operator actions, applied by the running server (or directly if none runs)
  queue flush [ID]              retry deferred recipients now
  resolve DOMAIN [--json]       the delivery route: MX hosts in order, their addresses
  sendmail [-t] [-i] [-f FROM] [-F NAME] [-v] [RCPT...]
                                sendmail-compatible submission of a message read from stdin
  message parse [FILE] [--json] RFC 5322 parse of a message (headers, addresses, date), for debugging
${USER_USAGE.join('\n')}
${DKIM_USAGE.join('\n')}
  version                       print the version

The configuration file comes from --config FILE or PETREL_CONFIG; without either,
the embedded defaults are used (listen 127.0.0.1:2525, data in ./var).`;

/** `petrel queue list | head`: the reader went away; that is the end of the output, not an error.
 *  Not for `serve`: a server whose log reader died keeps serving (the logger drops what it cannot write). */
function quietOnEpipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
}

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const err = (s: string): void => void process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);

/** Splits off --config FILE / --config=FILE wherever it appears. */
export function splitConfigFlag(argv: string[]): { config: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let config: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--config' || a === '-c') config = argv[++i];
    else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else rest.push(a);
  }
  return { config, rest };
}

function configOrExit(file: string | undefined): Config | number {
  try {
    return loadConfig(file, process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${e.file}:${e.line}: ${e.message}`);
      return 78;
    }
    throw e;
  }
}

export async function main(argv: string[]): Promise<number> {
  const { config, rest } = splitConfigFlag(argv);
  const [command, ...args] = rest;
  if (command !== 'serve') quietOnEpipe();
  switch (command) {
    case 'serve': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : serveCommand(cfg, err);
    }
    case 'check-config':
      return checkConfigCommand(config ?? process.env.PETREL_CONFIG, out, err);
    case 'queue': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : queueCommand(args, cfg.dataDir, out, err);
    }
    case 'resolve': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : resolveCommand(args, cfg.dnsServers, out, err);
    }
    case 'version':
    case '--version':
      out(`petrel ${VERSION}`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out(USAGE);
      return command === undefined ? 64 : 0;
    case 'message':
      return messageCommand(args, out, err);
    case 'sendmail': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : sendmailCommand(args, cfg, process.stdin, out, err);
    }
    case 'user': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : userCommand(args, cfg, process.stdin, out, err);
    }
    case 'dkim': {
      const cfg = configOrExit(config);
      return typeof cfg === 'number' ? cfg : dkimCommand(args, cfg, out, err);
    }
    default:
      err(`petrel: unknown command "${command}"\n${USAGE}`);
      return 64;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    flushLog();
    process.exitCode = code;
    if (code !== 0 || process.argv[2] === 'serve') setImmediate(() => process.exit(code));
  },
  (e) => {
    flushLog();
    err(`petrel: internal error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(70);
  },
);
