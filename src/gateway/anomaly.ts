import type { Caller, CallInfo } from './types.ts';

/**
 * Anomaly detection (issue 7 item 9; docs/gateway.md#anomalies): per caller,
 * a baseline of its call rate, the models it uses and the providers/routes it
 * reaches (its edges). After a learning period, a sudden burst, a model never
 * used before or a new edge raises an alert — an audit entry, a metric, an
 * optional webhook — and, as configured, narrows the caller to what it used
 * so far or revokes it.
 */
export type AnomalyKind = 'burst' | 'new_model' | 'new_edge';
export type AnomalyAction = 'alert' | 'narrow' | 'revoke';

export interface AnomalyConfig {
  /** Calls a caller makes before its baseline is trusted (default 20). */
  learning_calls?: number;
  /** A minute with more than `factor` × the caller's usual rate (and at least `min_per_minute`) is a burst. */
  burst?: { factor?: number; min_per_minute?: number };
  actions?: Partial<Record<AnomalyKind, AnomalyAction>>;
  /** POSTed a JSON alert (no secrets, no prompt text). */
  webhook?: string;
}

export interface AnomalyAlert {
  kind: AnomalyKind;
  action: AnomalyAction;
  caller: Pick<Caller, 'kind' | 'id' | 'display_name'>;
  detail: string;
  at: string;
}

interface Profile {
  calls: number;
  /** Exponentially weighted calls per minute, over completed minutes. */
  rate: number;
  minute: number;
  inMinute: number;
  burstAlerted: number;
  models: Set<string>;
  edges: Set<string>;
}

export interface AnomalyDetector {
  /** Looks at one call (after it was authorized); returns the alerts it raised. */
  observe(call: CallInfo): AnomalyAlert[];
  /** Models the caller used so far (what `narrow` restricts it to). */
  modelsOf(callerId: string): string[];
}

const ALPHA = 0.3;
const MAX_PROFILES = 100_000;

export function createAnomalyDetector(
  config: AnomalyConfig,
  deps: { now: () => number; onAlert: (alert: AnomalyAlert) => void },
): AnomalyDetector {
  const learning = config.learning_calls ?? 20;
  const factor = config.burst?.factor ?? 5;
  const minPerMinute = config.burst?.min_per_minute ?? 30;
  const profiles = new Map<string, Profile>();

  function profileOf(id: string, minute: number): Profile {
    let p = profiles.get(id);
    if (!p) {
      if (profiles.size >= MAX_PROFILES) profiles.delete(profiles.keys().next().value!);
      p = { calls: 0, rate: 0, minute, inMinute: 0, burstAlerted: -1, models: new Set(), edges: new Set() };
      profiles.set(id, p);
    }
    return p;
  }

  return {
    observe(call) {
      const now = deps.now();
      const minute = Math.floor(now / 60_000);
      const p = profileOf(call.caller.id, minute);
      // roll the rate forward over the minutes that passed (idle minutes count as zero)
      while (p.minute < minute) {
        p.rate = ALPHA * p.inMinute + (1 - ALPHA) * p.rate;
        p.inMinute = 0;
        p.minute++;
        if (minute - p.minute > 120) {
          p.rate *= (1 - ALPHA) ** (minute - p.minute);
          p.minute = minute;
        }
      }
      p.inMinute++;
      p.calls++;
      const alerts: AnomalyAlert[] = [];
      const trusted = p.calls > learning;
      const raise = (kind: AnomalyKind, detail: string) => {
        const alert: AnomalyAlert = {
          kind,
          action: config.actions?.[kind] ?? 'alert',
          caller: { kind: call.caller.kind, id: call.caller.id, display_name: call.caller.display_name },
          detail,
          at: new Date(now).toISOString(),
        };
        alerts.push(alert);
        deps.onAlert(alert);
      };
      const edge = `${call.provider}:${call.route}`;
      if (trusted && !p.models.has(call.model)) raise('new_model', `first call to the model ${call.model}`);
      if (trusted && !p.edges.has(edge)) raise('new_edge', `first call to ${edge}`);
      if (
        trusted &&
        p.inMinute >= minPerMinute &&
        p.inMinute > factor * Math.max(p.rate, 1) &&
        p.burstAlerted !== minute
      ) {
        p.burstAlerted = minute;
        raise('burst', `${p.inMinute} calls this minute against a usual ${p.rate.toFixed(1)}/min`);
      }
      p.models.add(call.model);
      p.edges.add(edge);
      return alerts;
    },
    modelsOf(callerId) {
      return [...(profiles.get(callerId)?.models ?? [])];
    },
  };
}
