import type { Counter, Histogram, MetricsRegistry } from '../lib/metrics.ts';

/**
 * The gateway's metrics. Labels come from a bounded set (labels.ts): configured model names or
 * globs and caller ids, never client text.
 */
export interface GatewayMetrics {
  requests: Counter;
  tokens: Counter;
  spend: Counter;
  denials: Counter;
  latency: Histogram;
  anomalies: Counter;
}

export function createGatewayMetrics(m: MetricsRegistry): GatewayMetrics {
  return {
    requests: m.counter(
      'strongroom_gateway_requests_total',
      'Gateway calls by provider, model and HTTP status',
      ['provider', 'model', 'status'],
    ),
    tokens: m.counter('strongroom_gateway_tokens_total', 'Tokens by provider, model and direction', [
      'provider',
      'model',
      'direction',
    ]),
    spend: m.counter('strongroom_gateway_spend_usd_total', 'Spend in USD by caller', ['caller']),
    denials: m.counter('strongroom_gateway_denials_total', 'Refused calls by caller and reason', [
      'caller',
      'reason',
    ]),
    latency: m.histogram(
      'strongroom_gateway_request_duration_seconds',
      'Gateway call duration (to the last byte)',
      ['provider'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    ),
    anomalies: m.counter('strongroom_gateway_anomalies_total', 'Anomaly alerts by kind and action', [
      'kind',
      'action',
    ]),
  };
}
