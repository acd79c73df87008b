/**
 * The parts of acme-client the sidecar uses, each imported from its own
 * file: the package's index also require()s node-forge for its legacy
 * `forge` API, 600 kB of code that every start-up would load and run for
 * nothing (docs/performance.md, "Start-up"). acme-client has no "exports"
 * map, so these files are reachable; src/acme/acme-client-files.d.ts gives
 * them the index's types.
 *
 *   import * as acme from './acme-client.js';  // acme.Client, acme.axios, acme.crypto
 */
import Client from 'acme-client/src/client.js';
import axios from 'acme-client/src/axios.js';
import crypto from 'acme-client/src/crypto/index.js';

export type { Order } from 'acme-client';
export { axios, Client, crypto };
