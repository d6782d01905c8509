import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as api from '../../api/wrapping.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { AuditEntry } from '../../contract/audit.ts';
import type { VaultModule } from '../../contract/module.ts';
import {
  type AnyOperation,
  implement,
  type OperationContext,
  type Resource,
} from '../../contract/operation.ts';
import { generateToken, isWellFormedToken, TOKEN_PREFIXES } from '../../crypto/token.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { MetricsRegistry } from '../../lib/metrics.ts';
import type { ClockPort } from '../ports.ts';

export type WrappingDeps = ClockPort & {
  audit(entry: Omit<AuditEntry, 'time'> & { time?: string }): Promise<void>;
  metrics: MetricsRegistry;
};

const WRAPPING_MOUNT = 'sys/wrapping/';
const OWN: Resource = { type: 'Token', id: 'wrapping' };
const PUBLIC: Resource = { type: 'System', id: 'wrapping' };
/** A spent token's tombstone is kept this long past its TTL, so a late second unwrap is still seen as one. */
const TOMBSTONE_MS = 3600_000;

interface Wrapped {
  accessor: string;
  creation_path: string;
  creation_time: string;
  ttl: number;
  /** The wrapped answer; absent once unwrapped (the record is then the token's tombstone). */
  value?: string;
  unwrapped_at?: string;
  /** Who wrapped it (token accessor). */
  wrapped_by: string;
}

const invalid = () =>
  new StrongroomError(
    'invalid_wrapping_token',
    'the wrapping token is unknown, expired or already unwrapped: if you did not unwrap it, treat what it wrapped as intercepted and revoke it',
  );

/** Where a wrapping token's record is: only a digest of the token is stored. */
function pathOf(token: string | undefined): string {
  if (
    typeof token !== 'string' ||
    !token.startsWith(`${TOKEN_PREFIXES.wrapping}_`) ||
    !isWellFormedToken(token)
  ) {
    throw invalid();
  }
  return `w/${createHash('sha256').update(token).digest('hex')}`;
}

const tokenOf = (ctx: OperationContext, i: api.WrappingTokenRequest) => i.token ?? ctx.request.token;

/**
 * Response wrapping (issue 16, item 4; docs/wrapping.md): a read answered with a single-use token
 * instead of its value. The answer is sealed in the barrier under a digest of the token; unwrap
 * spends it in one transaction (of 100 concurrent unwraps exactly one gets the value) and leaves a
 * tombstone, so a second unwrap is refused and audited as a possible interception.
 */
export function wrappingModule(): VaultModule<WrappingDeps, BarrierStore> {
  let deps: WrappingDeps | undefined;
  let store: BarrierStore | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  const now = () => deps!.clock.now();
  const interceptions = () =>
    deps!.metrics.counter(
      'strongroom_wrapping_interceptions_total',
      'Unwraps of a wrapping token that was already unwrapped (possible interception)',
    );

  /** Spent and expired tokens go (a minute's pass; only wrapping records are listed). */
  async function tidy() {
    const at = now();
    for (const p of await store!.list('w/')) {
      const w = await store!.getJson<Wrapped>(p);
      if (!w) continue;
      const end = Date.parse(w.creation_time) + w.ttl * 1000 + (w.value === undefined ? TOMBSTONE_MS : 0);
      if (end < at) await store!.delete(p);
    }
  }

  function operations(): AnyOperation[] {
    return [
      implement(api.WrappingWrap, {
        action: 'wrapping.wrap',
        auth: 'token',
        resource: () => OWN,
        async handle(ctx, i) {
          if (!Number.isInteger(i.ttl) || i.ttl < api.WRAP_TTL_MIN || i.ttl > api.WRAP_TTL_MAX) {
            throw new StrongroomError(
              'invalid_value',
              `a wrapping TTL is from ${api.WRAP_TTL_MIN} s to 24 h`,
            );
          }
          const token = generateToken(TOKEN_PREFIXES.wrapping);
          const w: Wrapped = {
            accessor: randomBytes(12).toString('hex'),
            creation_path: i.creation_path.slice(0, 512),
            creation_time: new Date(now()).toISOString(),
            ttl: i.ttl,
            value: i.value,
            wrapped_by: ctx.identity?.accessor ?? 'unknown',
          };
          await store!.put(pathOf(token), Buffer.from(JSON.stringify(w)));
          return {
            wrap_info: {
              token,
              accessor: w.accessor,
              ttl: w.ttl,
              creation_time: w.creation_time,
              creation_path: w.creation_path,
            },
          };
        },
      }),
      implement(api.WrappingUnwrap, {
        action: 'wrapping.unwrap',
        auth: 'none',
        resource: () => PUBLIC,
        async handle(ctx, i) {
          const path = pathOf(tokenOf(ctx, i));
          const at = now();
          const out = await store!.transaction(async (tx) => {
            const w = await tx.getJson<Wrapped>(path);
            if (!w || Date.parse(w.creation_time) + w.ttl * 1000 <= at) return { w, value: undefined };
            if (w.value === undefined) return { w, value: undefined };
            const { value, ...rest } = w;
            await tx.put(
              path,
              Buffer.from(JSON.stringify({ ...rest, unwrapped_at: new Date(at).toISOString() })),
            );
            return { w, value };
          });
          if (out.value === undefined) {
            if (out.w && out.w.value === undefined) {
              // spent already: someone else holds what it wrapped
              interceptions().inc();
              await deps!.audit({
                type: 'response',
                request_id: ctx.request.request_id ?? `wrapping-${randomUUID()}`,
                operation: 'wrapping.unwrap',
                action: 'wrapping.unwrap',
                resource: `Wrapping::${out.w.accessor}`,
                actor: null,
                client_address: ctx.request.client_address,
                status: 'error',
                error_code: 'possible_interception',
                request: {
                  alert: 'possible_interception',
                  accessor: out.w.accessor,
                  creation_path: out.w.creation_path,
                  unwrapped_at: out.w.unwrapped_at ?? null,
                },
              });
            }
            throw invalid();
          }
          return JSON.parse(out.value) as Record<string, unknown>;
        },
      }),
      implement(api.WrappingLookup, {
        action: 'wrapping.unwrap',
        auth: 'none',
        resource: () => PUBLIC,
        async handle(ctx, i) {
          const w = await store!.getJson<Wrapped>(pathOf(tokenOf(ctx, i)));
          if (!w || w.value === undefined || Date.parse(w.creation_time) + w.ttl * 1000 <= now())
            throw invalid();
          return { creation_path: w.creation_path, creation_time: w.creation_time, creation_ttl: w.ttl };
        },
      }),
    ];
  }

  return {
    name: 'wrapping',
    needs: ['audit'],
    mount: WRAPPING_MOUNT,
    operations(k, st) {
      deps = k;
      store = st;
      return operations();
    },
    async onUnseal() {
      sweeper = setInterval(() => void tidy().catch(() => {}), 60_000);
      sweeper.unref();
    },
    onSeal() {
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
    },
    async close() {
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
    },
  };
}
