import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { setGlobalErrorHandler, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TelemetryConfig } from '../config/config.ts';

/**
 * OpenTelemetry for the `strongroom` process (issue 12 item 15), started by bin/strongroom.ts for the
 * `server` and `gateway` commands before anything listens:
 *
 * - always: the W3C Trace Context propagator (a caller's `traceparent` continues through the gateway to
 *   the provider) and an AsyncLocalStorage context manager (spans started in a call nest under it);
 * - with a `telemetry` section: a tracer provider whose spans are batched and posted over OTLP/HTTP
 *   (JSON) to the collector, flushed when the process stops.
 *
 * Without an export nothing records: the gateway forwards the caller's `traceparent` as it came (W3C
 * Trace Context §3.2: a participant that makes no span passes the parent on), so the provider's spans
 * hang under the caller's. Spans carry no prompt or completion text and no credential: only what the
 * gateway sets (docs/gateway.md#traces).
 */
export interface Telemetry {
  /** Whether spans are exported. */
  readonly exporting: boolean;
  /** Exports the spans still queued and stops exporting; waits at most `timeoutMs` (default 5 s). */
  shutdown(timeoutMs?: number): Promise<void>;
}

export interface TelemetryOptions {
  /** Where export failures are reported (at most one line a minute); never with headers or span data. */
  warn?: (message: string) => void;
  /** `service.version` of the exported spans. */
  serviceVersion?: string;
  /** Batch delay before an export (default 5 s, as the OpenTelemetry SDK's). */
  scheduledDelayMs?: number;
}

let started: Telemetry | undefined;

/** Starts telemetry once per process (a second call returns the first one's handle). */
export function startTelemetry(
  config: Readonly<TelemetryConfig> | undefined,
  opts: TelemetryOptions = {},
): Telemetry {
  if (started) return started;
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const url = config?.otlp_traces_endpoint;
  if (!config || !url) {
    started = { exporting: false, shutdown: async () => {} };
    return started;
  }

  // the SDK reports export failures here: say where, not what (no span data, no header values)
  let lastWarn = Number.NEGATIVE_INFINITY;
  const report = (err: unknown) => {
    const now = Date.now();
    if (!opts.warn || now - lastWarn < 60_000) return;
    lastWarn = now;
    const text = err instanceof Error ? err.message : typeof err === 'string' ? err : 'unknown error';
    opts.warn(`telemetry: exporting spans to ${new URL(url).origin} failed: ${text.slice(0, 200)}`);
  };
  setGlobalErrorHandler(report);
  const exporter = new OTLPTraceExporter({
    url,
    ...(config.headers ? { headers: { ...config.headers } } : {}),
    timeoutMillis: (typeof config.timeout === 'number' ? config.timeout : 10) * 1000,
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': config.service_name ?? 'strongroom',
      ...(opts.serviceVersion ? { 'service.version': opts.serviceVersion } : {}),
    }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        maxQueueSize: 4096,
        maxExportBatchSize: 512,
        scheduledDelayMillis: opts.scheduledDelayMs ?? 5_000,
      }),
    ],
  });
  trace.setGlobalTracerProvider(provider);

  let stopping: Promise<void> | undefined;
  started = {
    exporting: true,
    shutdown(timeoutMs = 5_000) {
      stopping ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        // an unreachable collector must not hold the process: the last spans are tried for timeoutMs
        await Promise.race([
          provider.shutdown().catch(report),
          new Promise<void>((r) => {
            timer = setTimeout(r, timeoutMs);
            timer.unref();
          }),
        ]);
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
  return started;
}
