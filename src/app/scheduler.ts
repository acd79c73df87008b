/**
 * When passes run: every LOOP_TIME, on CHECK_SCHEDULE, on a watched change,
 * when elected, and at the earliest retry or renewal due in between. Passes
 * never overlap: a trigger during a pass runs one more pass after it.
 */
import cron from 'node-cron';
import type { Clock } from '../lifecycle/clock.js';
import { wakeupMs } from '../lifecycle/policy.js';
import type { Logger } from '../util/log.js';

export interface SchedulerOptions {
  /** Runs one pass; its signal ends it (shutdown, or the end of a leader's term). */
  readonly pass: (signal: AbortSignal) => Promise<unknown>;
  /**
   * May a pass start now, and the signal that ends this node's term (cluster
   * mode); a node alone always may.
   */
  readonly term: () => { mayAct: boolean; signal?: AbortSignal };
  /** ISO times at which a certificate wants a retry or a renewal. */
  readonly dueTimes: () => readonly (string | undefined)[];
  readonly loopTimeSeconds: number;
  readonly checkSchedule: string;
  /** Shutdown. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly log: Logger;
}

export class PassScheduler {
  private running: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private loopTimer: NodeJS.Timeout | undefined;
  private cronTask: ReturnType<typeof cron.schedule> | undefined;

  constructor(private readonly opts: SchedulerOptions) {}

  /** Starts the LOOP_TIME interval and the CHECK_SCHEDULE cron. */
  start(): void {
    const { loopTimeSeconds, checkSchedule } = this.opts;
    if (loopTimeSeconds > 0) {
      this.loopTimer = setInterval(() => this.trigger('loop'), loopTimeSeconds * 1000);
    }
    this.cronTask = cron.schedule(checkSchedule, () => this.trigger('schedule'));
  }

  /** A pass now, or right after the one running. */
  trigger(why: string): void {
    const { opts } = this;
    if (opts.signal.aborted) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // Cluster mode: only the leader discovers, orders, renews and pushes,
    // and its pass stops the moment its lease is in doubt.
    const term = opts.term();
    if (!term.mayAct) {
      opts.log.debug('pass skipped: not the cluster leader', { why });
      return;
    }
    const signal = term.signal ? AbortSignal.any([opts.signal, term.signal]) : opts.signal;
    opts.log.debug('pass starting', { why });
    this.running = (async () => {
      do {
        this.again = false;
        await opts.pass(signal);
      } while (this.again && !signal.aborted);
    })().finally(() => {
      this.running = undefined;
      this.scheduleWakeup();
    });
  }

  /**
   * A failed certificate is retried after 1 min, 10 min, ... and a
   * short-lived one may be due for renewal before the next LOOP_TIME pass:
   * wake for the earliest of those instead of waiting for that pass.
   */
  private scheduleWakeup(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const { opts } = this;
    if (opts.signal.aborted) return;
    const delay = wakeupMs(
      opts.dueTimes(),
      opts.clock.now(),
      opts.loopTimeSeconds > 0 ? opts.loopTimeSeconds * 1000 : Infinity,
    );
    if (delay !== undefined) this.retryTimer = setTimeout(() => this.trigger('retry'), delay);
  }

  /** Stops the timers; the pass in flight, if any, is `inFlight()`. */
  async stop(): Promise<void> {
    if (this.loopTimer) clearInterval(this.loopTimer);
    clearTimeout(this.retryTimer);
    await this.cronTask?.stop();
  }

  inFlight(): Promise<void> | undefined {
    return this.running;
  }
}
