// The Platform contract for StaticPlatform: every declaration is a DOMAINS entry.
import { readFile } from 'node:fs/promises';
import { StaticPlatform } from '../../src/platform/static-platform.js';
import { platformContract } from './platform-contract.js';

platformContract('static (DOMAINS)', async () => {
  let domains = '';
  let entries: string[] = [];
  return {
    platform: new StaticPlatform(async () => [domains, ...entries].join(',')),
    setDomains: (v) => {
      domains = v;
    },
    declare: async (entry) => {
      entries.push(entry);
    },
    reset: async () => {
      domains = '';
      entries = [];
    },
    // DOMAINS_FILE that cannot be read: main.ts reads it this way.
    unreachable: () =>
      new StaticPlatform(async () => readFile('/nonexistent/acme-sidecar/domains.txt', 'utf8')),
  };
});
