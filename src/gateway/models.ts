import type { Span } from '@opentelemetry/api';
import type { FastifyReply } from 'fastify';
import type { RequestInfo, Resource } from '../contract/operation.ts';
import { authorizeCall } from './authorize.ts';
import type { CallDraft } from './call-context.ts';
import type { Endpoint } from './providers.ts';
import type { Recorder } from './record.ts';
import type { Routes } from './routing.ts';
import type { CallInfo } from './types.ts';
import type { GatewayVault, Session } from './vault-port.ts';

/**
 * GET /v1/models: the models this caller may call, from the routes (no upstream call: nothing
 * leaks, nothing to pay). Model globs are not listed.
 */
export async function listModels(
  deps: { vault: Pick<GatewayVault, 'authorize'>; routes: Pick<Routes, 'targets'>; recorder: Recorder },
  c: {
    ep: Endpoint;
    who: Session;
    call: CallDraft;
    info: RequestInfo;
    reply: FastifyReply;
    span: Span;
    ms: () => number;
  },
) {
  const { ep, who, call, info, reply, span, ms } = c;
  const data: { id: string; object: 'model'; created: number; owned_by: string }[] = [];
  const candidates: Resource[] = [];
  for (const t of deps.routes.targets.filter((x) => x.api === ep.api)) {
    for (const g of t.models) {
      if (g.includes('*')) continue;
      candidates.push({
        type: 'Model',
        id: `${t.provider}/${g}`,
        attrs: { provider: t.provider, model: g, route: 'models' },
      });
    }
  }
  // one question for the whole list (one round trip to a remote vault); a key's scope is the vault's to apply
  const decisions = await authorizeCall(deps.vault, who, candidates, info, call as CallInfo);
  candidates.forEach((r, i) => {
    if (decisions[i]?.allowed)
      data.push({
        id: r.attrs!.model as string,
        object: 'model',
        created: 0,
        owned_by: r.attrs!.provider as string,
      });
  });
  await deps.recorder.audit(call, who.identity, info.client_address, {
    allowed: true,
    reason: 'listed',
    status_code: 200,
    latency_ms: ms(),
  });
  span.end();
  return reply.code(200).send({ object: 'list', data });
}
