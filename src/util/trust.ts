import tls from 'node:tls';

/** The native half of a SecureContext: Node's own, not in its typings. */
interface NativeContext {
  addCACert(pem: string): void;
}

/**
 * A secure context that trusts Node's root certificates (plus
 * NODE_EXTRA_CA_CERTS) and `extraPems` as well, built once for an agent.
 *
 * Hand-written rather than `createSecureContext({ ca: [...tls.rootCertificates, pem] })`:
 * that hands the 140-odd system roots to OpenSSL one PEM at a time, 40 ms
 * of CPU before the first ACME request on this machine (Node 20, no
 * NODE_EXTRA_CA_CERTS); the default roots plus our PEMs take 20 ms, all of
 * it OpenSSL building Node's root store, which any HTTPS client pays. Node
 * copies its shared root store into a store of this context's own on the
 * first addCACert (node_crypto SecureContext::AddCACert), so other
 * contexts are unaffected. The documented (slow) way is the fallback should
 * a Node version not have the native method.
 */
export function contextTrusting(extraPems: readonly string[]): tls.SecureContext {
  const ctx = tls.createSecureContext();
  const native = (ctx as unknown as { context?: Partial<NativeContext> }).context;
  if (typeof native?.addCACert !== 'function') {
    return tls.createSecureContext({ ca: [...tls.rootCertificates, ...extraPems] });
  }
  for (const pem of extraPems) native.addCACert(pem);
  return ctx;
}
