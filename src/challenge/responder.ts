/**
 * Answers ACME challenges. For HTTP-01 the key authorization must be served
 * at http://<domain>/.well-known/acme-challenge/<token> (RFC 8555 §8.3).
 */
export interface ChallengeResponder {
  /** Makes the token answerable. The token is untrusted input from the CA. */
  present(domain: string, token: string, keyAuthorization: string): Promise<void>;
  /** Confirms the answer is reachable the way the CA will fetch it. */
  verify(domain: string, token: string, keyAuthorization: string): Promise<void>;
  /** Removes what present() wrote; must not throw for a missing token. */
  cleanup(domain: string, token: string): Promise<void>;
}
