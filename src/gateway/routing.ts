import { priceOf as priceIn } from '../api/pricing.ts';
import type { GatewayConfig } from '../config/gateway.ts';
import { parseDuration } from '../lib/duration.ts';
import type { WireApi } from './providers.ts';
import type { Price } from './types.ts';

/**
 * Where a call goes: the configured routes (never the client) decide the provider, its upstreams
 * (the first, then fallbacks) and the keys each holds, by the model the body names; and what a model
 * costs.
 */

export interface Upstream {
  base_url: string;
  keys: string[];
  /** Parsed once: where requests go, and the path prefix before the endpoint's path. */
  origin: string;
  host: string;
  prefix: string;
}

export interface RouteTarget {
  provider: string;
  api: WireApi;
  upstreams: Upstream[];
  timeoutMs: number;
  /** The models' context window: the input bound of a request whose input the provider assembles. */
  maxInputTokens: number;
}

export interface Routes {
  /** Every configured route, in order, with the model names and globs it serves. */
  readonly targets: readonly (RouteTarget & { models: string[] })[];
  /** The first route serving `model` in `api`'s wire format. */
  targetFor(api: WireApi, model: string): RouteTarget | undefined;
  /** The one price function of the gateway and the budget engine: the exact name, then the most specific glob. */
  priceOf(model: string): Price | undefined;
}

function upstreamOf(u: { base_url: string; keys: string[] }): Upstream {
  const url = new URL(u.base_url);
  return {
    base_url: u.base_url,
    keys: u.keys,
    origin: url.origin,
    host: url.host,
    // a base URL ending in /v1 (OpenAI's own) already carries the version the endpoint paths start with
    prefix: url.pathname.replace(/\/+$/, '').replace(/\/v1$/, ''),
  };
}

function globMatch(glob: string, value: string): boolean {
  if (!glob.includes('*')) return glob === value;
  const re = new RegExp(
    `^${glob
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

export function createRoutes(config: Pick<GatewayConfig, 'routes' | 'prices' | 'max_input_tokens'>): Routes {
  const targets: (RouteTarget & { models: string[] })[] = config.routes.map((r) => ({
    provider: r.provider,
    api: r.api ?? (r.provider === 'anthropic' ? 'anthropic' : 'openai'),
    models: r.models,
    upstreams: [{ base_url: r.base_url, keys: r.keys }, ...(r.fallbacks ?? [])].map(upstreamOf),
    timeoutMs: (r.timeout === undefined ? 120 : parseDuration(r.timeout)) * 1000,
    maxInputTokens: r.max_input_tokens ?? config.max_input_tokens ?? 1_000_000,
  }));
  const prices = config.prices ?? {};
  return {
    targets,
    targetFor: (api, model) =>
      targets.find((t) => t.api === api && t.models.some((g) => globMatch(g, model))),
    priceOf: (model) => priceIn(model, prices),
  };
}
