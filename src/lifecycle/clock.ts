/** Injected time source: decisions never call Date.now() themselves. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that stands still until moved; for tests and simulations. */
export class FixedClock implements Clock {
  private t: number;
  constructor(start: Date | string) {
    this.t = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(at: Date | string): void {
    this.t = new Date(at).getTime();
  }
}

/**
 * An absolute deadline `ms` from now for a gRPC call (etcd3's `deadline`
 * option). By the API's contract it is real wall-clock time, read by the
 * transport, so it comes from the system clock even when decisions run on
 * an injected one.
 */
export function grpcDeadline(ms: number): Date {
  return new Date(Date.now() + ms);
}
