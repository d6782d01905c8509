import type { GatewayIdentity } from './self-identity.ts';
import type { RemoteStage } from './stages/remote.ts';
import { encodeProvenanceHeader, signStage } from './stages/signing.ts';
import { type ProvenanceLink, StageRefusal } from './types.ts';

/**
 * The provenance chain of a call (docs/stages.md).
 * - With remote stages: the request through them (mTLS, each verifying the chain so far and adding
 *   its link), then the gateway's own link over what goes upstream; and the output's link over what
 *   the client receives, chained to the request side.
 * - Without (the default): one link per call, stage `gateway`, over what the client receives, whose
 *   protected header carries the SHA-256 of what went upstream (`req`): one signature instead of
 *   two, the same facts bound (decision 0017).
 * Without a gateway identity there is no chain.
 */
export interface Provenance {
  /** The request side: the body that goes upstream (a transforming stage may rewrite its text) and its chain. */
  request(
    payload: string | undefined,
    body: Record<string, unknown>,
    traceId: string,
  ): Promise<{ payload: string | undefined; links: ProvenanceLink[] }>;
  /**
   * The output's link over `text`, chained to `links` (or, with no links, vouching for `payload`, the
   * request that went upstream), as the header value (undefined without an identity).
   */
  output(
    links: readonly ProvenanceLink[],
    traceId: string,
    text: string,
    payload: string | undefined,
  ): Promise<string | undefined>;
  close(): Promise<void>;
}

export function createProvenance(deps: {
  identity?: GatewayIdentity | undefined;
  /** Made once the identity is ready (the first call that needs them). */
  remoteStages?: (() => RemoteStage[]) | undefined;
}): Provenance {
  const { identity } = deps;
  let remotes: RemoteStage[] | undefined;

  async function request(payload: string | undefined, body: Record<string, unknown>, traceId: string) {
    let links: ProvenanceLink[] = [];
    if (payload === undefined || !identity) return { payload, links };
    await identity.ready();
    remotes ??= deps.remoteStages?.() ?? [];
    // no stage to pass the chain to: the output's link vouches for the request (one signature)
    if (!remotes.length) return { payload, links };
    let buf: Buffer = Buffer.from(payload);
    for (const remote of remotes) {
      const r = await remote.process({ body: buf, traceId, provenance: links });
      buf = r.body;
      links = r.provenance;
    }
    // a transforming stage may rewrite the text, never what the call is (it was authorized as such)
    let again: Record<string, unknown>;
    try {
      again = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new StageRefusal('gateway', 'stage_output_invalid', 'a stage returned a body that is not JSON');
    }
    if (again.model !== body.model || Boolean(again.stream) !== Boolean(body.stream)) {
      throw new StageRefusal(
        'gateway',
        'stage_output_invalid',
        'a stage changed the model or the stream flag',
      );
    }
    payload = buf.toString('utf8');
    links.push(
      await signStage({
        body: payload,
        stage: 'gateway',
        spiffeId: identity.spiffeId,
        traceId,
        prev: links.at(-1)?.jws ?? null,
        key: identity.key(),
      }),
    );
    return { payload, links };
  }

  async function output(
    links: readonly ProvenanceLink[],
    traceId: string,
    text: string,
    payload: string | undefined,
  ) {
    if (!identity) return undefined;
    if (!links.length) await identity.ready();
    return encodeProvenanceHeader([
      ...links,
      await signStage({
        body: text,
        stage: links.length ? 'output-filter' : 'gateway',
        spiffeId: identity.spiffeId,
        traceId,
        prev: links.at(-1)?.jws ?? null,
        key: identity.key(),
        request: links.length ? undefined : (payload ?? ''),
      }),
    ]);
  }

  return {
    request,
    output,
    async close() {
      await Promise.all((remotes ?? []).map((r) => r.close().catch(() => {})));
    },
  };
}
