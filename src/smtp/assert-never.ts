/** Ends every exhaustive switch: the compiler proves the default is unreachable. */
export function assertNever(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}
