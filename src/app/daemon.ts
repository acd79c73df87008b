/**
 * `acme-sidecar run`: start in a safe order, run passes until SIGTERM or
 * SIGINT (or `stop()`), and shut down in the reverse order within bounds.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlHandlers } from '../control/protocol.js';
import { CONTROL_SOCKET_NAME } from '../control/protocol.js';
import { startControlServer } from '../control/server.js';
import { errorMessage } from '../domain/errors.js';
import { startHttpServer } from '../http/server.js';
import type { StatusSnapshot } from '../domain/status.js';
import type { Clock } from '../lifecycle/clock.js';
import type { PlatformWatch } from '../platform/platform.js';
import type { LiveFeed } from '../deploy/live-dir.js';
import { watchLive } from '../deploy/live-watch.js';
import { TEMP_MARKER } from '../store/atomic.js';
import type { Logger } from '../util/log.js';
import type { Coordination } from './coordination.js';
import type { Readiness } from './health.js';
import { collectWhenIdle } from './idle-gc.js';
import { PassScheduler } from './scheduler.js';

/** In-flight ACME calls cannot be cancelled mid-request: how long shutdown waits for them. */
const SHUTDOWN_GRACE_MS = 20_000;
/** Watched changes come in bursts (our own writes too): one pass per burst. */
const WATCH_DEBOUNCE_MS = 500;
/** Idle time after a pass before its garbage is collected (with --expose-gc; idle-gc.ts). */
const IDLE_GC_DELAY_MS = 3000;

export interface DaemonSettings {
  readonly stateDir: string;
  /** Holds live/ and archive/ (LIVE_DIR); watched for deletions. */
  readonly liveDir: string;
  readonly loopTimeSeconds: number;
  readonly checkSchedule: string;
  readonly statusAddress: 'off' | { readonly host: string; readonly port: number };
  readonly domainsFile?: string;
  /** For the startup line. */
  readonly target: string;
}

export interface DaemonDeps {
  readonly settings: DaemonSettings;
  readonly coordination: Coordination;
  /** One pass (never throws), and the once-per-process sweep of what a killed run left. */
  readonly pass: (signal: AbortSignal) => Promise<unknown>;
  readonly recover: () => Promise<void>;
  /** ISO times at which a certificate wants a retry or a renewal. */
  readonly dueTimes: () => readonly (string | undefined)[];
  /** The control socket's handlers; mutating ones only reach a local 0600 socket. */
  readonly controlHandlers: ControlHandlers;
  readonly snapshot: () => StatusSnapshot;
  readonly readiness: () => Readiness;
  readonly metrics: () => Promise<{ contentType: string; body: string }>;
  /**
   * Given the watch on live/ once it is set (undefined at shutdown), so
   * that live/ bundles are kept across passes (deploy/live-dir.ts `follow`).
   */
  readonly liveFeed?: (feed: LiveFeed | undefined) => void;
  /**
   * Starts watching the state directory so that records are kept across
   * passes (store/pass-cache.ts); returns how to stop, or undefined when
   * the store cannot be watched (etcd, a shared filesystem).
   */
  readonly watchStore?: () => { close(): void } | undefined;
  /** New containers (Docker events) start a pass at once. */
  readonly watchPlatform?: (onChange: (why: string) => void) => PlatformWatch;
  /** Last of shutdown: remove tokens left in the webroot, close clients. */
  readonly cleanup: () => Promise<void>;
  /** Aborted by SIGTERM/SIGINT, `stop()`, or a fatal error found while running. */
  readonly controller: AbortController;
  readonly clock: Clock;
  readonly log: Logger;
}

export async function runDaemon(deps: DaemonDeps): Promise<void> {
  const { settings, coordination, controller, log } = deps;
  // Before anything is served or written: a wrong cluster key stops startup.
  const prepared = await coordination.prepare();
  // First, so that a file in its way stops startup before anything runs.
  // Mutating operations (renew) only on a local 0600 UNIX socket, never on the network.
  const control = await startControlServer({
    path: join(settings.stateDir, CONTROL_SOCKET_NAME),
    handlers: deps.controlHandlers,
    log: log.child({ component: 'control' }),
  });
  const collector = collectWhenIdle(deps.pass, {
    gc: globalThis.gc,
    delayMs: IDLE_GC_DELAY_MS,
    log,
  });
  const scheduler = new PassScheduler({
    pass: collector.pass,
    term: () => coordination.term(),
    dueTimes: deps.dueTimes,
    loopTimeSeconds: settings.loopTimeSeconds,
    checkSchedule: settings.checkSchedule,
    signal: controller.signal,
    clock: deps.clock,
    log,
  });
  const stateWatch = deps.watchStore?.();
  scheduler.start();
  // Clear what a killed run left, then (in cluster mode) serve: sync live/,
  // mirror tokens, and campaign. A new leader starts with a full pass.
  await deps.recover();
  coordination.join(prepared, {
    onElected: () => scheduler.trigger('elected'),
    signal: controller.signal,
    onFatal: () => controller.abort(),
  });
  const server =
    settings.statusAddress === 'off'
      ? undefined
      : await startHttpServer({
          host: settings.statusAddress.host,
          port: settings.statusAddress.port,
          status: deps.snapshot,
          ready: deps.readiness,
          metrics: deps.metrics,
          log: log.child({ component: 'http' }),
          now: () => deps.clock.now(),
        });
  if (server && settings.statusAddress !== 'off') {
    log.info('status server listening', {
      address: `${settings.statusAddress.host}:${server.port}`,
    });
  }
  log.info('acme-sidecar started', {
    target: settings.target,
    loopTime: settings.loopTimeSeconds,
    checkSchedule: settings.checkSchedule,
  });
  const watches = await watchFiles(settings, (why) => scheduler.trigger(why), log, deps.liveFeed);
  const platformWatch = deps.watchPlatform?.((why) => scheduler.trigger(why));
  scheduler.trigger('startup');

  await untilShutdown(controller.signal, log);
  controller.abort();
  await watches.close();
  stateWatch?.close();
  await platformWatch?.close();
  // No new renewals; one in flight sees the abort and answers within the close grace.
  await control.close();
  await scheduler.stop();
  collector.stop();
  // In-flight ACME calls cannot be cancelled mid-request; give them a
  // bounded time to finish, then abandon them.
  const grace = new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS).unref());
  await Promise.race([scheduler.inFlight(), grace]);
  await coordination.stop();
  await deps.cleanup();
  await server?.close();
  log.info('stopped');
}

/** Resolves at SIGTERM, SIGINT or abort. */
function untilShutdown(signal: AbortSignal, log: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const onSignal = (sig: string) => {
      log.info('shutting down', { signal: sig });
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
    // stop() during startup aborted before this listener existed.
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/**
 * Deleting a certificate's files from live/ regenerates it promptly (the
 * LXD habit), and DOMAINS_FILE edits apply without a restart. Our own
 * writes also fire events: debounced, they cost one pass that finds
 * nothing to do. live/ is watched with one OS watch per certificate
 * (deploy/live-watch.ts); DOMAINS_FILE, which editors may replace by a
 * rename, through chokidar, which follows the new file.
 */
async function watchFiles(
  settings: DaemonSettings,
  onChange: (why: string) => void,
  log: Logger,
  liveFeed?: (feed: LiveFeed | undefined) => void,
): Promise<{ close(): Promise<void> }> {
  await mkdir(join(settings.liveDir, 'live'), { recursive: true, mode: 0o700 });
  await mkdir(join(settings.liveDir, 'archive'), { recursive: true, mode: 0o700 });
  let debounce: NodeJS.Timeout | undefined;
  const changed = (why: string) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => onChange(`watch: ${why}`), WATCH_DEBOUNCE_MS);
  };
  const failed = (err: unknown) => log.warn('file watch failed', { error: errorMessage(err) });
  const live = await watchLive(settings.liveDir, changed, failed);
  liveFeed?.(live);
  // chokidar is loaded only when there is a DOMAINS_FILE to watch.
  const domains = settings.domainsFile
    ? (await import('chokidar')).default.watch(settings.domainsFile, { ignoreInitial: true })
    : undefined;
  domains?.on('all', (event, path) => {
    if (!path.includes(TEMP_MARKER)) changed(`${event} ${path}`);
  });
  domains?.on('error', failed);
  return {
    close: async () => {
      clearTimeout(debounce);
      liveFeed?.(undefined);
      live.close();
      await domains?.close();
    },
  };
}
