/**
 * Any DNS service through a program: `EXEC_PATH present <fqdn> <value>` and
 * `EXEC_PATH cleanup <fqdn> <value>`, lego's exec convention (the fqdn ends
 * with a dot), so scripts written for lego work unchanged.
 */
import { spawn } from 'node:child_process';
import { SidecarError } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { redact } from '../../util/redact.js';
import type { DnsProvider } from './provider.js';

export interface ExecProviderOptions {
  readonly path: string;
  readonly timeoutMs: number;
  /** The environment the program gets: the sidecar's, minus every secret setting. */
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
}

/** Output kept for the error message. */
const OUTPUT_BYTES = 2048;

export class ExecProvider implements DnsProvider {
  readonly name = 'exec';

  constructor(private readonly opts: ExecProviderOptions) {}

  addTxt(fqdn: string, value: string): Promise<void> {
    return this.run('present', fqdn, value);
  }

  removeTxt(fqdn: string, value: string): Promise<void> {
    return this.run('cleanup', fqdn, value);
  }

  private run(action: 'present' | 'cleanup', fqdn: string, value: string): Promise<void> {
    const { path, timeoutMs, env, log } = this.opts;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      // No shell: the arguments are passed as they are, never interpreted.
      const child = spawn(path, [action, `${fqdn}.`, value], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let output = '';
      const keep = (chunk: Buffer): void => {
        if (output.length < OUTPUT_BYTES) output += chunk.toString('utf8');
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          // The whole process group: a script's own children go too.
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, timeoutMs);
      const fail = (why: string): void => {
        const out = redact(output.trim(), OUTPUT_BYTES);
        reject(
          new SidecarError(
            'DNS_PROVIDER_FAILED',
            `EXEC_PATH ${action} ${fqdn}. ${why}${out ? `: ${out}` : ''}`,
            { retryable: true },
          ),
        );
      };
      child.on('error', (err) => {
        clearTimeout(timer);
        fail(`could not start: ${err.message}`);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const ms = Math.round(performance.now() - started);
        if (timedOut)
          return fail(`ran longer than EXEC_TIMEOUT (${timeoutMs / 1000} s) and was killed`);
        if (code !== 0) return fail(`exited with ${code ?? signal ?? 'unknown'}`);
        log.debug('EXEC_PATH done', { action, fqdn, durationMs: ms });
        resolve();
      });
    });
  }
}
