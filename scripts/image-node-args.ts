import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The Node flags the image starts the CLI with (the Dockerfile's
 * ENTRYPOINT), so that the benches measure what the image runs.
 */
export function imageNodeArgs(): string[] {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  if (!entry) throw new Error('no ENTRYPOINT ["node", ...] in the Dockerfile');
  const argv = JSON.parse(entry) as string[];
  return argv.slice(1).filter((a) => a.startsWith('--'));
}
