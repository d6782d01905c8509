import * as api from '../../api/hygiene.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { Operation } from '../../contract/operation.ts';
import { implement } from '../../contract/operation.ts';
import type { MetricsRegistry } from '../../lib/metrics.ts';
import { type MetricFamily, renderFamilies } from '../../lib/metrics.ts';
import { environmentFigures } from '../hygiene/hygiene.ts';
import type { BarrierPort, ClockPort, SecretsPort } from '../ports.ts';
import { rotationMetrics } from '../rotation/metrics.ts';

/** What the metrics endpoint needs: the registry, the secrets for gauges, the clock, and whether sealed. */
export type MetricsDeps = SecretsPort & ClockPort & BarrierPort & { metrics: MetricsRegistry };

/**
 * `GET /v1/sys/metrics` (action `sys.metrics`): the Prometheus text exposition
 * of this server. Counters and histograms live in `deps.metrics`
 * (src/lib/metrics.ts) — request counts and durations are recorded by the
 * core, and modules may register their own there
 * (`deps.metrics.counter(name, help, labelNames)`). Rotation counts come from
 * the rotation module's process-wide counters (src/engines/rotation/metrics.ts).
 *
 * Secret gauges are computed on scrape from the stored records (bounded by
 * `maxSecrets`), so they cost nothing per request.
 */
export interface MetricsOptions {
  /** Secrets read per scrape at most (default 100 000); `strongroom_secrets_scan_truncated` says when more exist. */
  maxSecrets?: number;
}

export function metricsModule(opts: MetricsOptions = {}): VaultModule<MetricsDeps> {
  const maxSecrets = opts.maxSecrets ?? 100_000;
  return { name: 'metrics', needs: ['secrets'], operations: (deps) => metricsOperations(deps, maxSecrets) };
}

function metricsOperations(
  deps: MetricsDeps,
  maxSecrets: number,
): Operation<Record<string, never>, string>[] {
  let inflight: Promise<string> | undefined;

  async function secretFamilies(): Promise<MetricFamily[]> {
    const { figures, truncated } = await environmentFigures(deps.secrets, deps.clock.now(), maxSecrets);
    const labels = (f: { project: string; env: string }) => ({ project: f.project, env: f.env });
    const gauge = (
      name: string,
      help: string,
      pick: (f: (typeof figures)[number]) => number,
      extra = {},
    ) => ({
      name,
      help,
      type: 'gauge' as const,
      samples: figures.map((f) => ({ labels: { ...labels(f), ...extra }, value: pick(f) })),
    });
    return [
      gauge('strongroom_secrets_total', 'Live (not deleted) secrets per environment.', (f) => f.total),
      gauge(
        'strongroom_secrets_rotation_overdue',
        'Secrets past their rotation interval.',
        (f) => f.rotation_overdue,
      ),
      gauge(
        'strongroom_secrets_expiring',
        'Secrets whose expires_at falls within the window (not yet expired).',
        (f) => f.expiring,
        { within: '7d' },
      ),
      gauge('strongroom_secrets_expired', 'Secrets past their expires_at.', (f) => f.expired),
      gauge(
        'strongroom_secrets_never_rotated',
        'Secrets with no rotation schedule whose value is older than the threshold.',
        (f) => f.never_rotated,
        { unrotated_after: '90d' },
      ),
      gauge(
        'strongroom_secrets_rotation_failed',
        'Secrets whose last rotation attempt failed.',
        (f) => f.rotation_failed,
      ),
      {
        name: 'strongroom_secrets_scan_truncated',
        help: `1 when more than ${maxSecrets} secrets exist and the secret gauges cover only the first ones.`,
        type: 'gauge',
        samples: [{ value: truncated ? 1 : 0 }],
      },
    ];
  }

  function rotationFamilies(): MetricFamily[] {
    const help: Record<string, string> = {
      rotations: 'Rotations that made a new version current.',
      failures: 'Rotations that failed (the current version was kept).',
      revocations: 'Old keys revoked after their grace period.',
      revocation_failures: 'Revocations of old keys that failed (retried with backoff).',
    };
    return Object.entries(rotationMetrics()).map(([k, v]) => ({
      name: `strongroom_rotation_${k}_total`,
      help: help[k] ?? `Rotation counter ${k}.`,
      type: 'counter' as const,
      samples: [{ value: v }],
    }));
  }

  function processFamilies(): MetricFamily[] {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const one = (name: string, help: string, type: MetricFamily['type'], value: number): MetricFamily => ({
      name,
      help,
      type,
      samples: [{ value }],
    });
    return [
      one('process_cpu_user_seconds_total', 'User CPU time spent.', 'counter', cpu.user / 1e6),
      one('process_cpu_system_seconds_total', 'System CPU time spent.', 'counter', cpu.system / 1e6),
      one(
        'process_cpu_seconds_total',
        'Total user and system CPU time spent.',
        'counter',
        (cpu.user + cpu.system) / 1e6,
      ),
      one('process_resident_memory_bytes', 'Resident memory size.', 'gauge', mem.rss),
      one('nodejs_heap_size_used_bytes', 'V8 heap in use.', 'gauge', mem.heapUsed),
      one('nodejs_heap_size_total_bytes', 'V8 heap allocated.', 'gauge', mem.heapTotal),
      one(
        'process_start_time_seconds',
        'Start time of the process since the Unix epoch.',
        'gauge',
        Math.round((Date.now() - process.uptime() * 1000) / 1000),
      ),
      {
        name: 'strongroom_sealed',
        help: '1 when the vault is sealed.',
        type: 'gauge',
        samples: [{ value: deps.barrier.sealed ? 1 : 0 }],
      },
    ];
  }

  const metrics = implement(api.SysMetrics, {
    action: 'sys.metrics',
    auth: 'token',
    resource: () => ({ type: 'System', id: 'metrics' }),
    handle() {
      // concurrent scrapes share one pass over the records
      inflight ??= (async () => {
        try {
          return (
            renderFamilies([...(await secretFamilies()), ...rotationFamilies()]) +
            deps.metrics.render() +
            renderFamilies(processFamilies())
          );
        } finally {
          inflight = undefined;
        }
      })();
      return inflight;
    },
  });
  return [metrics];
}
