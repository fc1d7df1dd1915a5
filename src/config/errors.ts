/**
 * ConfigError: a configuration problem with the file and 1-based line it
 * comes from (0 = the file as a whole), printed as "file:line: reason" so that
 * editors and humans can jump to it; `petrel` exits 78 (EX_CONFIG, sysexits.h).
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** "file:line: reason"; line 0 (a whole-file problem) is printed too, so that every error has one shape. */
export function formatConfigError(e: ConfigError): string {
  return `${e.file}:${e.line}: ${e.message}`;
}

/** A short reason for a failed file operation, without Node's repeated path. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
