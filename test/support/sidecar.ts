import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sidecarEnvFor, type DevEnv } from '../../devenv/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'src', 'cli.ts');

/**
 * Every sidecar output seen in this test process. The e2e files run in
 * parallel mocha workers and the secrets grep in a mocha run of its own
 * after them (scripts/test.ts), so with E2E_RECORD_DIR set each output and
 * each registered secret is also appended to a file there, one per worker,
 * and `suiteOutputs()` / `knownSecrets()` read them all.
 */
const localOutput: string[] = [];
const RECORD_DIR = process.env.E2E_RECORD_DIR;
const OUTPUT_FILE = RECORD_DIR && path.join(RECORD_DIR, `output-${process.pid}.jsonl`);
const SECRETS_FILE = RECORD_DIR && path.join(RECORD_DIR, `secrets-${process.pid}.jsonl`);

function record(file: string | undefined, value: string): void {
  if (!file || !RECORD_DIR) return;
  mkdirSync(RECORD_DIR, { recursive: true });
  appendFileSync(file, `${JSON.stringify(value)}\n`);
}

/** Every recorded value of one kind: this process's, and every worker's under E2E_RECORD_DIR. */
function recorded(kind: 'output' | 'secrets', local: Iterable<string>): string[] {
  const all = new Set<string>(local);
  const out = [...local];
  if (RECORD_DIR && existsSync(RECORD_DIR)) {
    for (const f of readdirSync(RECORD_DIR)) {
      if (!f.startsWith(`${kind}-`)) continue;
      const text = readFileSync(path.join(RECORD_DIR, f), 'utf8');
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const v = JSON.parse(line) as string;
        if (kind === 'output' || !all.has(v)) out.push(v);
        all.add(v);
      }
    }
  }
  return kind === 'output' ? out : [...all];
}

/** Every sidecar output seen in this test process. */
export const processOutput: readonly string[] = localOutput;

/** Records the output of a sidecar a test ran by itself (not through collect). */
export function recordOutput(text: string): void {
  localOutput.push(text);
  record(OUTPUT_FILE, text);
}

/** Every sidecar output of the e2e run so far (the secrets grep reads it). */
export function suiteOutputs(): string[] {
  return RECORD_DIR ? recorded('output', []) : [...localOutput];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** JSON log lines from stderr. */
  logs: Record<string, unknown>[];
}

/** Environment for a sidecar that uses the devenv's CAs, nginx and directories, logging JSON. */
export function sidecarEnv(
  env: DevEnv,
  extra: Record<string, string> = {},
): Record<string, string> {
  return sidecarEnvFor(env, { LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...extra });
}

function parseLogs(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/** Starts the real CLI (TypeScript through tsx) with only the given environment. */
export function startSidecar(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the CLI to completion. */
export function runSidecar(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<RunResult> {
  const child = startSidecar(args, env);
  return collect(child, timeoutMs);
}

/**
 * The JSON log lines `child` has written to stderr so far, re-read on every
 * call: a test waits for the event it expects (`waitFor`) instead of sleeping.
 * Call it right after starting the child, before its output flows.
 */
export function watchLogs(child: ChildProcess): () => Record<string, unknown>[] {
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return () => parseLogs(text);
}

export function collect(child: ChildProcess, timeoutMs = 120_000): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sidecar did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      recordOutput(stdout);
      recordOutput(stderr);
      resolve({ code, stdout, stderr, logs: parseLogs(stderr) });
    });
  });
}

const secrets = new Set<string>();

/**
 * Declares a secret a test handed to a sidecar (API secret key, EAB HMAC key,
 * webhook token): test/e2e/zz-secrets-grep.test.ts checks that no sidecar
 * output of the e2e run (`suiteOutputs`) contains it. With
 * `basicAuthUser`, the HTTP Basic credentials `base64(user:secret)` are
 * registered too.
 */
export function registerSecret(secret: string, opts: { basicAuthUser?: string } = {}): void {
  // Short strings would match by accident and prove nothing.
  if (secret.length < 8) {
    throw new Error(`registerSecret: a ${secret.length}-character secret is too short to grep for`);
  }
  const forms = [secret];
  if (opts.basicAuthUser !== undefined) {
    forms.push(Buffer.from(`${opts.basicAuthUser}:${secret}`).toString('base64'));
  }
  for (const form of forms) {
    if (secrets.has(form)) continue;
    secrets.add(form);
    record(SECRETS_FILE, form);
  }
}

/** Every secret registered so far, in any worker (and Basic credentials derived from them). */
export function knownSecrets(): string[] {
  return recorded('secrets', secrets);
}
