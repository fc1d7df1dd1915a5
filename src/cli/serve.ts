/**
 * `petrel serve`: runs the MTA in the foreground. SIGTERM and SIGINT stop it
 * gracefully (listeners closed, sessions finish their transaction, queue log
 * synced), then it exits 0.
 *
 * Before anything else it bounds the V8 heap (boundHeap), because Petrel runs
 * as plain `node dist/petrel.mjs serve`, with no node flags to do it.
 */
import { PerformanceObserver, constants, type PerformanceEntry, type PerformanceObserverEntryList } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import type { Config } from '../config';
import { createLogger, flushLog } from '../observe/log';
import { PetrelServer } from '../server/server';

/** The young generation's semi-space stops growing here; V8's 64-bit default lets it reach 16 MiB (two of them). */
const MAX_SEMI_SPACE = 4 * 1024 * 1024;
/** Between full GCs the old generation may grow this much past what survived the last one... */
const HEAP_GROWING_PERCENT = 50;
/** ...while the live heap is below this; above it (a large queue index) V8's own adaptive factor is back. */
const SMALL_LIVE_HEAP = 64 * 1024 * 1024;

/**
 * Issue 5 asks for < 100 MB resident at 100 sessions. The live heap under that
 * load is ~10 MB, but with V8's defaults the young generation grows to 2 × 16 MiB
 * and the old one to several times its live size before a full GC: ~70 MB of V8
 * heap, mostly garbage (bench/memory.ts, bench/README.md "Memory"). Most heap
 * sizes are fixed when the isolate is created and ignore v8.setFlagsFromString
 * afterwards (--max-semi-space-size does nothing here, measured), but two flags
 * are read at every GC: --semi-space-growth-factor (SemiSpaceNewSpace::Grow) and
 * --heap-growing-percent (the old-generation limit set after each full GC). So
 * after each GC: stop the young generation's growth (factor 1) once a semi-space
 * reaches MAX_SEMI_SPACE, let it grow again (factor 2, the default) if V8 has
 * shrunk it; and after a full GC pick the old generation's growth by live size.
 * Never factor 0: V8 multiplies by it (a zero-sized new space crashes).
 */
export function boundHeap(): void {
  let growthFactor = 2;
  let growingPercent = HEAP_GROWING_PERCENT;
  setFlagsFromString(`--heap-growing-percent=${growingPercent}`);
  const adjust = (list: PerformanceObserverEntryList): void => {
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    // space_size counts both semi-spaces
    const factor = young && young.space_size / 2 >= MAX_SEMI_SPACE ? 1 : 2;
    if (factor !== growthFactor) setFlagsFromString(`--semi-space-growth-factor=${(growthFactor = factor)}`);
    if (!list.getEntries().some(isFullGc)) return;
    // right after a full GC the used heap is (about) the live heap; 0 is V8's default, its own adaptive factor
    const percent = getHeapStatistics().used_heap_size < SMALL_LIVE_HEAP ? HEAP_GROWING_PERCENT : 0;
    if (percent !== growingPercent) setFlagsFromString(`--heap-growing-percent=${(growingPercent = percent)}`);
  };
  new PerformanceObserver(adjust).observe({ entryTypes: ['gc'] });
}

/** A gc entry's detail.kind (Node's typings leave `detail` out of PerformanceEntry). */
function isFullGc(e: PerformanceEntry): boolean {
  return (e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

export async function serveCommand(cfg: Config, err: (s: string) => void): Promise<number> {
  boundHeap();
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
