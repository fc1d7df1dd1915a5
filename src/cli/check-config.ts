/**
 * `petrel check-config [--config FILE]`: validates the configuration and prints
 * the effective settings, defaults included. Exit status 78 (EX_CONFIG,
 * sysexits.h) with "file:line: reason" on stderr when something is wrong.
 */
import { ConfigError, describeConfig, formatConfigError, loadConfig } from '../config/index';

/** EX_CONFIG from sysexits.h: a configuration error. */
export const EX_CONFIG = 78;
/** EX_SOFTWARE from sysexits.h: an internal error (a bug in Petrel). */
export const EX_SOFTWARE = 70;

/** Writes whole lines (each ending in "\n") to out/err; returns the exit status. Never a stack trace. */
export function checkConfigCommand(configFile: string | undefined, out: (s: string) => void, err: (s: string) => void): number {
  try {
    out(describeConfig(loadConfig(configFile, process.env)));
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${formatConfigError(e)}\n`);
      return EX_CONFIG;
    }
    err(`petrel check-config: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EX_SOFTWARE;
  }
}
