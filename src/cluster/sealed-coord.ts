import { errorCode, errorMessage } from '../domain/errors.js';
import type { Keyring } from '../store/sealed-value.js';
import type { Logger } from '../util/log.js';

/** Refusals remembered (so each bad value is logged once, not at every resync). */
const MAX_REMEMBERED = 1000;

/**
 * Coordination values (`coord/challenges/<token>`, `coord/live/<name>`,
 * `coord/nodes/<node>`) in the same envelope as the store's values
 * (sealed-value.ts): authenticated, not encrypted (nothing in them is
 * secret, and `etcdctl get` stays readable), with the FULL etcd key as
 * associated data. So someone who can write to etcd but has no cluster key
 * can neither plant a value (plain JSON is refused) nor move a genuine one
 * to another key (a token's value to another token, one certificate's
 * pointer to another name): the key is part of what is authenticated.
 * Not covered, as for the store: putting back an older sealed value of the
 * SAME key (see sealed-value.ts).
 *
 * A value that does not open is refused with STORE_DECRYPT_FAILED, logged
 * once per key and revision at warn, and never used: the caller skips it as
 * if the key were absent.
 */
export class CoordSealer {
  private readonly refused = new Set<string>();

  /**
   * @param prefix the coordination namespace's full etcd prefix
   *   (`/acme-sidecar/<cluster>/coord/`); keys passed below are relative to it.
   */
  constructor(
    private readonly keyring: Keyring,
    private readonly prefix: string,
  ) {}

  /** The sealed form of `value` for the coordination key `key`. */
  seal(key: string, value: string): Buffer {
    return this.keyring.seal(this.prefix + key, Buffer.from(value, 'utf8'), false);
  }

  /** Opens a value read from `key`; throws STORE_DECRYPT_FAILED (naming `coord/<key>`) otherwise. */
  open(key: string, raw: Buffer | string): string {
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    return this.keyring.open(this.prefix + key, bytes, `coord/${key}`).toString('utf8');
  }

  /**
   * `open`, or undefined after logging the refusal (once per key and
   * revision, so a planted value does not flood the log at every resync).
   */
  openOrRefuse(key: string, raw: Buffer, revision: number, log: Logger): string | undefined {
    try {
      return this.open(key, raw);
    } catch (err) {
      const id = `${key}@${revision}`;
      if (!this.refused.has(id)) {
        if (this.refused.size >= MAX_REMEMBERED) this.refused.clear();
        this.refused.add(id);
        log.warn('refusing a cluster coordination value that is not sealed for its key', {
          key: `coord/${key}`.slice(0, 200),
          revision,
          code: errorCode(err),
          error: errorMessage(err),
        });
      }
      return undefined;
    }
  }
}
