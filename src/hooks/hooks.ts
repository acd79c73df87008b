/**
 * What runs after a certificate changes in live/: an operator's command
 * (certbot's --deploy-hook), a webhook, and a haproxy-style combined PEM.
 *
 * Contract for callers: `HookRunner.run()` never throws and always settles
 * within a bounded time (the command's timeout, plus the webhook's
 * attempts × (timeout + backoff)). Every failure is returned as an outcome
 * with `ok: false` and logged on the certificate; it is never turned into a
 * certificate failure. The reconciler runs hooks per certificate, so a
 * broken hook must not stop, fail or delay the other certificates: call it
 * after the certificate's lock is released, and do not let its result
 * decide anything.
 *
 * Reloading nginx: the compose setup reloads nginx from the nginx side
 * (nginx/40-acme-sidecar.sh watches live/ and runs `nginx -s reload`), so no
 * hook is needed there. Where the sidecar shares a PID namespace with nginx
 * (same pod with shareProcessNamespace, same container, or a host install),
 * `HOOK_COMMAND="nginx -s reload"` works as well.
 *
 * The private key is read by exactly one hook, the combined PEM; it never
 * goes into the event, the command's environment, the webhook or a log line.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { errorMessage } from '../domain/errors.js';
import { isValidCertName } from '../domain/hostnames.js';
import type { CertBundle, CertMeta, Phase } from '../domain/types.js';
import type { LivePaths } from '../domain/status.js';
import { ensureDir, writeFileAtomic } from '../store/atomic.js';
import type { Logger } from '../util/log.js';
import { redact } from '../util/redact.js';
import { retry, type Backoff } from '../util/retry.js';
import { postWebhook } from './webhook.js';

// Moved to webhook.ts; exported here as before.
export { redactUrl } from './webhook.js';
export { webhookUrlProblem } from '../domain/endpoints.js';

/** What the command (as environment variables) and the webhook (as JSON) are told. */
export interface CertificateEvent {
  readonly type: 'certificate.deployed';
  /** Certificate name: directory under live/. */
  readonly name: string;
  readonly domains: readonly string[];
  readonly phase: Phase;
  /** Upper-case hex, as in CertMeta. */
  readonly serial: string;
  /** ISO 8601. */
  readonly notAfter: string;
  /** Where the files are; never their content. `combined` is set by the runner when it wrote one. */
  readonly paths: LivePaths & { readonly combined?: string };
}

export type HookKind = 'command' | 'webhook' | 'combined-pem';

export interface HookOutcome {
  readonly hook: HookKind;
  readonly ok: boolean;
  readonly attempts: number;
  /** Why it failed: no key material, no webhook credentials. */
  readonly error?: string;
  readonly durationMs: number;
}

export interface HookRunnerOptions {
  /** Run with `/bin/sh -c` after each deployment (certbot's --deploy-hook). */
  readonly command?: string;
  /** POST the event as JSON here after each deployment. `http:` or `https:`. */
  readonly webhookUrl?: string;
  /** Write `<dir>/<name>.pem` = fullchain + private key (haproxy's `crt` format), mode 0600. */
  readonly combinedPemDir?: string;
  /** Per attempt, for the command and each webhook request. Default 30 000. */
  readonly timeoutMs?: number;
  /**
   * Attempts for the webhook and for the command, with backoff between
   * them. A retried command runs again: it should be idempotent (`nginx -s
   * reload` is). Default 3.
   */
  readonly attempts?: number;
  /** Base webhook backoff, doubled per attempt, with jitter. Default 1000. */
  readonly backoffMs?: number;
  readonly log: Logger;
  /** For tests: a number in [0, 1) for the backoff jitter. Default Math.random. */
  readonly random?: () => number;
}

/** Captured output per stream; scrubbed, then cut to LOG_OUTPUT_BYTES for the log. */
const CAPTURE_BYTES = 64 * 1024;
const LOG_OUTPUT_BYTES = 4096;
/** After SIGTERM to the process group, SIGKILL follows this much later. */
const KILL_GRACE_MS = 2000;
/** How long output is still read after the command exited. */
const STDIO_DRAIN_MS = 500;
const MAX_BACKOFF_MS = 60_000;
/**
 * Inherited environment variables the command must not see: the sidecar's
 * own secrets (the settings marked secret in src/config/schema.ts).
 */
const SECRET_ENV = ['CATTLE_SECRET_KEY', 'EAB_HMAC_KEY', 'RFC2136_TSIG_SECRET', 'PDNS_API_KEY'];

/** Builds the event from what the reconciler has at hand after `LiveDir.write`. */
export function certificateEvent(meta: CertMeta, paths: LivePaths): CertificateEvent {
  return {
    type: 'certificate.deployed',
    name: meta.name,
    domains: [...meta.domains],
    phase: meta.phase,
    serial: meta.serial,
    notAfter: meta.notAfter,
    paths: {
      dir: paths.dir,
      cert: paths.cert,
      chain: paths.chain,
      fullchain: paths.fullchain,
      privkey: paths.privkey,
    },
  };
}

export class HookRunner {
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoff: Backoff;
  private readonly log: Logger;

  constructor(private readonly opts: HookRunnerOptions) {
    this.timeoutMs = positive(opts.timeoutMs, 30_000);
    this.attempts = Math.max(1, Math.floor(positive(opts.attempts, 3)));
    // Exponential, with "equal jitter": half fixed, half random, so retries from many sidecars spread.
    this.backoff = {
      baseMs: opts.backoffMs !== undefined && opts.backoffMs >= 0 ? opts.backoffMs : 1000,
      maxMs: MAX_BACKOFF_MS,
      jitter: [0.5, 1],
      random: opts.random ?? Math.random,
    };
    this.log = opts.log.child({ component: 'hooks' });
  }

  /** True if any hook is configured (the caller can skip building events otherwise). */
  get enabled(): boolean {
    return Boolean(this.opts.command || this.opts.webhookUrl || this.opts.combinedPemDir);
  }

  /**
   * Runs every configured hook for one deployed certificate: the combined
   * PEM first (so the command and the webhook can point at it), then the
   * command and the webhook side by side. Never throws; see the module
   * comment for the contract.
   */
  async run(event: CertificateEvent, bundle: CertBundle): Promise<HookOutcome[]> {
    const log = this.log.child({ cert: event.name, phase: event.phase });
    const outcomes: HookOutcome[] = [];
    let ev: CertificateEvent = event;
    try {
      if (this.opts.combinedPemDir !== undefined) {
        const { outcome, path } = await this.writeCombined(
          this.opts.combinedPemDir,
          event.name,
          bundle,
        );
        outcomes.push(this.report(log, outcome));
        if (path !== undefined) ev = { ...event, paths: { ...event.paths, combined: path } };
      }
      const pending: Promise<HookOutcome>[] = [];
      if (this.opts.command) {
        pending.push(this.runCommand(this.opts.command, ev, log));
      }
      if (this.opts.webhookUrl) {
        const { timeoutMs, attempts, backoff } = this;
        pending.push(
          postWebhook(this.opts.webhookUrl, payload(ev), {
            timeoutMs,
            attempts,
            backoff,
            log: this.log,
          }).then((o) => this.report(log, o)),
        );
      }
      outcomes.push(...(await Promise.all(pending)));
    } catch (err) {
      // Not expected (every hook catches its own failures); kept so the
      // "never throws" promise holds even for a bug here.
      log.error('hook runner failed', { error: scrub(errorMessage(err)) });
    }
    return outcomes;
  }

  private report(log: Logger, o: HookOutcome, extra: Record<string, unknown> = {}): HookOutcome {
    const fields = {
      hook: o.hook,
      attempts: o.attempts,
      durationMs: o.durationMs,
      ...(o.error !== undefined && { error: o.error }),
      ...extra,
    };
    if (o.ok) log.info('hook succeeded', fields);
    else log.warn('hook failed', fields);
    return o;
  }

  private async writeCombined(
    dir: string,
    name: string,
    bundle: CertBundle,
  ): Promise<{ outcome: HookOutcome; path?: string }> {
    const started = performance.now();
    const fail = (error: string) => ({
      outcome: { hook: 'combined-pem' as const, ok: false, attempts: 1, error, durationMs: ms() },
    });
    const ms = () => elapsed(started);
    // The name may come from a platform label: checked before it is a path.
    if (!isValidCertName(name)) {
      return fail(`refusing certificate name ${JSON.stringify(name)} as a file name`);
    }
    const base = resolve(dir);
    const path = join(base, `${name}.pem`);
    const rel = relative(base, path);
    if (rel.startsWith('..') || isAbsolute(rel) || rel.includes('/')) {
      return fail(`refusing certificate name ${JSON.stringify(name)} as a file name`);
    }
    try {
      await ensureDir(base, 0o700);
      const fullchain = bundle.fullchain.endsWith('\n')
        ? bundle.fullchain
        : bundle.fullchain + '\n';
      const key = bundle.privkey.endsWith('\n') ? bundle.privkey : bundle.privkey + '\n';
      await writeFileAtomic(path, fullchain + key, { mode: 0o600 });
    } catch (err) {
      return fail(`writing ${path}: ${scrub(errorMessage(err))}`);
    }
    return {
      outcome: { hook: 'combined-pem', ok: true, attempts: 1, durationMs: ms() },
      path,
    };
  }

  /** Runs the command until it succeeds, up to `attempts` times, with backoff. */
  private async runCommand(
    command: string,
    ev: CertificateEvent,
    log: Logger,
  ): Promise<HookOutcome> {
    const started = performance.now();
    let outcome: HookOutcome | undefined;
    let made = 0;
    await retry(
      async (attempt) => {
        made = attempt;
        outcome = await this.runCommandOnce(command, ev, log);
        if (!outcome.ok) throw new Error(outcome.error);
      },
      { attempts: this.attempts, backoff: this.backoff },
    ).catch(() => undefined);
    return { ...(outcome as HookOutcome), attempts: made, durationMs: elapsed(started) };
  }

  /**
   * One run, in its own process group so a timeout kills everything it
   * started (a shell pipeline, a `sleep`), not just the shell.
   */
  private runCommandOnce(command: string, ev: CertificateEvent, log: Logger): Promise<HookOutcome> {
    const started = performance.now();
    const env: NodeJS.ProcessEnv = { ...process.env, ...commandEnv(ev) };
    for (const k of SECRET_ENV) delete env[k];

    return new Promise<HookOutcome>((done) => {
      const out = new Capture();
      const err = new Capture();
      let settled = false;
      let timedOut = false;
      const timers: { run?: NodeJS.Timeout; kill?: NodeJS.Timeout; drain?: NodeJS.Timeout } = {};

      const finish = (error: string | undefined) => {
        if (settled) return;
        settled = true;
        Object.values(timers).forEach(clearTimeout);
        const outcome: HookOutcome = {
          hook: 'command',
          ok: error === undefined,
          attempts: 1,
          ...(error !== undefined && { error }),
          durationMs: elapsed(started),
        };
        done(this.report(log, outcome, { stdout: out.forLog(), stderr: err.forLog() }));
      };

      let child: ChildProcessByStdio<null, Readable, Readable>;
      try {
        child = spawn('/bin/sh', ['-c', command], {
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      } catch (e) {
        finish(`could not start /bin/sh: ${errorMessage(e)}`);
        return;
      }
      const pid = child.pid;
      const killGroup = (signal: NodeJS.Signals) => {
        if (pid === undefined) return;
        try {
          process.kill(-pid, signal);
        } catch {
          // The group is gone already.
        }
      };
      timers.run = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        timers.kill = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      }, this.timeoutMs);

      child.stdout.on('data', (b: Buffer) => out.add(b));
      child.stderr.on('data', (b: Buffer) => err.add(b));
      child.once('error', (e) => finish(`could not start /bin/sh: ${errorMessage(e)}`));
      let result: string | undefined;
      child.once('exit', (code, signal) => {
        clearTimeout(timers.run);
        if (timedOut) {
          // Whatever it started in the background goes too.
          killGroup('SIGKILL');
          result = `timed out after ${this.timeoutMs} ms; its process group was killed`;
        } else if (code !== 0) {
          result = code !== null ? `exited with code ${code}` : `killed by ${signal ?? 'a signal'}`;
        }
        // 'close' follows once the pipes are drained. A background process
        // the command left running may hold them open: do not wait for it.
        timers.drain = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish(result);
        }, STDIO_DRAIN_MS);
      });
      child.once('close', () => finish(result));
    });
  }
}

/** The command's environment: ours, plus certbot's names for the same facts. */
export function commandEnv(ev: CertificateEvent): Record<string, string> {
  return {
    ACME_SIDECAR_CERT_NAME: ev.name,
    ACME_SIDECAR_DOMAINS: ev.domains.join(','),
    ACME_SIDECAR_PHASE: ev.phase,
    ACME_SIDECAR_SERIAL: ev.serial,
    ACME_SIDECAR_NOT_AFTER: ev.notAfter,
    ACME_SIDECAR_CERT_PATH: ev.paths.cert,
    ACME_SIDECAR_CHAIN_PATH: ev.paths.chain,
    ACME_SIDECAR_FULLCHAIN_PATH: ev.paths.fullchain,
    ACME_SIDECAR_KEY_PATH: ev.paths.privkey,
    ...(ev.paths.combined !== undefined && { ACME_SIDECAR_COMBINED_PATH: ev.paths.combined }),
    // certbot --deploy-hook compatibility.
    RENEWED_LINEAGE: ev.paths.dir,
    RENEWED_DOMAINS: ev.domains.join(' '),
  };
}

/**
 * The webhook body, field by field: whatever else a caller's object carries
 * (a spread bundle, say) is not sent.
 */
function payload(ev: CertificateEvent): CertificateEvent {
  return {
    type: ev.type,
    name: ev.name,
    domains: [...ev.domains],
    phase: ev.phase,
    serial: ev.serial,
    notAfter: ev.notAfter,
    paths: {
      dir: ev.paths.dir,
      cert: ev.paths.cert,
      chain: ev.paths.chain,
      fullchain: ev.paths.fullchain,
      privkey: ev.paths.privkey,
      ...(ev.paths.combined !== undefined && { combined: ev.paths.combined }),
    },
  };
}

/**
 * A hook command may print a key (`cat privkey.pem`). The logger redacts
 * whole PEM blocks, but a block cut by truncation would slip past it, so
 * output is scrubbed here, before it is cut, including an unterminated block.
 */
function scrub(s: string): string {
  return redact(s);
}

/** Keeps the first CAPTURE_BYTES of a stream. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  add(b: Buffer): void {
    const room = CAPTURE_BYTES - this.size;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = b.length > room ? b.subarray(0, room) : b;
    if (part !== b) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  forLog(): string {
    const text = scrub(Buffer.concat(this.chunks).toString('utf8'));
    if (text.length <= LOG_OUTPUT_BYTES && !this.truncated) return text;
    return text.slice(0, LOG_OUTPUT_BYTES) + '…[truncated]';
  }
}

/** Whole milliseconds since a `performance.now()` reading. */
function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

function positive(v: number | undefined, dflt: number): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : dflt;
}
