// biome-ignore-all lint/style/noExcessiveLinesPerFile: the rotation engine: the scheduler, the two-phase rotate and the provider adapters' state machine
import { randomUUID } from 'node:crypto';
import * as api from '../../api/rotation.ts';
import type { BarrierReader, BarrierWriter } from '../../barrier/barrier.ts';
import type { AuditEntry } from '../../contract/audit.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { SecretAddress, SecretRecord } from '../kv/kv.ts';
import type { BarrierPort, ClockPort, SecretsPort, SecretsWriter, SecretsWriterPort } from '../ports.ts';
import { type AdapterSettings, type RotationAdapter, sanitizeUpstream } from './adapters/http.ts';
import { createOpenAiAdapter } from './adapters/openai.ts';
import { createOpenRouterAdapter } from './adapters/openrouter.ts';
import { countRotation } from './metrics.ts';

/**
 * Secret rotation (docs/rotation.md): `secret.rotate` makes a new version
 * current at once — an operator's value, or a key minted by the secret's
 * provider adapter — and keeps the old key valid through `rotation.grace`;
 * after it, the old key is deleted at the provider (or, for keys Strongroom
 * did not mint, the old version is marked superseded). A scheduler rotates
 * due secrets and runs the deletions, once per cluster (a lease in storage).
 *
 * Layout inside the kv engine's barrier view (so a rotation commits its new
 * version and its state in one transaction):
 *   rotation/lease                          the scheduler lease {holder, expires_at}
 *   rotation/state/<project>/<env>/<name>   provider key id, pending deletions, failures
 */

export interface RotationOptions {
  /** Scheduler period in seconds (default 60); 0 runs no timer (tick() still works). */
  interval_seconds?: number;
  /** This server's id in the cluster lease (default: random per process). */
  holder_id?: string;
  /** Adapter settings (base URLs for proxies and tests; default the real APIs). */
  adapters?: { openai?: AdapterSettings; openrouter?: AdapterSettings };
  /** Extra or replacement adapters, by id (tests). */
  extraAdapters?: RotationAdapter[];
}

/** An old key waiting for the end of its grace period. */
export interface PendingRevocation {
  version: number;
  /** The provider's id for the old key when Strongroom minted it, else null (marked superseded only). */
  provider_key_id: string | null;
  adapter: string | null;
  /** rotation.options at the time of the rotation (how to reach the provider). */
  options: Record<string, string> | null;
  revoke_at: string;
  attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
}

export interface RotationState {
  /** The provider's id of the key in `key_version`, when an adapter minted it. */
  provider_key_id: string | null;
  key_version: number | null;
  pending: PendingRevocation[];
  /** Old versions past their grace period (the newest 50). */
  superseded: { version: number; at: string; provider_key_deleted: boolean }[];
  /** Consecutive failed rotations. */
  failures: number;
  next_attempt_at: string | null;
  last_error: string | null;
  /** A rotation in flight (so two servers never mint two keys for one rotation). */
  claim: { holder: string; until: string } | null;
}

/** A rotation's outcome: the API's answer (src/api/rotation.ts), also what the scheduler audits. */
export type RotateResult = api.SecretRotateResponse;

export interface TickReport {
  leader: boolean;
  rotated: string[];
  failed: string[];
  revoked: string[];
}

export interface RotationService {
  /** The rotation module: the rotate and rotation-status operations; the scheduler runs while unsealed. */
  module: VaultModule<RotationDeps>;
  /** Rotates one secret now (the API's and the scheduler's path). */
  rotate(
    a: SecretAddress,
    o: { value?: string; force?: boolean; trigger: 'api' | 'schedule' },
  ): Promise<RotateResult>;
  /** One scheduler pass: take/renew the lease, rotate due secrets, delete old keys past grace. */
  tick(): Promise<TickReport>;
  /** Starts the timer (on unseal). */
  start(): void;
  /** Stops the timer and hands the lease back (on seal and shutdown). */
  stop(): Promise<void>;
  readonly holderId: string;
}

const CLAIM_MS = 5 * 60_000;
const BACKOFF_BASE_S = 60;
const BACKOFF_CAP_S = 3600;
const SUPERSEDED_KEPT = 50;
/** Rotation's records, attached to the secrets (in the secrets mount, under rotation/). */
const ATTACH = 'rotation/';
const STATE = 'state/';
const LEASE = 'lease';

/** 1m, 2m, 4m … capped at 1h, after the n-th consecutive failure. */
export function backoffSeconds(failures: number): number {
  return Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
type AuditInput = Omit<AuditEntry, 'time'> & { time?: string };

/** What rotation needs: the secrets, the clock, whether sealed, and the core's audit of work done outside a request. */
export type RotationDeps = SecretsPort &
  SecretsWriterPort &
  ClockPort &
  BarrierPort & {
    /** Fail-closed audit of the scheduler's own work (throws `audit_unavailable` when no sink took it). */
    audit(entry: AuditInput): Promise<void>;
  };
const SCHEDULER: NonNullable<AuditInput['actor']> = {
  type: 'system',
  id: 'rotation-scheduler',
  display_name: 'rotation scheduler',
};

function emptyState(): RotationState {
  return {
    provider_key_id: null,
    key_version: null,
    pending: [],
    superseded: [],
    failures: 0,
    next_attempt_at: null,
    last_error: null,
    claim: null,
  };
}

function secretResource(a: SecretAddress): Resource {
  return {
    type: 'Secret',
    id: `${a.project}/${a.env}/${a.name}`,
    attrs: { project: a.project, environment: a.env, name: a.name },
  };
}

function errorText(err: unknown, secrets: string[]): string {
  if (err instanceof StrongroomError) return sanitizeUpstream(err.message, secrets, 300);
  return 'internal error';
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the scheduler and the rotate operation share the cluster lease, the adapters and the running pass kept in this closure
export function createRotation(opts: RotationOptions = {}): RotationService {
  const holderId = opts.holder_id ?? `server-${randomUUID()}`;
  const adapters = new Map<string, RotationAdapter>();
  for (const a of [
    createOpenAiAdapter(opts.adapters?.openai),
    createOpenRouterAdapter(opts.adapters?.openrouter),
    ...(opts.extraAdapters ?? []),
  ])
    adapters.set(a.id, a);
  const intervalMs = (opts.interval_seconds ?? 60) * 1000;
  // long enough to survive one missed tick, short enough for a quick take-over
  // (a server ticking by hand, interval 0, holds it as long as one ticking every minute)
  const leaseMs = Math.max(3 * (intervalMs > 0 ? intervalMs : 60_000), 30_000);
  let core: RotationDeps | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<TickReport> | undefined;

  const c = (): RotationDeps => {
    if (!core) throw new TypeError('rotation module used before the core registered it');
    return core;
  };
  let attached: SecretsWriter | undefined;
  /** Secrets and rotation's own records, in one transaction. */
  const writer = (): SecretsWriter => {
    if (!attached) throw new TypeError('rotation module used before the core registered it');
    return attached;
  };
  const secrets = () => c().secrets;
  const now = () => c().clock.now();
  const iso = (ms = now()) => new Date(ms).toISOString();
  const pathOf = (a: SecretAddress) => `${a.project}/${a.env}/${a.name}`;

  const addressOf = (path: string): SecretAddress => {
    const [project = '', env = '', name = ''] = path.split('/');
    return { project, env, name };
  };

  async function readState(r: BarrierReader, path: string): Promise<RotationState> {
    const s = await r.getJson<RotationState>(`${STATE}${path}`);
    // frozen (possibly cached): a deep copy to change
    return s ? (JSON.parse(JSON.stringify(s)) as RotationState) : emptyState();
  }
  async function writeState(tx: BarrierWriter, path: string, s: RotationState): Promise<void> {
    await tx.put(`${STATE}${path}`, enc(s));
  }

  function adapterFor(rec: Readonly<SecretRecord>): RotationAdapter {
    const id = rec.rotation?.adapter;
    const adapter = id ? adapters.get(id) : undefined;
    if (!id || !adapter) {
      throw new StrongroomError(
        'validation_failed',
        id
          ? `unknown rotation adapter ${JSON.stringify(id)}; known: ${[...adapters.keys()].join(', ')}`
          : `${rec.name} has no rotation adapter: give the new value (\`strongroom secret rotate … --value-from-stdin\`) or set rotation.adapter`,
      );
    }
    const problem = adapter.checkOptions(rec.rotation?.options ?? {});
    if (problem) throw new StrongroomError('validation_failed', problem);
    return adapter;
  }

  /**
   * The admin/provisioning key named by rotation.options.admin_secret. It must
   * live in the same project and environment as the rotated secret, so whoever
   * may configure a secret's rotation cannot point it at another environment's
   * admin key. Never returned, logged or audited.
   */
  async function adminKey(
    a: SecretAddress,
    options: Readonly<Record<string, string>> | null,
  ): Promise<string> {
    const ref = options?.admin_secret;
    if (!ref) {
      throw new StrongroomError(
        'validation_failed',
        'rotation.options.admin_secret must name the vault secret holding the admin key (e.g. OPENAI_ADMIN_KEY)',
      );
    }
    const parts = ref.split('/');
    const target =
      parts.length === 1
        ? { project: a.project, env: a.env, name: parts[0]! }
        : parts.length === 3
          ? { project: parts[0]!, env: parts[1]!, name: parts[2]! }
          : undefined;
    if (!target || target.project !== a.project || target.env !== a.env) {
      throw new StrongroomError(
        'validation_failed',
        `rotation.options.admin_secret must be a secret of ${a.project}/${a.env} (NAME or ${a.project}/${a.env}/NAME)`,
      );
    }
    if (target.name === a.name) {
      throw new StrongroomError('validation_failed', 'a secret cannot be its own admin key');
    }
    const rec = await secrets().secret(target);
    return secrets().value(target, rec.current_version);
  }

  function isDue(rec: Readonly<SecretRecord>, st: RotationState, at: number): boolean {
    if (rec.deleted_at !== null || !rec.rotation?.adapter) return false;
    if (st.failures > 0 && st.next_attempt_at) return Date.parse(st.next_attempt_at) <= at;
    const since = Date.parse(rec.last_rotated_at ?? rec.created_at);
    return since + rec.rotation.interval * 1000 <= at;
  }

  async function rotate(
    a: SecretAddress,
    o: { value?: string; force?: boolean; trigger: 'api' | 'schedule' },
  ): Promise<RotateResult> {
    const path = pathOf(a);
    // phase 1: claim the rotation (a second server, or a second caller, backs off)
    const claimed = await writer().transaction(async (tx) => {
      const rec = await tx.secret(a);
      const st = await readState(tx.own, path);
      const at = now();
      if (st.claim && st.claim.holder !== holderId && Date.parse(st.claim.until) > at) {
        throw new StrongroomError(
          'rotation_in_progress',
          `${path} is being rotated by another server; try again in a few seconds`,
        );
      }
      if (o.trigger === 'schedule' && !isDue(rec, st, at)) return undefined;
      if (o.value === undefined) adapterFor(rec);
      st.claim = { holder: holderId, until: iso(at + CLAIM_MS) };
      await writeState(tx.own, path, st);
      return { rec };
    });
    if (!claimed) throw new StrongroomError('already_exists', `${path} was rotated by another server`);
    const rotation = claimed.rec.rotation;

    // phase 2: the new key (outside any transaction: it talks to the provider)
    let minted: { value: string; id: string } | undefined;
    let admin: string | undefined;
    let adapter: RotationAdapter | undefined;
    try {
      if (o.value === undefined) {
        adapter = adapterFor(claimed.rec);
        admin = await adminKey(a, rotation?.options ?? null);
        minted = await adapter.create({
          adminKey: admin,
          options: rotation?.options ?? {},
          label: `strongroom ${path} ${iso().slice(0, 19)}Z`,
        });
      }
    } catch (err) {
      await recordFailure(path, errorText(err, admin ? [admin] : []));
      throw err instanceof StrongroomError
        ? new StrongroomError(err.code, sanitizeUpstream(err.message, admin ? [admin] : [], 300))
        : err;
    }

    // phase 3: the new version becomes current, the old key waits for its grace period
    try {
      return await writer().transaction(async (tx) => {
        const rec = await tx.secret(a);
        const st = await readState(tx.own, path);
        const at = now();
        const previous = rec.current_version;
        const value = minted ? minted.value : o.value!;
        const out = await tx.appendVersion(a, value, {
          source: 'rotation',
          // a key the provider just minted is what the provider issues, whatever our format table says
          ...(o.force || minted ? { force: true } : {}),
        });
        const grace = rec.rotation?.grace ?? 0;
        const revokeAt = iso(at + grace * 1000);
        const pending = (version: number, keyId: string | null): PendingRevocation => ({
          version,
          provider_key_id: keyId,
          adapter: keyId ? (rec.rotation?.adapter ?? null) : null,
          options: keyId && rec.rotation?.options ? { ...rec.rotation.options } : null,
          revoke_at: revokeAt,
          attempts: 0,
          next_attempt_at: null,
          last_error: null,
        });
        st.pending.push(pending(previous, st.key_version === previous ? st.provider_key_id : null));
        // a key Strongroom minted that a manual write replaced since: revoke it too
        if (st.provider_key_id && st.key_version !== previous) {
          st.pending.push(pending(st.key_version ?? previous, st.provider_key_id));
        }
        st.provider_key_id = minted?.id ?? null;
        st.key_version = out.version;
        st.failures = 0;
        st.next_attempt_at = null;
        st.last_error = null;
        st.claim = null;
        await writeState(tx.own, path, st);
        await tx.setRotationStatus(a, { last_rotation_error: null, next_rotation_attempt_at: null });
        tx.changed({ project: a.project, env: a.env, name: a.name, kind: 'rotation', version: out.version });
        return {
          name: a.name,
          version: out.version,
          previous_version: previous,
          created_at: out.created_at,
          source: 'rotation' as const,
          minted_by: minted ? ('adapter' as const) : ('operator' as const),
          adapter: minted ? (rec.rotation?.adapter ?? null) : null,
          old_key_valid_until: revokeAt,
        };
      });
    } catch (err) {
      // the new key never became current: delete it at the provider, release the claim
      if (minted && adapter && admin) {
        await adapter
          .revoke({ adminKey: admin, options: rotation?.options ?? {}, label: '' }, minted.id)
          .catch(() => {});
      }
      if (minted) await recordFailure(path, errorText(err, [admin ?? '', minted.value]));
      else await releaseClaim(path);
      throw err;
    }
  }

  async function releaseClaim(path: string): Promise<void> {
    await writer()
      .transaction(async (tx) => {
        const st = await readState(tx.own, path);
        if (st.claim?.holder !== holderId) return;
        st.claim = null;
        await writeState(tx.own, path, st);
      })
      .catch(() => {});
  }

  /** A failed rotation: the current version stays; the error and the retry time are recorded. */
  async function recordFailure(path: string, message: string): Promise<void> {
    countRotation('failures');
    await writer()
      .transaction(async (tx) => {
        const st = await readState(tx.own, path);
        st.failures += 1;
        st.last_error = message;
        st.next_attempt_at = iso(now() + backoffSeconds(st.failures) * 1000);
        if (st.claim?.holder === holderId) st.claim = null;
        await writeState(tx.own, path, st);
        await tx.setRotationStatus(addressOf(path), {
          last_rotation_error: message,
          next_rotation_attempt_at: st.next_attempt_at,
        });
      })
      .catch(() => {});
  }

  /** Audit entries for the scheduler's own work (a request entry first: no sink, no work). */
  function auditor(operation: string, path: string, request: Record<string, unknown>) {
    const base = {
      request_id: `rotation-${randomUUID()}`,
      operation,
      action: 'secret.rotate',
      resource: `Secret::${path}`,
      actor: SCHEDULER,
      client_address: 'internal',
    } satisfies Partial<AuditInput>;
    return {
      request: () =>
        c().audit({
          ...base,
          type: 'request',
          decision: { allowed: true, reason: 'scheduled by the rotation policy of the secret' },
          request,
        }),
      ok: (more: Record<string, unknown>) =>
        c().audit({ ...base, type: 'response', status: 'ok', request: { ...request, ...more } }),
      error: (code: string, message: string) =>
        c().audit({
          ...base,
          type: 'response',
          status: 'error',
          error_code: code,
          request: { ...request, error: message },
        }),
    };
  }

  /** The cluster lease: only its holder rotates. Renewed each tick. */
  async function takeLease(): Promise<boolean> {
    return writer().transaction(async ({ own }) => {
      const at = now();
      const l = await own.getJson<{ holder: string; expires_at: string }>(LEASE);
      if (l && l.holder !== holderId && Date.parse(l.expires_at) > at) return false;
      await own.put(LEASE, enc({ holder: holderId, expires_at: iso(at + leaseMs), renewed_at: iso(at) }));
      return true;
    });
  }

  async function scheduledRotation(a: SecretAddress, rec: Readonly<SecretRecord>, report: TickReport) {
    const path = pathOf(a);
    const audit = auditor('secret.rotate', path, {
      project: a.project,
      env: a.env,
      name: a.name,
      trigger: 'schedule',
      adapter: rec.rotation?.adapter ?? null,
    });
    await audit.request();
    try {
      const r = await rotate(a, { trigger: 'schedule' });
      countRotation('rotations');
      report.rotated.push(path);
      await audit.ok({
        version: r.version,
        previous_version: r.previous_version,
        old_key_valid_until: r.old_key_valid_until,
      });
    } catch (err) {
      const code = err instanceof StrongroomError ? err.code : 'internal';
      if (code === 'already_exists' || code === 'rotation_in_progress') {
        await audit.ok({ skipped: 'rotated by another server' });
        return;
      }
      report.failed.push(path);
      await audit.error(code, errorText(err, []));
    }
  }

  async function revokeDue(path: string, report: TickReport): Promise<void> {
    const st = await readState(writer().own, path);
    const at = now();
    const [project, env, name] = path.split('/') as [string, string, string];
    const a = { project, env, name };
    for (const p of st.pending) {
      if (Date.parse(p.revoke_at) > at) continue;
      if (p.next_attempt_at && Date.parse(p.next_attempt_at) > at) continue;
      const deletes = p.provider_key_id !== null && p.adapter !== null;
      const audit = auditor('secret.rotate.revoke', path, {
        project,
        env,
        name,
        version: p.version,
        provider_key_id: p.provider_key_id,
        adapter: p.adapter,
        outcome: deletes ? 'provider-key-deleted' : 'superseded',
      });
      await audit.request();
      let admin: string | undefined;
      try {
        if (deletes) {
          const adapter = adapters.get(p.adapter!);
          if (!adapter)
            throw new StrongroomError('validation_failed', `unknown rotation adapter ${p.adapter}`);
          admin = await adminKey(a, p.options);
          await adapter.revoke({ adminKey: admin, options: p.options ?? {}, label: '' }, p.provider_key_id!);
        }
        await writer().transaction(async ({ own }) => {
          const s = await readState(own, path);
          s.pending = s.pending.filter(
            (x) => !(x.version === p.version && x.provider_key_id === p.provider_key_id),
          );
          s.superseded = [
            ...s.superseded,
            { version: p.version, at: iso(at), provider_key_deleted: deletes },
          ].slice(-SUPERSEDED_KEPT);
          await writeState(own, path, s);
        });
        countRotation('revocations');
        report.revoked.push(`${path}@${p.version}`);
        await audit.ok({});
      } catch (err) {
        countRotation('revocation_failures');
        const message = errorText(err, admin ? [admin] : []);
        await writer()
          .transaction(async ({ own }) => {
            const s = await readState(own, path);
            const x = s.pending.find(
              (y) => y.version === p.version && y.provider_key_id === p.provider_key_id,
            );
            if (!x) return;
            x.attempts += 1;
            x.last_error = message;
            x.next_attempt_at = iso(now() + backoffSeconds(x.attempts) * 1000);
            await writeState(own, path, s);
          })
          .catch(() => {});
        await audit.error(err instanceof StrongroomError ? err.code : 'internal', message);
      }
    }
  }

  async function runTick(): Promise<TickReport> {
    const report: TickReport = { leader: false, rotated: [], failed: [], revoked: [] };
    if (!core || core.barrier.sealed) return report;
    if (!(await takeLease())) return report;
    report.leader = true;
    const { own } = writer();
    for await (const { project, env, record: rec } of secrets().records()) {
      if (!rec.rotation?.adapter) continue;
      const a = { project, env, name: rec.name };
      const st = await readState(own, pathOf(a));
      if (!isDue(rec, st, now())) continue;
      // an audit sink failure stops the pass (fail closed); the next tick tries again
      await scheduledRotation(a, rec, report);
    }
    for (const key of await own.list(STATE)) await revokeDue(key.slice(STATE.length), report);
    return report;
  }

  const operations = (): AnyOperation[] => [
    implement(api.SecretRotate, {
      action: 'secret.rotate',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        if (i.value !== undefined && i.value === '') {
          throw new StrongroomError('validation_failed', 'the new value is empty');
        }
        const r = await rotate(
          { project: i.project, env: i.env, name: i.name },
          {
            trigger: 'api',
            ...(i.value === undefined ? {} : { value: i.value }),
            ...(i.force ? { force: true } : {}),
          },
        );
        countRotation('rotations');
        return r;
      },
    }),
    implement(api.SecretRotationStatus, {
      action: 'secret.history',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        const rec = await secrets().secret(i, { allowDeleted: true });
        const st = await readState(writer().own, pathOf(i));
        return {
          name: rec.name,
          rotation: rec.rotation ?? null,
          current_version: rec.current_version,
          last_rotated_at: rec.last_rotated_at ?? null,
          next_rotation_at:
            rec.rotation && rec.deleted_at === null
              ? st.failures > 0 && st.next_attempt_at
                ? st.next_attempt_at
                : iso(Date.parse(rec.last_rotated_at ?? rec.created_at) + rec.rotation.interval * 1000)
              : null,
          last_rotation_error: st.last_error,
          consecutive_failures: st.failures,
          pending_revocations: st.pending.map((p) => ({
            version: p.version,
            revoke_at: p.revoke_at,
            deletes_provider_key: p.provider_key_id !== null,
            attempts: p.attempts,
            last_error: p.last_error,
          })),
          superseded: st.superseded,
        };
      },
    }),
  ];

  const service: RotationService = {
    holderId,
    module: {
      name: 'rotation',
      // it writes audit entries of its own and counts nothing: it starts after audit and stops before it
      needs: ['audit', 'secrets'],
      operations(k) {
        core = k;
        attached = k.secretsWriter(ATTACH);
        return operations();
      },
      onUnseal: async () => service.start(),
      onSeal: () => void service.stop(),
      close: () => service.stop(),
    },
    rotate,
    tick() {
      // one pass at a time per server; a tick asked for during a pass shares it
      running ??= runTick().finally(() => {
        running = undefined;
      });
      return running;
    },
    start() {
      if (timer || intervalMs <= 0) return;
      timer = setInterval(() => {
        void service.tick().catch(() => {});
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => {});
      // hand the lease back so another server takes over at its next tick
      if (core && !core.barrier.sealed) {
        await writer()
          .transaction(async ({ own }) => {
            const l = await own.getJson<{ holder: string }>(LEASE);
            if (l?.holder === holderId) await own.delete(LEASE);
          })
          .catch(() => {});
      }
    },
  };
  return service;
}
