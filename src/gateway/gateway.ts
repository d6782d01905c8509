import { trace } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/gateway.ts';
import { parseDuration } from '../lib/duration.ts';
import { DEFAULT_MAX_JSON_DEPTH } from '../lib/json.ts';
import type { AnomalyDetector } from './anomaly.ts';
import { createAnomalyActions } from './anomaly-actions.ts';
import { createCallHandler } from './call.ts';
import { createCallGuards } from './call-guard.ts';
import { createGatewayMetrics } from './call-metrics.ts';
import { createForwarder } from './forward.ts';
import { createLabeler } from './labels.ts';
import { createListener } from './listener.ts';
import { createProvenance } from './provenance.ts';
import { ENDPOINTS } from './providers.ts';
import { createRecorder } from './record.ts';
import { createRoutes } from './routing.ts';
import type { GatewayIdentity } from './self-identity.ts';
import type { RemoteStage } from './stages/remote.ts';
import type { CallInfo, RequestStage, ResponseStage, Usage } from './types.ts';
import { createUpstreams } from './upstream.ts';
import type { GatewayVault } from './vault-port.ts';

/**
 * The AI gateway (issue 7; docs/gateway.md). Applications call it as if it
 * were OpenAI or Anthropic, with a short-lived Strongroom credential; every
 * call goes through the same steps, in this order, with no route that skips
 * any of them:
 *
 *   authenticate (token, virtual key, JWT-SVID, X.509-SVID; a key bound to a
 *   SPIFFE ID also needs that SVID) -> parse (model, stream, size) -> route
 *   (config decides the upstream: never the client) -> authorize (Cedar
 *   `gateway.invoke` on Model::"provider/model") -> reserve budget ->
 *   request stages (prompt firewall) -> inject the vault-held key into a
 *   request built from scratch -> stream the answer through the response
 *   stages (output filter, which also redacts the key) -> settle the budget
 *   -> one audit entry (before the last byte reaches the client).
 *
 * This file puts the steps together; each lives in its own file: call.ts (the
 * steps of one call), authenticate.ts, request.ts, routing.ts, authorize.ts,
 * anomaly-actions.ts, admission.ts, forward.ts (upstream.ts, provenance.ts,
 * call-guard.ts, relay-answer.ts, relay-stream.ts), record.ts, models.ts,
 * and listener.ts (the HTTP listener) with error-answers.ts.
 */
export interface GatewayDeps {
  /** The vault: in this process, or remote over mTLS (vault-port.ts). */
  vault: GatewayVault;
  config: GatewayConfig;
  logger: Logger;
  requestStages?: RequestStage[];
  responseStages?: ResponseStage[];
  /** Called after each call; never throws into the request. */
  observe?: (call: CallInfo, outcome: { status: number; usage?: Usage; denied?: string }) => void;
  /** Anomaly detection: looked at before each call goes upstream. */
  anomaly?: AnomalyDetector;
  /** The gateway's own SVID: signs the provenance chain, authenticates to remote stages. */
  identity?: GatewayIdentity;
  /** Stages running as separate services, reached over mTLS (after the in-process request stages); made once the identity is ready. */
  remoteStages?: () => RemoteStage[];
  /** Where alerts are POSTed (JSON, no secrets and no prompt text). */
  anomalyWebhook?: string;
}

export interface Gateway {
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function createGateway(deps: GatewayDeps): Promise<Gateway> {
  const { vault, config, logger } = deps;
  const seconds = (d: string | number | undefined, fallback: number) =>
    d === undefined ? fallback : parseDuration(d);
  const requestTimeoutMs = seconds(config.request_timeout, 60) * 1000;
  /** Each request body's size in bytes, from the content parser (an upper bound of its input tokens). */
  const bodyBytes = new WeakMap<object, number>();

  const metrics = createGatewayMetrics(vault.metrics);
  // metric labels from a bounded set: configured model names or globs, caller IDs (never client text)
  const label = createLabeler(config);
  const observe = (call: CallInfo, outcome: { status: number; usage?: Usage; denied?: string }) =>
    deps.observe?.(call, outcome);
  const routes = createRoutes(config);
  const recorder = createRecorder({ vault, metrics, label, observe });
  const guards = createCallGuards({
    vault,
    maxCallMs: seconds(config.max_call_duration, 600) * 1000,
    revocationMs: config.revocation_check_ms ?? 500,
  });
  const upstreams = createUpstreams(vault.keys);
  const provenance = createProvenance({ identity: deps.identity, remoteStages: deps.remoteStages });
  const forward = createForwarder({
    upstreams,
    provenance,
    guards,
    recorder,
    responseStages: deps.responseStages ?? [],
    metrics,
    label,
    logger,
  });
  const anomalies = createAnomalyActions({
    vault,
    logger,
    counter: metrics.anomalies,
    detector: deps.anomaly,
    webhook: deps.anomalyWebhook,
  });
  const handle = createCallHandler({
    vault,
    tls: config.tls,
    bounds: {
      bodyBytes,
      referenceTokens: config.reference_tokens ?? 2048,
      defaultMaxOut: config.default_max_output_tokens ?? 4096,
    },
    // a virtual key's own limits come from the vault; these are the rest (per app, workload, user or token)
    limits: config.limits ?? {},
    routes,
    requestStages: deps.requestStages ?? [],
    anomalies,
    recorder,
    forward,
    metrics,
    label,
    tracer: trace.getTracer('strongroom-gateway'),
    logger,
    observe,
  });

  const app = createListener({
    config,
    requestTimeoutMs,
    maxJsonDepth: config.max_json_depth ?? DEFAULT_MAX_JSON_DEPTH,
    bodyBytes,
    logger,
  });
  app.get('/healthz', async (_req, reply) => {
    const status = await vault.health();
    return reply.code(status === 'ok' ? 200 : 503).send({ status });
  });
  for (const ep of ENDPOINTS) {
    app.route({ method: ep.method, url: ep.path, handler: (req, reply) => handle(ep, req, reply) });
  }

  return {
    app,
    async close() {
      await app.close();
      await upstreams.close();
      await provenance.close();
      guards.close();
      deps.identity?.close();
    },
  };
}
