/**
 * `petrel serve`: runs the MTA in the foreground. SIGTERM and SIGINT stop it
 * gracefully (listeners closed, sessions finish their transaction, queue log
 * synced), then it exits 0.
 */
import type { Config } from '../config';
import { createLogger, flushLog } from '../observe/log';
import { PetrelServer } from '../server/server';

export async function serveCommand(cfg: Config, err: (s: string) => void): Promise<number> {
  const log = createLogger({ level: cfg.logLevel });
  let server: PetrelServer;
  try {
    server = await PetrelServer.start(cfg, log);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log.error('start-failed', { error: e });
    flushLog();
    err(`petrel: cannot start: ${msg}`);
    return 71;
  }
  log.info('started', { hostname: cfg.hostname, data_dir: cfg.dataDir, config: cfg.source, pid: process.pid, listening: server.listening.map((l) => ({ kind: l.kind, address: `${l.address.address}:${l.address.port}` })) });
  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info('signal', { signal });
      server.stop().then(
        () => resolve(0),
        (e) => {
          log.error('stop-failed', { error: e });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Configuration reload is not implemented yet: say so rather than die (SIGHUP's default action).
    process.on('SIGHUP', () => log.warn('reload-unsupported', { message: 'SIGHUP reload is not implemented yet; restart to apply changes' }));
    process.on('uncaughtException', (e) => {
      // Acknowledged mail is already durable, so the safe reaction to an unknown state is to stop.
      log.error('uncaught-exception', { error: e });
      flushLog();
      process.exit(70);
    });
  });
}
