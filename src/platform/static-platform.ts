import type { StoredCert } from '../domain/types.js';
import { parseDomainList } from '../domain/hostnames.js';
import type { Discovery, Platform } from './platform.js';

/**
 * Hostnames from the DOMAINS variable only; certificates stay on disk for
 * the nginx beside us, so there is nothing to push.
 */
export class StaticPlatform implements Platform {
  readonly name = 'static';
  readonly holdsCertificates = false;

  /** `domains` is read at every discovery (DOMAINS plus DOMAINS_FILE). */
  constructor(private readonly domains: () => Promise<string>) {}

  async discover(): Promise<Discovery> {
    return parseDomainList(await this.domains(), 'env:DOMAINS');
  }

  async read(): Promise<undefined> {
    return undefined;
  }

  async push(_cert: StoredCert): Promise<void> {}
}
