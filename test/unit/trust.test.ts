// contextTrusting (src/util/trust.ts): the secure context built for
// ACME_CA_BUNDLE (and the Cattle API's) trusts the extra CA, and adding it
// leaves Node's shared root store, which every other context uses, as it was.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { rootAndLeaf } from '../support/test-chain.js';
import { contextTrusting } from '../../src/util/trust.js';

/** Whether a client with `secureContext` trusts the server; the error code if not. */
function handshake(port: number, secureContext: tls.SecureContext): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, secureContext }, () => {
      socket.end();
      resolve('trusted');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('contextTrusting', () => {
  let server: tls.Server;
  let port: number;
  let rootPem: string;
  before(async () => {
    const made = await rootAndLeaf({
      rootName: 'CN=trust test root',
      subject: 'CN=127.0.0.1',
      san: { type: 'ip', value: '127.0.0.1' },
    });
    rootPem = made.rootPem;
    server = tls.createServer({ cert: made.leafPem, key: made.leafKeyPem }, (s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('trusts the extra CA, while the default roots alone do not', async () => {
    assert.equal(await handshake(port, contextTrusting([])), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(await handshake(port, contextTrusting([rootPem])), 'trusted');
  });

  it("leaves Node's shared root store as it was", async () => {
    assert.equal(await handshake(port, contextTrusting([rootPem])), 'trusted');
    assert.equal(
      await handshake(port, tls.createSecureContext()),
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
    assert.equal(await handshake(port, contextTrusting([])), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
