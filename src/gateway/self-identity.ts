import { generateKeyPairSync, type KeyObject, type X509Certificate } from 'node:crypto';
import { type StaticSvidSource, type SvidSource, staticSvidSource } from '../spiffe/svid-source.ts';
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
  /** Obtains the first SVID (the vault must be unsealed); later calls return at once. */
  ready(): Promise<void>;
  /** For mTLS clients and servers (rotates in place). */
  readonly source: SvidSource;
  /** The current signing key and chain. */
  key(): StageKey;
  close(): void;
}

export function createGatewayIdentity(
  spiffeId: string,
  issue: SelfIssuer,
  opts: { ttlSeconds?: number; onError?: (err: Error) => void } = {},
): GatewayIdentity {
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
  let cur: Awaited<ReturnType<typeof fresh>> | undefined;
  let source: StaticSvidSource | undefined;
  let starting: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (ms: number) => {
    timer = setTimeout(
      async () => {
        try {
          cur = await fresh();
          source!.set({ chain: cur.chain, privateKey: cur.privateKey, bundles: cur.bundles });
          schedule((cur.expiresAt - Date.now()) / 2);
        } catch (err) {
          opts.onError?.(err as Error);
          schedule(Math.min(30_000, Math.max(1_000, (cur!.expiresAt - Date.now()) / 4)));
        }
      },
      Math.max(1_000, ms),
    );
    timer.unref();
  };
  // the SVID is obtained on first use, not at start: the vault may start sealed
  function ready(): Promise<void> {
    if (source) return Promise.resolve();
    starting ??= (async () => {
      cur = await fresh();
      source = staticSvidSource({ chain: cur.chain, privateKey: cur.privateKey, bundles: cur.bundles });
      if (!closed) schedule((cur.expiresAt - Date.now()) / 2);
    })().finally(() => {
      starting = undefined;
    });
    return starting;
  }
  const current = () => {
    if (!source) throw new TypeError('the gateway identity is not ready: await ready() first');
    return source;
  };
  return {
    spiffeId,
    ready,
    get source() {
      return current();
    },
    key: () => ({ privateKey: current().current().privateKey, chain: current().current().chain }),
    close() {
      closed = true;
      clearTimeout(timer);
      source?.close();
    },
  };
}
