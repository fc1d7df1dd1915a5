// Builds dist/petrel.mjs once before the suite: tests that spawn a server or a
// CLI command run the real single-file bundle, the artifact users run.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}
