import * as api from '../api/v1.ts';
import type { Identity, TokenEntry } from '../contract/identity.ts';
import { identityOf } from '../contract/identity.ts';
import type { VaultModule } from '../contract/module.ts';
import { implement, type Resource } from '../contract/operation.ts';
import { scopeAllows } from '../contract/scope.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import type { PolicyEngine } from './engine.ts';
import { UNSCOPED_ACTIONS } from './schema.ts';

/** What the policy operations need (the assembler hands over the core, which has them). */
export interface PolicyOpsDeps {
  policies: Pick<PolicyEngine, 'put' | 'get' | 'list' | 'delete' | 'explain'>;
  tokens: { lookupAccessor(accessor: string): Promise<TokenEntry | undefined> };
  /** The pipeline's describe step: what policies see of a resource. */
  describe(resource: Resource): Promise<Resource>;
  clock: Clock;
}

/** Custom Cedar policies: put (validated against the schema), read, list, delete and test. */
const POLICIES: Resource = { type: 'System', id: 'policies' };

/** Parses `Secret:proj/env/NAME`, `Environment:proj/env`, `Project:proj`, `System:x`, or a bare `proj/env/NAME`. */
function parseResource(spec: string): Resource {
  const m = /^(?:(Secret|Environment|Project|System|User|App|Token):)?(.+)$/.exec(spec);
  if (!m) throw new StrongroomError('validation_failed', 'resource must look like Secret:PROJECT/ENV/NAME');
  const id = m[2]!;
  const parts = id.split('/');
  const type = (m[1] ??
    ['Project', 'Environment', 'Secret'][parts.length - 1] ??
    'System') as Resource['type'];
  const base =
    type === 'Secret'
      ? { project: parts[0], environment: parts[1], name: parts[2] }
      : type === 'Environment'
        ? { project: parts[0], environment: parts[1] }
        : type === 'Project'
          ? { project: parts[0] }
          : {};
  return { type, id, attrs: base };
}

/** Custom Cedar policies as a module. */
export const policiesModule: VaultModule<PolicyOpsDeps> = {
  name: 'policies',
  operations: (deps) => policyOperations(deps),
};

function policyOperations(deps: PolicyOpsDeps) {
  return [
    implement(api.PolicyPut, {
      action: 'policy.write',
      auth: 'token',
      resource: () => POLICIES,
      handle: async (_ctx, i) => deps.policies.put(i.name, i.policy),
    }),
    implement(api.PolicyGet, {
      action: 'policy.read',
      auth: 'token',
      resource: () => POLICIES,
      async handle(_ctx, i) {
        const policy = await deps.policies.get(i.name);
        if (policy === undefined)
          throw new StrongroomError('not_found', `no policy named ${JSON.stringify(i.name)}`);
        return { name: i.name, policy };
      },
    }),
    implement(api.PolicyList, {
      action: 'policy.read',
      auth: 'token',
      resource: () => POLICIES,
      handle: async () => ({ policies: await deps.policies.list() }),
    }),
    implement(api.PolicyDelete, {
      action: 'policy.write',
      auth: 'token',
      resource: () => POLICIES,
      async handle(_ctx, i) {
        if (!(await deps.policies.delete(i.name)))
          throw new StrongroomError('not_found', `no policy named ${JSON.stringify(i.name)}`);
        return { deleted: i.name };
      },
    }),
    implement(api.PolicyTest, {
      action: 'policy.test',
      auth: 'token',
      resource: () => POLICIES,
      async handle(ctx, i) {
        let identity: Identity;
        if (i.accessor) {
          const e = await deps.tokens.lookupAccessor(i.accessor);
          if (!e) throw new StrongroomError('not_found', 'no live token has that accessor');
          identity = identityOf(e);
        } else if (i.principal) {
          const owner = i.principal.user
            ? { type: 'user' as const, id: i.principal.user, name: i.principal.user }
            : i.principal.app
              ? { type: 'app' as const, id: i.principal.app, name: i.principal.app }
              : { type: 'token' as const, id: 'policy-test', name: 'policy-test' };
          identity = {
            kind: 'token',
            accessor: 'policy-test',
            display_name: 'policy-test',
            policies: i.principal.roles,
            owner,
            scope: null,
            mfa: i.principal.mfa ?? false,
          };
        } else {
          throw new StrongroomError(
            'validation_failed',
            'give a principal (roles, user or app) or a token accessor',
          );
        }
        // described like a real request (production flag, provider, tags), then any attributes given override
        const parsed = parseResource(i.resource);
        const described = await deps.describe(parsed);
        const resource = { ...described, attrs: { ...described.attrs, ...(i.resource_attrs ?? {}) } };
        if (!UNSCOPED_ACTIONS.has(i.action) && !scopeAllows(identity.scope, resource)) {
          return { decision: 'deny', reason: "outside the token's scope", policies: [], errors: [] };
        }
        const out = deps.policies.explain(identity, i.action, resource, {
          client_address: i.client_address ?? ctx.request.client_address,
          now: deps.clock.now(),
        });
        return {
          decision: out.allowed ? 'allow' : 'deny',
          reason: out.reason,
          policies: out.policies,
          errors: out.errors,
        };
      },
    }),
  ];
}
