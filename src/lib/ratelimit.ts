/**
 * Token buckets keyed by string: `rate` tokens per second refill a bucket of
 * `burst` tokens. In memory, per server; bounded in size (idle buckets, which
 * would be full anyway, are dropped first).
 */
export interface RateLimiter {
  /** Takes one token for `key`; returns 0 when allowed, or the seconds to wait. */
  take(key: string): number;
}

export function createRateLimiter(opts: {
  rate: number;
  burst: number;
  now: () => number;
  maxKeys?: number;
}): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const maxKeys = opts.maxKeys ?? 100_000;
  return {
    take(key) {
      const now = opts.now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) {
          for (const [k, v] of buckets) {
            if (v.tokens + ((now - v.at) / 1000) * opts.rate >= opts.burst) buckets.delete(k);
          }
          if (buckets.size >= maxKeys) buckets.clear();
        }
        b = { tokens: opts.burst, at: now };
        buckets.set(key, b);
      } else {
        b.tokens = Math.min(opts.burst, b.tokens + ((now - b.at) / 1000) * opts.rate);
        b.at = now;
      }
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / opts.rate));
    },
  };
}
