import type { Campaign, ElectionObserver, Namespace, Watcher } from 'etcd3';
import { errorMessage } from '../domain/errors.js';
import { grpcDeadline, type Clock } from '../lifecycle/clock.js';
import type { Logger } from '../util/log.js';
import {
  confirmedLeaseEnd,
  leadership,
  LeadershipReason,
  nextConfirmInMs,
  type LeadershipVerdict,
} from './decisions.js';

/** What the election reports to the rest of the sidecar. */
export interface LeaderView {
  /** This node's role now. */
  readonly role: 'leader' | 'follower';
  /** The elected node's name, as far as this node knows; undefined when none. */
  readonly leader?: string;
  readonly reason: LeadershipReason;
}

export interface LeaderElectionOptions {
  /** Where the election keys live (the cluster's coordination namespace). */
  readonly namespace: Namespace;
  /** For lease queries (`Etcd3.leaseClient`): confirming the lease is alive. */
  readonly leaseClient: Pick<Namespace['leaseClient'], 'leaseTimeToLive'>;
  readonly nodeName: string;
  /** CLUSTER_LEASE_TTL: a dead leader is replaced within about this long. */
  readonly ttlSeconds: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Called whenever `mayAct` or the known leader changes. */
  readonly onChange?: (view: LeaderView) => void;
}

const ELECTION = 'leader';
/** A failed or unproven confirmation is retried this soon (etcd3 may pick a healthy member). */
const RETRY_CONFIRM_MS = 150;

/**
 * Leader election on etcd (etcd3's `election()`, the Go client's
 * concurrency.Election): every node campaigns with its name under a lease of
 * CLUSTER_LEASE_TTL seconds; the oldest live campaign leads.
 *
 * etcd3's campaign only reports a lost lease after twice the TTL without
 * keep-alives, by which time etcd has long given leadership to someone else.
 * So leadership here is earned afresh every quarter TTL (sooner when the
 * confirmed term is short, see nextConfirmInMs): the leader asks etcd how
 * long its lease has left, and may act only until then (minus a margin).
 * Cut off from etcd, it stops before the lease can expire, and the
 * AbortSignal of its term fires at once so in-flight work stops between
 * steps.
 */
export class LeaderElection {
  private campaign?: Campaign;
  private observer?: ElectionObserver;
  private elected = false;
  private leaseAliveUntil?: Date;
  private leaderName?: string;
  private term?: AbortController;
  /** The next confirmation; rescheduled by every confirmation, never stacked. */
  private heartbeat?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private lastView?: LeaderView;
  /** Watches our own election key while elected: its deletion ends the term at once. */
  private keyWatch?: Watcher;
  private readonly marginMs: number;
  private readonly beatMs: number;

  constructor(private readonly opts: LeaderElectionOptions) {
    // The remaining TTL etcd reports is whole seconds, rounded down, so the
    // estimate is already conservative; the margin covers clock rates.
    this.marginMs = Math.min(1000, (opts.ttlSeconds * 1000) / 10);
    this.beatMs = Math.max(250, (opts.ttlSeconds * 1000) / 4);
  }

  start(): void {
    this.campaignOnce();
    void this.observe();
    this.scheduleConfirm(this.beatMs);
  }

  private scheduleConfirm(ms: number): void {
    clearTimeout(this.heartbeat);
    if (!this.stopped) this.heartbeat = setTimeout(() => void this.confirm(), ms);
  }

  /** Resigns (a successor is elected at once) and stops every timer. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.heartbeat);
    clearTimeout(this.watchdog);
    clearTimeout(this.retry);
    this.elected = false;
    this.evaluate();
    await this.keyWatch?.cancel().catch(() => undefined);
    await this.campaign?.resign().catch(() => undefined);
    await this.observer?.cancel().catch(() => undefined);
  }

  verdict(): LeadershipVerdict {
    return leadership(
      {
        elected: this.elected,
        ...(this.leaseAliveUntil && { leaseAliveUntil: this.leaseAliveUntil }),
        marginMs: this.marginMs,
      },
      this.opts.clock.now(),
    );
  }

  /** Aborted the moment this node may no longer act; undefined when it may not act now. */
  signal(): AbortSignal | undefined {
    return this.verdict().mayAct ? this.term?.signal : undefined;
  }

  /**
   * This node's election key, relative to the namespace, while it may act.
   * Once elected, a campaign stays the leader exactly as long as its key
   * exists (every other key is newer), so an etcd transaction comparing on
   * this key's existence only commits while this node leads.
   */
  async fenceKey(): Promise<string | undefined> {
    const campaign = this.campaign;
    if (!campaign || !this.verdict().mayAct) return undefined;
    const key = await campaign.getCampaignKey();
    const prefix = this.opts.namespace.prefix.toString();
    return key.startsWith(prefix) ? key.slice(prefix.length) : undefined;
  }

  view(): LeaderView {
    const v = this.verdict();
    const leader = v.mayAct ? this.opts.nodeName : this.leaderName;
    return {
      role: v.mayAct ? 'leader' : 'follower',
      ...(leader !== undefined && { leader }),
      reason: v.reason,
    };
  }

  private campaignOnce(): void {
    if (this.stopped) return;
    const { log } = this.opts;
    const campaign = this.opts.namespace
      .election(ELECTION, this.opts.ttlSeconds)
      .campaign(this.opts.nodeName);
    this.campaign = campaign;
    campaign.on('elected', () => {
      if (campaign !== this.campaign) return;
      log.info('elected leader; confirming the lease before acting', {
        reason: LeadershipReason.LeaseUnconfirmed,
      });
      this.elected = true;
      this.leaseAliveUntil = undefined;
      void this.confirm();
      void this.watchOwnKey(campaign);
    });
    campaign.on('error', (err) => {
      if (campaign !== this.campaign) return;
      this.lose(`campaign failed: ${errorMessage(err)}`);
    });
  }

  /** The campaign is over (lease lost or revoked): stop acting, campaign again. */
  private lose(why: string): void {
    const wasElected = this.elected;
    this.elected = false;
    this.leaseAliveUntil = undefined;
    void this.keyWatch?.cancel().catch(() => undefined);
    this.keyWatch = undefined;
    const old = this.campaign;
    this.campaign = undefined;
    // Revoking deletes our election key, so a successor need not wait for it to expire.
    void old?.resign().catch(() => undefined);
    (wasElected ? this.opts.log.warn : this.opts.log.debug).call(
      this.opts.log,
      'leadership campaign ended; campaigning again',
      { error: why },
    );
    this.evaluate();
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.campaignOnce(), 1000);
  }

  /** Asks etcd how long the election lease has left; the only way to stay leader. */
  private async confirm(): Promise<void> {
    // The next one is due even if this one hangs on a dead member: it goes
    // out on time (etcd3 shuffles members) instead of after this deadline.
    this.scheduleConfirm(
      nextConfirmInMs(this.verdict(), this.opts.clock.now(), this.beatMs, RETRY_CONFIRM_MS),
    );
    const campaign = this.campaign;
    if (!this.elected || !campaign) return this.evaluate();
    const sentAt = this.opts.clock.now();
    try {
      const key = await campaign.getCampaignKey();
      const id = key.slice(key.lastIndexOf('/') + 1);
      const prefix = this.opts.namespace.prefix.toString();
      const [res, present] = await Promise.all([
        this.opts.leaseClient.leaseTimeToLive(
          { ID: id },
          // A query that cannot finish before the lease might expire proves nothing.
          { deadline: grpcDeadline((this.opts.ttlSeconds * 1000) / 2) },
        ),
        // Our key deleted by hand ends the term as surely as an expired lease:
        // the next campaign in line is elected the moment it goes.
        key.startsWith(prefix)
          ? this.opts.namespace.get(key.slice(prefix.length)).exists()
          : Promise.resolve(false),
      ]);
      if (campaign !== this.campaign) return;
      const ttl = Number(res.TTL);
      if (!(ttl > 0) || !present) {
        this.lose(ttl > 0 ? 'our election key is gone' : 'etcd reports the election lease expired');
        return;
      }
      const granted = Number(res.grantedTTL) > 0 ? Number(res.grantedTTL) : this.opts.ttlSeconds;
      const until = confirmedLeaseEnd(sentAt, ttl, granted);
      if (!until)
        throw new Error(`etcd answered a remaining TTL of ${ttl} s for a ${granted} s lease`);
      // An older, slower answer must not shorten what a newer one proved.
      if (!this.leaseAliveUntil || until > this.leaseAliveUntil) this.leaseAliveUntil = until;
      this.evaluate();
      this.scheduleConfirm(
        nextConfirmInMs(this.verdict(), this.opts.clock.now(), this.beatMs, RETRY_CONFIRM_MS),
      );
      return;
    } catch (err) {
      this.opts.log.debug('could not confirm the election lease', { error: errorMessage(err) });
    }
    // Try again soon (etcd3 may pick a healthy member next), not only at the next beat.
    this.evaluate();
    this.scheduleConfirm(RETRY_CONFIRM_MS);
  }

  private async watchOwnKey(campaign: Campaign): Promise<void> {
    try {
      const key = await campaign.getCampaignKey();
      const prefix = this.opts.namespace.prefix.toString();
      if (!key.startsWith(prefix) || campaign !== this.campaign) return;
      const watcher = await this.opts.namespace.watch().key(key.slice(prefix.length)).create();
      if (campaign !== this.campaign || this.stopped) {
        await watcher.cancel();
        return;
      }
      this.keyWatch = watcher;
      watcher.on('delete', () => {
        if (campaign === this.campaign) this.lose('our election key is gone');
      });
    } catch (err) {
      // The heartbeat checks the key too; this only makes it immediate.
      this.opts.log.debug('could not watch our election key', { error: errorMessage(err) });
    }
  }

  /** Recomputes the verdict; starts or ends a term, and arms the watchdog. */
  private evaluate(): void {
    const v = this.verdict();
    if (v.mayAct && !this.term) {
      this.term = new AbortController();
      this.opts.log.info('acting as leader', { reason: v.reason });
    } else if (!v.mayAct && this.term) {
      this.term.abort(`no longer the cluster leader (${v.reason})`);
      this.term = undefined;
      this.opts.log.warn('stopped acting as leader', { reason: v.reason });
    }
    clearTimeout(this.watchdog);
    if (v.mayAct) {
      const ms = Math.max(0, v.untilMs - this.opts.clock.now().getTime());
      this.watchdog = setTimeout(() => this.evaluate(), ms + 1);
    }
    const view = this.view();
    const last = this.lastView;
    if (!last || last.role !== view.role || last.leader !== view.leader) {
      this.lastView = view;
      this.opts.onChange?.(view);
    }
  }

  /** Follows who leads, for /status on every node. */
  private async observe(): Promise<void> {
    if (this.stopped) return;
    try {
      const observer = await this.opts.namespace.election(ELECTION).observe();
      this.observer = observer;
      this.leaderName = observer.leader();
      this.evaluate();
      observer.on('change', (leader) => {
        this.leaderName = leader;
        this.evaluate();
      });
      observer.on('error', () => {
        this.observer = undefined;
        if (!this.stopped) setTimeout(() => void this.observe(), 1000);
      });
    } catch {
      if (!this.stopped) setTimeout(() => void this.observe(), 1000);
    }
  }
}
