import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { type StaticSvidSource, staticSvidSource } from '../spiffe/svid-source.ts';
import type { StageKey } from './stages/signing.ts';

/** Issues an X.509-SVID for a key of this process (the vault's identity engine, `issueSelf`). */
export type SelfIssuer = (
  spiffeId: string,
  publicKey: KeyObject,
  ttlSeconds: number,
) => Promise<{ certificate: string; bundles: Map<string, X509Certificate[]>; expires_at: string }>;

/**
 * The gateway's own workload identity: a key made in memory, an X.509-SVID
 * from the in-process CA, renewed at half its lifetime. It signs the
 * in-process stages' provenance links and authenticates the gateway to
 * remote stages over mTLS.
 */
export interface GatewayIdentity {
  readonly spiffeId: string;
  /** For mTLS clients and servers (rotates in place). */
  readonly source: StaticSvidSource;
  /** The current signing key and chain. */
  key(): StageKey;
  close(): void;
}

export async function createGatewayIdentity(
  spiffeId: string,
  issue: SelfIssuer,
  opts: { ttlSeconds?: number; onError?: (err: Error) => void } = {},
): Promise<GatewayIdentity> {
  const ttl = opts.ttlSeconds ?? 3600;
  async function fresh() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const svid = await issue(spiffeId, publicKey, ttl);
    return {
      chain: svid.certificate,
      privateKey,
      bundles: svid.bundles,
      expiresAt: Date.parse(svid.expires_at),
    };
  }
  let cur = await fresh();
  const source = staticSvidSource({ chain: cur.chain, privateKey: cur.privateKey, bundles: cur.bundles });
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    timer = setTimeout(
      async () => {
        try {
          cur = await fresh();
          source.set({ chain: cur.chain, privateKey: cur.privateKey, bundles: cur.bundles });
          schedule((cur.expiresAt - Date.now()) / 2);
        } catch (err) {
          opts.onError?.(err as Error);
          schedule(Math.min(30_000, Math.max(1_000, (cur.expiresAt - Date.now()) / 4)));
        }
      },
      Math.max(1_000, ms),
    );
    timer.unref();
  };
  schedule((cur.expiresAt - Date.now()) / 2);
  return {
    spiffeId,
    source,
    key: () => ({ privateKey: source.current().privateKey, chain: source.current().chain }),
    close() {
      clearTimeout(timer);
      source.close();
    },
  };
}
