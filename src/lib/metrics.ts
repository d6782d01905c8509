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

/** Series per metric before new label sets are folded into the all-`other` series (issue 12 item 16). */
const DEFAULT_MAX_SERIES_PER_METRIC = 2_000;
/** Longest label value kept; longer ones are cut (an 8,000-character model name was once a label). */
const DEFAULT_MAX_LABEL_LENGTH = 256;
/** The label value of every label of the series that takes the label sets past the cap. */
const OVERFLOW_LABEL = 'other';

export interface MetricsRegistryOptions {
  /** Distinct label sets a metric keeps (default 2,000); beyond it, new ones count under all-`other` labels. */
  maxSeriesPerMetric?: number;
  /** Longest label value (default 256 characters); longer values are cut. */
  maxLabelLength?: number;
}

/**
 * Escapes a label value as the text exposition format says: backslash as `\\`, double quote as `\"`,
 * line feed as `\n`. The other control characters (a carriage return would end the line for some
 * parsers) become U+FFFD, and so does a lone surrogate (not encodable as UTF-8).
 */
function escapeLabelValue(v: string): string {
  return (
    v
      .toWellFormed()
      .replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))
      // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing them is the point
      .replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '\ufffd')
  );
}

/** A label value as stored: cut to `max` characters (never inside a surrogate pair). */
function capLabel(v: string, max: number): string {
  if (v.length <= max) return v;
  const code = v.charCodeAt(max - 1);
  return v.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
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

export function createMetricsRegistry(opts: MetricsRegistryOptions = {}): MetricsRegistry {
  const maxSeries = opts.maxSeriesPerMetric ?? DEFAULT_MAX_SERIES_PER_METRIC;
  const maxLabel = opts.maxLabelLength ?? DEFAULT_MAX_LABEL_LENGTH;
  if (!Number.isInteger(maxSeries) || maxSeries < 1)
    throw new TypeError('maxSeriesPerMetric must be a positive integer');
  if (!Number.isInteger(maxLabel) || maxLabel < 1)
    throw new TypeError('maxLabelLength must be a positive integer');
  const families = new Map<string, { text: () => string; metric: Counter | Histogram }>();

  /**
   * The series of these label values, created when `create` is given and there is room. Values are keyed
   * as stored (cut to `maxLabel`), so an over-long value is never kept; past `maxSeries` label sets, new
   * ones share the all-`other` series (one more than the cap at most).
   */
  function seriesOf<S extends { values: readonly string[] }>(
    series: Map<string, S>,
    arity: number,
    values: readonly string[],
    create?: (values: readonly string[]) => S,
  ): S | undefined {
    const key = values.join(SEP);
    const hit = values.length === arity ? series.get(key) : undefined;
    if (hit) return hit;
    // a stored key holds exactly arity - 1 separators: a value holding one cannot match another series
    let stored = values.length === arity ? values : Array.from({ length: arity }, (_, i) => values[i] ?? '');
    if (stored.some((v) => v.length > maxLabel || v.includes(SEP)))
      stored = stored.map((v) => capLabel(v, maxLabel).replaceAll(SEP, '\ufffd'));
    let storedKey = stored.join(SEP);
    if (storedKey !== key) {
      const again = series.get(storedKey);
      if (again) return again;
    }
    if (!create) return undefined;
    if (series.size >= maxSeries) {
      stored = Array.from({ length: arity }, () => OVERFLOW_LABEL);
      storedKey = stored.join(SEP);
      const overflow = series.get(storedKey);
      if (overflow) return overflow;
    }
    const s = create(stored);
    series.set(storedKey, s);
    return s;
  }

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
      const arity = labelNames.length;
      const fresh = (v: readonly string[]) => ({ values: [...v], value: 0 });
      const metric: Counter = {
        inc(values = [], by = 1) {
          seriesOf(series, arity, values, fresh)!.value += by;
        },
        get(values = []) {
          return seriesOf(series, arity, values)?.value ?? 0;
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
      const arity = labelNames.length;
      const fresh = (v: readonly string[]) => ({ values: [...v], counts: bounds.map(() => 0), sum: 0, n: 0 });
      const metric: Histogram = {
        observe(values, v) {
          const s = seriesOf(series, arity, values, fresh)!;
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
