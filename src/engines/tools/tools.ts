import * as api from '../../api/tools.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { LeasesPort } from '../leases/leases.ts';
import type { ClockPort } from '../ports.ts';

export type ToolsDeps = ClockPort & LeasesPort;

const SYSTEM: Resource = { type: 'System', id: 'tools' };
const DEFAULT_TTL = 300;

interface ToolRecord {
  name: string;
  operations: Record<string, { engine: 'database' | 'provider-keys'; role: string }>;
  ttl: number;
  description: string;
  updated_at: string;
}

const toolPath = (name: string) => `tools/${name}`;

/**
 * Per-tool credentials (issue 16, item 7; docs/tools.md): a registry of tools, each operation of a tool
 * naming the engine role its credential comes from. A workload or token asks for a credential for one
 * tool and one operation; Cedar decides `tool.credential` on `Tool::"<name>"` with the operation in
 * `context.operation`, and the credential lives minutes, under a lease held by the caller.
 */
export function toolsModule(): VaultModule<ToolsDeps, BarrierStore> {
  let deps: ToolsDeps | undefined;
  let store: BarrierStore | undefined;

  async function tool(name: string): Promise<ToolRecord> {
    const t = await store!.getJson<ToolRecord>(toolPath(name));
    if (!t) throw new StrongroomError('not_found', `no tool named ${JSON.stringify(name)}`);
    return t;
  }

  function operations(): AnyOperation[] {
    return [
      implement(api.ToolWrite, {
        action: 'tool.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          for (const [op, target] of Object.entries(i.operations)) {
            if (!deps!.issuers.get(target.engine)) {
              throw new StrongroomError(
                'invalid_value',
                `operation ${op}: no credential engine named ${target.engine}`,
              );
            }
          }
          const t: ToolRecord = {
            name: i.tool,
            operations: i.operations,
            ttl: i.ttl ?? DEFAULT_TTL,
            description: i.description ?? '',
            updated_at: new Date(deps!.clock.now()).toISOString(),
          };
          await store!.put(toolPath(i.tool), Buffer.from(JSON.stringify(t)));
          return t;
        },
      }),
      implement(api.ToolRead, {
        action: 'tool.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async (_ctx, i) => tool(i.tool),
      }),
      implement(api.ToolList, {
        action: 'tool.read',
        auth: 'token',
        resource: () => SYSTEM,
        handle: async () => ({ names: (await store!.list('tools/')).map((p) => p.slice('tools/'.length)) }),
      }),
      implement(api.ToolDelete, {
        action: 'tool.manage',
        auth: 'token',
        resource: () => SYSTEM,
        async handle(_ctx, i) {
          const had = (await store!.get(toolPath(i.tool))) !== undefined;
          await store!.delete(toolPath(i.tool));
          return { deleted: had };
        },
      }),
      implement(api.ToolCredential, {
        action: 'tool.credential',
        auth: 'token',
        resource: (i) => ({ type: 'Tool', id: i.tool }),
        context: (i) => ({ operation: i.operation, ...(i.tenant !== undefined ? { tenant: i.tenant } : {}) }),
        async handle(ctx, i) {
          const t = await tool(i.tool);
          const target = Object.hasOwn(t.operations, i.operation) ? t.operations[i.operation] : undefined;
          if (!target) {
            throw new StrongroomError(
              'validation_failed',
              `the tool ${t.name} has no operation ${JSON.stringify(i.operation)}`,
            );
          }
          const issue = deps!.issuers.get(target.engine);
          if (!issue) throw new StrongroomError('not_found', `no credential engine named ${target.engine}`);
          const c = await issue(ctx, target.role, {
            ttl: t.ttl,
            // renewals too stay within the tool's minutes
            maxTtl: t.ttl,
            ...(i.tenant !== undefined ? { tenant: i.tenant } : {}),
          });
          return { tool: t.name, operation: i.operation, ...c, data: c.data as Record<string, string> };
        },
      }),
    ];
  }

  return {
    name: 'tools',
    needs: ['leases', 'database', 'provider-keys'],
    mount: 'logical/tools/',
    operations(k, st) {
      deps = k;
      store = st;
      return operations();
    },
  };
}
