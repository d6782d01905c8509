import * as api from '../../api/bulk.ts';
import {
  type ImportAction,
  type ImportOutcome,
  type ImportProblem,
  MAX_IMPORT_ENTRIES,
  type OnConflict,
} from '../../api/bulk.ts';
import { MAX_SECRET_VALUE_BYTES } from '../../api/v1.ts';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import { implement, type OperationContext } from '../../contract/operation.ts';
import { type Scope, scopeAllows } from '../../contract/scope.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { formatProblem } from '../provider-catalog.ts';
import { fieldsFrom } from './fields.ts';
import { checkSlug, SECRET_NAME_RE } from './names.ts';
import type { EnvAddress, SecretFields, SecretRecord } from './records.ts';
import { type Allows, bulkSecretResource, envResource } from './resources.ts';
import { environment, readValue, type SecretWriter } from './secret-store.ts';

/**
 * Bulk import of an environment's secrets (issue 4, item 5; docs/import-export.md).
 *
 * An import is all or nothing: every entry is validated first, then every
 * write happens in ONE storage transaction that commits only after the last
 * entry; an invalid value, a conflict under `on_conflict: 'fail'`, a storage
 * error or a client that goes away (RequestInfo.signal) rolls all of it back.
 * Progress goes to RequestInfo.progress, which the server streams as NDJSON.
 */
type ImportInput = EnvAddress & api.ImportRequest;

/** At most this many problems are returned (the count says how many there were). */
const MAX_PROBLEMS_SHOWN = 1000;
/** Yield to the event loop this often, so progress lines flush and a disconnect is noticed. */
const YIELD_EVERY_MS = 25;

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

function failure(
  code: 'validation_failed' | 'invalid_value' | 'invalid_name' | 'already_exists' | 'permission_denied',
  problems: ImportProblem[],
  total: number,
): StrongroomError {
  const what: Record<string, string> = {
    validation_failed: 'invalid',
    invalid_value: 'invalid',
    invalid_name: 'invalid',
    already_exists: 'in conflict with existing secrets',
    permission_denied: "outside the token's scope",
  };
  const first = problems
    .slice(0, 3)
    .map((p) => `#${p.index + 1} ${p.name}: ${p.message}`)
    .join('; ');
  const n = problems.length;
  return new StrongroomError(
    code,
    `import refused, nothing was written: ${n} of ${total} ${n === 1 ? 'entry is' : 'entries are'} ${what[code]} (${first}${n > 3 ? '; …' : ''})`,
    {
      details: {
        // `public` details reach the client (src/server/app.ts); the rest only the server log
        public: { problems: problems.slice(0, MAX_PROBLEMS_SHOWN), problem_count: n },
      },
    },
  );
}

/** The code an import fails with, from its problems (the most specific one). */
function failureCode(problems: ImportProblem[]) {
  if (problems.some((p) => p.code === 'out_of_scope')) return 'permission_denied' as const;
  if (problems.some((p) => p.code === 'invalid_value')) return 'invalid_value' as const;
  if (problems.some((p) => p.code !== 'conflict')) return 'validation_failed' as const;
  return 'already_exists' as const;
}

/** Reports progress at most every YIELD_EVERY_MS, yielding to the event loop each time. */
function ticker(ctx: OperationContext, phase: 'validate' | 'write', total: number) {
  let last = performance.now();
  const abortIfGone = () => {
    if (ctx.request.signal?.aborted) {
      throw new StrongroomError('bad_request', 'the client went away during the import; nothing was written');
    }
  };
  ctx.request.progress?.({ phase, done: 0, total });
  return {
    async tick(done: number) {
      if (performance.now() - last < YIELD_EVERY_MS) return;
      await new Promise((r) => setImmediate(r));
      last = performance.now();
      abortIfGone();
      ctx.request.progress?.({ phase, done, total });
    },
    done() {
      abortIfGone();
      ctx.request.progress?.({ phase, done: total, total });
    },
  };
}

type Changed = (e: { project: string; env: string; name: string; kind: 'write'; version: number }) => void;

/** One import, validated: what phase 2 plans and writes. */
interface Plan {
  ctx: OperationContext;
  i: ImportInput;
  scope: Readonly<Scope> | null;
  onConflict: OnConflict;
  /** The checked fields of each entry. */
  fields: Partial<SecretFields>[];
  /** Filled by both phases; any problem refuses the whole import. */
  problems: ImportProblem[];
}

/** Phase 1: validates every entry without touching storage (but for policy decisions). */
async function validateEntries(plan: Plan, allows: Allows): Promise<void> {
  const { ctx, i, scope, fields, problems } = plan;
  const entries = i.secrets;
  const total = entries.length;
  const seen = new Map<string, number>();
  const validate = ticker(ctx, 'validate', total);
  for (let n = 0; n < total; n++) {
    const e = entries[n]!;
    const bad = (code: ImportProblem['code'], message: string) =>
      problems.push({ index: n, name: e.name, code, message });
    if (!SECRET_NAME_RE.test(e.name)) {
      bad(
        'invalid_name',
        "invalid secret name: use letters, digits, '_', '.' and '-', starting with a letter or '_', at most 128 characters",
      );
      continue;
    }
    const prior = seen.get(e.name);
    if (prior !== undefined) bad('duplicate', `the name is also entry #${prior + 1}`);
    seen.set(e.name, n);
    const bytes = Buffer.byteLength(e.value, 'utf8');
    if (bytes > MAX_SECRET_VALUE_BYTES) {
      bad('invalid_value', `the value is ${bytes} bytes; at most ${MAX_SECRET_VALUE_BYTES} are allowed`);
    }
    try {
      fields[n] = fieldsFrom(e);
    } catch (err) {
      bad('validation_failed', (err as Error).message);
      continue;
    }
    const provider = fields[n]!.provider;
    if (provider && !i.force) {
      const p = formatProblem(provider, e.value);
      if (p) bad('invalid_value', p);
    }
    // the name against the scope's paths here; its provider once the current record is known
    if (scope?.paths && !scopeAllows({ paths: scope.paths }, bulkSecretResource(i, e.name, null))) {
      bad('out_of_scope', "the token's scope does not reach this secret");
    } else if (
      ctx.identity &&
      !(await allows(ctx.identity, 'secret.write', bulkSecretResource(i, e.name, null), ctx.request))
    ) {
      // the environment-wide grant does not override a policy about this secret
      bad('out_of_scope', 'no policy lets this token write this secret');
    }
    await validate.tick(n + 1);
  }
  validate.done();
}

/** What an entry does to a secret that exists: nothing, skip it (a conflict under `fail`) or update it. */
async function existingAction(
  r: BarrierWriter,
  plan: Plan,
  n: number,
  rec: Readonly<SecretRecord>,
  bad: (code: ImportProblem['code'], message: string) => void,
): Promise<ImportAction> {
  const { i, onConflict } = plan;
  const e = i.secrets[n]!;
  const current =
    rec.deleted_at === null
      ? await readValue(r, `${i.project}/${i.env}/${e.name}`, rec.current_version).catch(() => null)
      : null;
  const fieldsSame =
    Object.entries(plan.fields[n]!).every(([k, v]) => same(rec[k as keyof SecretRecord], v)) &&
    (e.metadata === undefined || same(rec.metadata, e.metadata));
  if (current === e.value && fieldsSame) return 'unchanged';
  if (onConflict === 'skip') return 'skip';
  if (onConflict === 'fail') {
    bad(
      'conflict',
      rec.deleted_at === null
        ? `exists (version ${rec.current_version}) with another value or other fields`
        : 'exists (deleted)',
    );
    return 'skip';
  }
  return 'update';
}

/** Phase 2: plans every entry against what is stored and, given `changed` (a transaction), writes it. */
async function planAndWrite(
  writer: Pick<SecretWriter, 'appendVersion'>,
  plan: Plan,
  r: BarrierWriter,
  changed?: Changed,
): Promise<ImportOutcome[]> {
  const { ctx, i, scope, problems } = plan;
  const entries = i.secrets;
  const total = entries.length;
  const outcomes: ImportOutcome[] = new Array(total);
  const write = ticker(ctx, 'write', total);
  for (let n = 0; n < total; n++) {
    const e = entries[n]!;
    const f = plan.fields[n]!;
    const bad = (code: ImportProblem['code'], message: string) =>
      problems.push({ index: n, name: e.name, code, message });
    const rec = await r.getJson<SecretRecord>(`meta/${i.project}/${i.env}/${e.name}`);
    const action: ImportAction = rec ? await existingAction(r, plan, n, rec, bad) : 'create';
    const provider = f.provider !== undefined ? f.provider : (rec?.provider ?? null);
    if (action === 'create' || action === 'update') {
      // a provider-limited scope must reach the secret as it will be (its provider after the write)
      if (!scopeAllows(scope, bulkSecretResource(i, e.name, provider))) {
        bad('out_of_scope', "the token's scope does not reach this secret (its provider)");
      } else if (provider && !i.force && f.provider === undefined) {
        const p = formatProblem(provider, e.value);
        if (p) bad('invalid_value', p);
      }
    }
    if (problems.length === 0 && changed && (action === 'create' || action === 'update')) {
      const out = await writer.appendVersion(r, { project: i.project, env: i.env, name: e.name }, e.value, {
        source: 'write',
        fields: f,
        ...(e.metadata === undefined ? {} : { metadata: e.metadata }),
        ...(i.force ? { force: true } : {}),
      });
      changed({ project: i.project, env: i.env, name: e.name, kind: 'write', version: out.version });
      outcomes[n] = { name: e.name, action, version: out.version };
    } else {
      const version =
        action === 'create' ? 1 : action === 'update' ? rec!.current_version + 1 : rec?.current_version;
      outcomes[n] = { name: e.name, action, ...(version === undefined ? {} : { version }) };
    }
    await write.tick(n + 1);
  }
  write.done();
  if (problems.length > 0) throw failure(failureCode(problems), problems, total);
  return outcomes;
}

/** `secret.import`: many secrets into one environment, all or nothing. */
export function importOperation(deps: {
  store: BarrierStore;
  writer: Pick<SecretWriter, 'appendVersion' | 'changing'>;
  allows: Allows;
}) {
  const { store, writer } = deps;
  return implement(api.SecretImport, {
    action: 'secret.import',
    auth: 'token',
    resource: envResource,
    async handle(ctx, i) {
      checkSlug('project', i.project);
      checkSlug('environment', i.env);
      const onConflict: OnConflict = i.on_conflict ?? 'fail';
      const dryRun = i.dry_run === true;
      const total = i.secrets.length;
      if (total > MAX_IMPORT_ENTRIES) {
        throw new StrongroomError(
          'validation_failed',
          `an import may hold at most ${MAX_IMPORT_ENTRIES} secrets; this one has ${total}: split the file`,
        );
      }
      await environment(store, i);
      const plan: Plan = {
        ctx,
        i,
        scope: ctx.identity?.scope ?? null,
        onConflict,
        fields: new Array(total),
        problems: [],
      };
      await validateEntries(plan, deps.allows);
      if (plan.problems.length > 0) throw failure(failureCode(plan.problems), plan.problems, total);

      // phase 2 in one transaction (or, for a dry run, plan only)
      let outcomes: ImportOutcome[];
      let committed = false;
      if (dryRun) {
        outcomes = await planAndWrite(writer, plan, store);
      } else {
        outcomes = await writer.changing(async (tx, changed) => {
          plan.problems.length = 0; // a retried transaction starts over
          const out = await planAndWrite(writer, plan, tx, changed);
          ctx.request.progress?.({ phase: 'commit', done: total, total });
          // the last moment a disconnect can still cancel everything
          if (ctx.request.signal?.aborted) {
            throw new StrongroomError(
              'bad_request',
              'the client went away before the commit; nothing was written',
            );
          }
          return out;
        });
        committed = outcomes.some((o) => o.action === 'create' || o.action === 'update');
      }
      const counts = { total, create: 0, update: 0, skip: 0, unchanged: 0 };
      for (const o of outcomes) counts[o.action]++;
      return {
        project: i.project,
        env: i.env,
        dry_run: dryRun,
        committed,
        on_conflict: onConflict,
        counts,
        entries: outcomes,
      };
    },
  });
}
