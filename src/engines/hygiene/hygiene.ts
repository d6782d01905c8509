import * as api from '../../api/hygiene.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { formatDuration, parseDuration } from '../../lib/duration.ts';
import type { SecretRecord } from '../kv/kv.ts';
import type { AllowsPort, ClockPort, SecretEntry, SecretsPort, SecretsReader } from '../ports.ts';

/** What the stale-secrets report needs. */
export type HygieneDeps = SecretsPort & ClockPort & AllowsPort;

/**
 * Expiry and rotation hygiene (issue 4, item 4): which secrets are past their
 * rotation interval, expiring or expired, never rotated, or failed their last
 * rotation. One assessment serves the stale report (`secret.stale`) and the
 * gauges of `/v1/sys/metrics`.
 */
const DAY = 86_400_000;

export interface AssessOptions {
  now: number;
  /** Seconds ahead in which an expiry (or a rotation coming due) is reported. */
  withinS: number;
  /** Seconds after which a value with no rotation schedule counts as never rotated. */
  unrotatedAfterS: number;
}

export interface Assessment {
  reasons: api.StaleReason[];
  rotation_due_at: string | null;
  expires_at: string | null;
  value_set_at: string;
  days_overdue: number;
  last_rotation_error: string | null;
}

/** When the current value was set: a rollback's value dates from the version it copied. */
function valueSetAt(r: Readonly<SecretRecord>): string {
  const byVersion = new Map(r.versions.map((v) => [v.version, v]));
  let v = byVersion.get(r.current_version);
  for (let hops = 0; v?.source === 'rollback' && v.rolled_back_from !== undefined && hops < 1000; hops++) {
    const from = byVersion.get(v.rolled_back_from);
    if (!from) break;
    v = from;
  }
  return r.last_rotated_at && v && Date.parse(r.last_rotated_at) > Date.parse(v.created_at)
    ? r.last_rotated_at
    : (v?.created_at ?? r.created_at);
}

const days = (ms: number) => Math.floor(ms / DAY);

/** What is wrong with a (live) secret, if anything. */
function assess(r: Readonly<SecretRecord>, o: AssessOptions): Assessment {
  const reasons: api.StaleReason[] = [];
  let overdue = 0;
  let rotationDue: number | undefined;
  if (r.rotation && r.rotation.interval > 0) {
    rotationDue = Date.parse(r.last_rotated_at ?? r.created_at) + r.rotation.interval * 1000;
    if (rotationDue < o.now) {
      reasons.push('rotation_overdue');
      overdue = Math.max(overdue, days(o.now - rotationDue));
    } else if (rotationDue <= o.now + o.withinS * 1000) reasons.push('rotation_due');
  }
  const expires = r.expires_at ? Date.parse(r.expires_at) : undefined;
  if (expires !== undefined && Number.isFinite(expires)) {
    if (expires <= o.now) {
      reasons.push('expired');
      overdue = Math.max(overdue, days(o.now - expires));
    } else if (expires <= o.now + o.withinS * 1000) reasons.push('expiring');
  }
  const setAt = valueSetAt(r);
  if (!r.rotation && Date.parse(setAt) + o.unrotatedAfterS * 1000 < o.now) {
    reasons.push('never_rotated');
    overdue = Math.max(overdue, days(o.now - Date.parse(setAt) - o.unrotatedAfterS * 1000));
  }
  const err = (r as { last_rotation_error?: unknown }).last_rotation_error;
  const errText =
    typeof err === 'string' && err !== ''
      ? err
      : err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string'
        ? (err as { message: string }).message
        : null;
  if (errText) reasons.push('rotation_failed');
  return {
    reasons,
    rotation_due_at: rotationDue === undefined ? null : new Date(rotationDue).toISOString(),
    expires_at: r.expires_at ?? null,
    value_set_at: setAt,
    days_overdue: overdue,
    last_rotation_error: errText,
  };
}

/**
 * Every live secret record under the given project/environment (or all),
 * environment by environment; stops after `limit` records.
 */
async function* secretRecords(
  secrets: SecretsReader,
  where: { project?: string; env?: string } = {},
  limit = Number.POSITIVE_INFINITY,
): AsyncGenerator<SecretEntry> {
  let n = 0;
  for await (const entry of secrets.records(where)) {
    if (entry.record.deleted_at !== null) continue;
    if (n++ >= limit) return;
    yield entry;
  }
}

type StaleInput = api.StaleQuery;

function duration(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  try {
    return parseDuration(v);
  } catch (err) {
    throw new StrongroomError('validation_failed', `${name}: ${(err as Error).message}`);
  }
}

const DEFAULT_WITHIN_S = 7 * 86400;
const DEFAULT_UNROTATED_AFTER_S = 90 * 86400;

function reportResource(i: StaleInput): Resource {
  if (i.project && i.env) {
    return {
      type: 'Environment',
      id: `${i.project}/${i.env}`,
      attrs: { project: i.project, environment: i.env },
    };
  }
  if (i.project) return { type: 'Project', id: i.project, attrs: { project: i.project } };
  // the whole vault: rows are filtered per secret by scope and policy, so scoped tokens may ask
  return { type: 'System', id: 'secrets', attrs: { filtered_by_scope: true } };
}

export function hygieneModule(): VaultModule<HygieneDeps> {
  return { name: 'hygiene', needs: ['secrets'], operations: hygieneOperations };
}

function hygieneOperations(deps: HygieneDeps): AnyOperation[] {
  const { secrets } = deps;
  const stale = implement(api.SecretStale, {
    action: 'secret.report',
    auth: 'token',
    resource: reportResource,
    async handle(ctx, i) {
      if (i.env !== undefined && i.project === undefined)
        throw new StrongroomError('validation_failed', 'env needs project');
      if (i.project !== undefined) {
        await secrets.project(i.project);
      }
      if (i.env !== undefined) {
        await secrets.environment({ project: i.project!, env: i.env });
      }
      const withinS = duration('within', i.within, DEFAULT_WITHIN_S);
      const unrotatedAfterS = duration('unrotated_after', i.unrotated_after, DEFAULT_UNROTATED_AFTER_S);
      const now = deps.clock.now();
      const identity = ctx.identity!;
      const rows: api.StaleRow[] = [];
      for await (const { project, env, record } of secretRecords(secrets, i)) {
        const a = assess(record, { now, withinS, unrotatedAfterS });
        if (a.reasons.length === 0) continue;
        const resource: Resource = {
          type: 'Secret',
          id: `${project}/${env}/${record.name}`,
          attrs: { project, environment: env, name: record.name },
        };
        // per row: the caller's scope and policies decide which secrets it learns about
        if (!(await deps.allows(identity, 'secret.report', resource, ctx.request))) continue;
        rows.push({
          address: `${project}/${env}/${record.name}`,
          project,
          env,
          name: record.name,
          provider: record.provider ?? null,
          owner: record.owner ?? null,
          reasons: a.reasons,
          rotation_interval: record.rotation ? formatDuration(record.rotation.interval) : null,
          last_rotated_at: record.last_rotated_at ?? null,
          value_set_at: a.value_set_at,
          rotation_due_at: a.rotation_due_at,
          expires_at: a.expires_at,
          days_overdue: a.days_overdue,
          last_rotation_error: a.last_rotation_error,
        });
      }
      rows.sort((x, y) => y.days_overdue - x.days_overdue || x.address.localeCompare(y.address));
      return {
        generated_at: new Date(now).toISOString(),
        within: formatDuration(withinS),
        unrotated_after: formatDuration(unrotatedAfterS),
        secrets: rows,
      };
    },
  });
  return [stale];
}

/** Gauges per environment, computed on scrape (src/engines/metrics/metrics.ts). */
export interface EnvironmentFigures {
  project: string;
  env: string;
  total: number;
  rotation_overdue: number;
  expiring: number;
  expired: number;
  never_rotated: number;
  rotation_failed: number;
}

/** Reads at most `limit` secret records; `truncated` says whether some were left out. */
export async function environmentFigures(
  secrets: SecretsReader,
  now: number,
  limit: number,
): Promise<{ figures: EnvironmentFigures[]; truncated: boolean }> {
  const byEnv = new Map<string, EnvironmentFigures>();
  let n = 0;
  // environments without secrets are reported as 0, so a dashboard sees them
  for await (const proj of secrets.projects()) {
    for (const env of Object.keys(proj.environments).sort()) {
      byEnv.set(`${proj.name}/${env}`, {
        project: proj.name,
        env,
        total: 0,
        rotation_overdue: 0,
        expiring: 0,
        expired: 0,
        never_rotated: 0,
        rotation_failed: 0,
      });
    }
  }
  for await (const { project, env, record } of secretRecords(secrets, {}, limit + 1)) {
    if (++n > limit) return { figures: [...byEnv.values()], truncated: true };
    const f = byEnv.get(`${project}/${env}`);
    if (!f) continue;
    const a = assess(record, { now, withinS: DEFAULT_WITHIN_S, unrotatedAfterS: DEFAULT_UNROTATED_AFTER_S });
    f.total++;
    if (a.reasons.includes('rotation_overdue')) f.rotation_overdue++;
    if (a.reasons.includes('expiring')) f.expiring++;
    if (a.reasons.includes('expired')) f.expired++;
    if (a.reasons.includes('never_rotated')) f.never_rotated++;
    if (a.reasons.includes('rotation_failed')) f.rotation_failed++;
  }
  return { figures: [...byEnv.values()], truncated: false };
}
