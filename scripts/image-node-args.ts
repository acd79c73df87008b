import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function dockerfile(): string {
  return readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
}

/**
 * The Node flags the image starts the CLI with (the Dockerfile's
 * ENTRYPOINT), so that the benches measure what the image runs.
 */
export function imageNodeArgs(): string[] {
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile())?.[1];
  if (!entry) throw new Error('no ENTRYPOINT ["node", ...] in the Dockerfile');
  const argv = JSON.parse(entry) as string[];
  return argv.slice(1).filter((a) => a.startsWith('--'));
}

/**
 * The glibc malloc tunables the image sets (`MALLOC_*` of the runtime
 * stage's ENV, e.g. MALLOC_ARENA_MAX), for the benches to set them for the
 * process they measure as the image does. Only `ENV KEY=VALUE` lines
 * (continued with `\`) are read, the form the Dockerfile uses.
 */
export function imageMallocEnv(): Record<string, string> {
  const text = dockerfile();
  // The runtime stage: after the last FROM.
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const m of runtime.matchAll(/^ENV\s+((?:.*\\\n)*.*)$/gm)) {
    for (const pair of (m[1] ?? '').replace(/\\\n/g, ' ').split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.startsWith('MALLOC_')) env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}
