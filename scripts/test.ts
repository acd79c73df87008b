/**
 * `npm test`: the unit tests, then the e2e tests (two parallel workers), then
 * the secrets grep over what the e2e tests printed, each in a mocha process of
 * its own, and one closing line "N passed, N failed, N skipped" for the whole
 * run (the sum), which is the line CI reads.
 *
 * Why separate processes: in one process, modules loaded by unit tests stay
 * loaded for the e2e tests (nock, once imported, intercepted the e2e tests'
 * real HTTPS twice), and `exit: true` hid whatever one part left running.
 *
 * The e2e part runs even when the unit part fails, so one run shows every
 * failure; the exit code is 1 if either part failed. Each part's spec list is
 * its package.json script (`test:unit`, `test:e2e`); extra arguments are passed
 * to both (`npm test -- --bail`). Each mocha process writes its counts to a
 * file (test/support/summary-reporter.cjs) and prints them in other words, so
 * that the line below is the only "N passed, N failed" line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const PARTS = [
  { name: 'unit tests', script: 'test:unit' },
  // Two mocha workers: most e2e time is waiting (validation, backoff, renewal
  // windows, restarts), which two files at once overlap on two cores.
  { name: 'e2e tests', script: 'test:e2e' },
  // After every other e2e file, in a process of its own: greps what they all printed.
  { name: 'secrets grep', script: 'test:e2e:last' },
];

let current: ReturnType<typeof spawn> | undefined;
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopping = true;
    current?.kill(signal);
  });
}

async function runPart(
  name: string,
  script: string,
  dir: string,
  env: Record<string, string>,
): Promise<Counts> {
  const file = path.join(dir, `${script.replace(/\W/g, '-')}.json`);
  const child = spawn('npm', ['run', '--silent', script, '--', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, ...env, TEST_SUMMARY_FILE: file, TEST_PART: name },
  });
  current = child;
  const code = await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      console.error(`${name}: could not start npm run ${script}: ${err.message}`);
      resolve(1);
    });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  current = undefined;
  let counts: Counts | undefined;
  try {
    counts = JSON.parse(readFileSync(file, 'utf8')) as Counts;
  } catch {
    // no summary: mocha did not get to the end of its run
  }
  if (!counts) {
    console.error(
      `${name}: mocha exited with code ${code} before its run ended; counted as 1 failed`,
    );
    return { passed: 0, failed: 1, skipped: 0 };
  }
  if (code !== 0 && counts.failed === 0) {
    console.error(`${name}: mocha exited with code ${code} after 0 failures; counted as 1 failed`);
    return { ...counts, failed: 1 };
  }
  return counts;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'acme-sidecar-test-'));
const total: Counts = { passed: 0, failed: 0, skipped: 0 };
try {
  // Every e2e worker records the sidecars' output and the secrets it handed
  // them here (test/support/sidecar.ts), for the secrets grep at the end.
  const env: Record<string, string> = { E2E_RECORD_DIR: path.join(dir, 'e2e-record') };
  for (const part of PARTS) {
    if (stopping) break;
    const c = await runPart(part.name, part.script, dir, env);
    // The secrets grep may require the whole suite's output once it ran to its end.
    if (part.script === 'test:e2e' && c.passed + c.failed > 1) env.E2E_SUITE_DONE = '1';
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (stopping) total.failed = Math.max(total.failed, 1);
console.log(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exitCode = total.failed > 0 ? 1 : 0;
