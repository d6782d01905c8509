/**
 * A small in-process metrics registry rendered in the Prometheus text
 * exposition format (version 0.0.4). Counters and histograms are kept in
 * memory and updated in O(labels) time; gauges that are expensive to compute
 * are not stored here but computed on scrape by collectors.
 *
 * Modules get the registry through the core (`core.metrics`), never as a
 * global: `core.metrics.counter('strongroom_rotation_failures_total', 'help')`.
 * Registering the same name twice returns the same metric.
 */
export interface Counter {
  /** Adds `by` (default 1) to the series with these label values (in the declared order). */
  inc(labelValues?: readonly string[], by?: number): void;
  /** The current value of a series (0 when never incremented). */
  get(labelValues?: readonly string[]): number;
}

export interface Histogram {
  /** Records one observation (seconds, bytes, ...) for the series with these label values. */
  observe(labelValues: readonly string[], value: number): void;
}

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'untyped';
  samples: Sample[];
}

export interface MetricsRegistry {
  /** A counter (name should end in `_total`), created on first use. */
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  /** A histogram with cumulative `le` buckets (upper bounds, ascending). */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram;
  /** Text exposition of every counter and histogram registered so far. */
  render(): string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** Escapes a label value: backslash, double quote and line feed (exposition format). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function labelText(labels: Readonly<Record<string, string>> | undefined): string {
  if (!labels) return '';
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** Renders metric families (HELP, TYPE, then one line per sample). */
export function renderFamilies(families: readonly MetricFamily[]): string {
  let out = '';
  for (const f of families) {
    if (!NAME.test(f.name)) throw new TypeError(`invalid metric name ${f.name}`);
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) out += `${f.name}${labelText(s.labels)} ${formatValue(s.value)}\n`;
  }
  return out;
}

function checkNames(name: string, labelNames: readonly string[]): void {
  if (!NAME.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
  for (const l of labelNames) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(l) || l.startsWith('__'))
      throw new TypeError(`invalid label name ${JSON.stringify(l)}`);
  }
}

const SEP = '\u0000';

export function createMetricsRegistry(): MetricsRegistry {
  const families = new Map<string, { text: () => string; metric: Counter | Histogram }>();

  function labelsOf(names: readonly string[], values: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    names.forEach((n, i) => {
      out[n] = values[i] ?? '';
    });
    return out;
  }

  return {
    counter(name, help, labelNames = []) {
      const existing = families.get(name);
      if (existing) return existing.metric as Counter;
      checkNames(name, labelNames);
      const series = new Map<string, { values: readonly string[]; value: number }>();
      const metric: Counter = {
        inc(values = [], by = 1) {
          const key = values.join(SEP);
          const s = series.get(key);
          if (s) s.value += by;
          else series.set(key, { values: [...values], value: by });
        },
        get(values = []) {
          return series.get(values.join(SEP))?.value ?? 0;
        },
      };
      families.set(name, {
        metric,
        text: () =>
          renderFamilies([
            {
              name,
              help,
              type: 'counter',
              // a counter without labels is exposed as 0 before its first increment
              samples:
                series.size === 0 && labelNames.length === 0
                  ? [{ value: 0 }]
                  : [...series.values()].map((s) => ({
                      labels: labelsOf(labelNames, s.values),
                      value: s.value,
                    })),
            },
          ]),
      });
      return metric;
    },

    histogram(name, help, labelNames, buckets) {
      const existing = families.get(name);
      if (existing) return existing.metric as Histogram;
      checkNames(name, [...labelNames, 'le']);
      const bounds = [...buckets].sort((a, b) => a - b);
      const series = new Map<
        string,
        { values: readonly string[]; counts: number[]; sum: number; n: number }
      >();
      const metric: Histogram = {
        observe(values, v) {
          const key = values.join(SEP);
          let s = series.get(key);
          if (!s) {
            s = { values: [...values], counts: bounds.map(() => 0), sum: 0, n: 0 };
            series.set(key, s);
          }
          // counts are per bucket here and made cumulative when rendered
          const i = bounds.findIndex((b) => v <= b);
          if (i >= 0) s.counts[i]!++;
          s.sum += v;
          s.n++;
        },
      };
      families.set(name, {
        metric,
        text: () => {
          let out = `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} histogram\n`;
          for (const s of series.values()) {
            const base = labelsOf(labelNames, s.values);
            let acc = 0;
            bounds.forEach((b, i) => {
              acc += s.counts[i]!;
              out += `${name}_bucket${labelText({ ...base, le: formatValue(b) })} ${acc}\n`;
            });
            out += `${name}_bucket${labelText({ ...base, le: '+Inf' })} ${s.n}\n`;
            out += `${name}_sum${labelText(base)} ${formatValue(s.sum)}\n`;
            out += `${name}_count${labelText(base)} ${s.n}\n`;
          }
          return out;
        },
      });
      return metric;
    },

    render() {
      let out = '';
      for (const f of families.values()) out += f.text();
      return out;
    },
  };
}
