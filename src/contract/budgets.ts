/**
 * The shared contract of budgets: what the gateway reserves and settles, and
 * what the budgets engine (src/engines/gateway/budgets.ts) keeps, and what a
 * call used and costs (src/api/pricing.ts prices it). Types only.
 */

/** Token counts a provider reported (or the gateway estimated). */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  /**
   * Prompt-cache tokens reported apart from `input_tokens` (Anthropic): read from the cache, and
   * written to it for 5 minutes or for an hour. They count as input, at their own prices.
   */
  cache_read_tokens?: number;
  cache_write_5m_tokens?: number;
  cache_write_1h_tokens?: number;
}

/** Price of a model, USD per million tokens. */
export interface Price {
  input: number;
  output: number;
  /** Prompt-cache prices (default: 0.1x, 1.25x and 2x the input price, as Anthropic charges). */
  cache_read?: number;
  cache_write_5m?: number;
  cache_write_1h?: number;
}

/** Limits of one subject (a virtual key, an app, a workload). Absent: unlimited. */
export interface BudgetLimits {
  requests_per_minute?: number;
  tokens_per_minute?: number;
  /** Spend in USD per period (`total` never resets). */
  spend?: { usd: number; period: 'day' | 'month' | 'total' };
}

/** A reservation taken before the upstream call and settled from the reported usage. */
export interface Reservation {
  /** Replaces the estimate with what was used (cost in USD). Idempotent. */
  settle(usage: Usage, costUsd: number): Promise<void>;
  /** Gives the whole reservation back (the upstream call did not happen). Idempotent. */
  release(): Promise<void>;
  /**
   * Shared storage: the reservation as text, so any server sharing the storage can settle it
   * (`Budgets.resume`). Absent when the budgets live in one process's memory.
   */
  readonly ticket?: string;
}

/**
 * Atomic budgets shared through the vault's storage: `reserve` either takes
 * the whole estimate from every subject or nothing, and throws a
 * StrongroomError('rate_limited', …, { details: { retry_after: seconds, limit } })
 * when any subject would go over a limit.
 */
export interface Budgets {
  reserve(
    subjects: readonly { key: string; limits: BudgetLimits }[],
    estimate: { tokens: number; costUsd: number },
  ): Promise<Reservation>;
  /** Shared storage: the reservation a `ticket` describes (made by any server sharing the storage). */
  resume?(ticket: string): Reservation;
  /** At shutdown, while the barrier is unsealed: writes counts kept in memory and stops the timer. */
  close?(): Promise<void>;
}
