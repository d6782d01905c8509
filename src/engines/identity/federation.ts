import * as api from '../../api/identity.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import {
  bundleMaps,
  parseSpiffeBundle,
  parseTrustDomain,
  type SpiffeBundle,
  toKeyObject,
  toSpiffeBundle,
} from '../../spiffe/index.ts';
import { bundleDocument, type CertificateAuthority, wireBundle } from './ca.ts';
import { bad, identitySystem, isoTime } from './inputs.ts';

/**
 * Federation: bundles of other trust domains (e.g. a SPIRE server's) that let
 * their SVIDs in, each kept at `federation/<trust domain>`, and the trust maps
 * (ours and theirs) every verification of an SVID uses.
 */

interface FederationRecord {
  trust_domain: string;
  /** The bundle (SPIFFE bundle JSON) as configured or last fetched. */
  bundle: string;
  bundle_url?: string;
  updated_at: string;
}

/** Every trust domain's authorities, as SVID verification takes them. */
export type TrustMaps = ReturnType<typeof bundleMaps>;

export interface TrustedBundles {
  /** The federated bundles that parse (a few seconds old at most). */
  federated(): Promise<SpiffeBundle[]>;
  /** X.509 and JWT authorities of every trusted trust domain: ours and the federated ones. */
  trustMaps(): Promise<TrustMaps>;
  /** Forgets the parsed federated bundles (after a change of federation). */
  forget(): void;
  /** The stored federation records. */
  records(): Promise<FederationRecord[]>;
}

export function createTrustedBundles(deps: {
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  ca: CertificateAuthority;
}): TrustedBundles {
  const { store, clock, trustDomain, ca } = deps;

  async function records(): Promise<FederationRecord[]> {
    const names = await store.list('federation/');
    const out: FederationRecord[] = [];
    for (const n of names) {
      const r = await store.getJson<FederationRecord>(n);
      if (r) out.push(r);
    }
    return out;
  }

  let cache: { at: number; bundles: SpiffeBundle[] } | undefined;
  async function federated(): Promise<SpiffeBundle[]> {
    if (cache && clock.now() - cache.at < 5_000) return cache.bundles;
    const out: SpiffeBundle[] = [];
    for (const f of await records()) {
      try {
        out.push(parseSpiffeBundle(f.bundle, f.trust_domain));
      } catch {
        // a bundle that no longer parses trusts nothing (fail closed)
      }
    }
    cache = { at: clock.now(), bundles: out };
    return out;
  }

  async function trustMaps(): Promise<TrustMaps> {
    const c = await ca.current();
    const own: SpiffeBundle = {
      trustDomain,
      x509Authorities: c.x509Authorities,
      jwtAuthorities: c.jwtAuthorities.map((a) => ({ kid: a.kid, publicKey: toKeyObject(a.publicKey) })),
      sequence: c.sequence,
      refreshHint: undefined,
    } as SpiffeBundle;
    return bundleMaps([own, ...(await federated())]);
  }

  return {
    federated,
    trustMaps,
    records,
    forget: () => {
      cache = undefined;
    },
  };
}

function trustDomainOf(text: string): string {
  try {
    return parseTrustDomain(text);
  } catch (err) {
    throw bad('invalid_value', `trust_domain: ${(err as Error).message}`);
  }
}

async function fetchBundle(url: string): Promise<string> {
  if (!/^https:\/\//.test(url)) throw bad('invalid_value', 'bundle_url: must be https://');
  try {
    const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.text();
  } catch (err) {
    throw new StrongroomError('provider_error', `cannot fetch ${url}: ${(err as Error).message}`);
  }
}

export interface FederationDeps {
  store: BarrierStore;
  clock: Clock;
  trustDomain: string;
  ca: CertificateAuthority;
  bundles: TrustedBundles;
  /** Default X.509-SVID lifetime (seconds): the refresh hint of our own bundle. */
  x509Ttl: number;
  /** Called after a change of federation: verified JWT-SVIDs must be verified again. */
  onTrustChange: () => void;
}

/** `identity.federation.*` and `identity.bundles` (every bundle this server trusts). */
export function federationOperations(deps: FederationDeps) {
  const { store, clock, trustDomain, ca, bundles } = deps;

  const federate = implement(api.IdentityFederationPut, {
    action: 'identity.federate',
    auth: 'token',
    resource: identitySystem,
    async handle(_ctx, i) {
      const td = trustDomainOf(i.trust_domain);
      if (td === trustDomain)
        throw bad('invalid_value', "trust_domain: that is this server's own trust domain");
      if ((i.bundle === undefined) === (i.bundle_url === undefined)) {
        throw bad('invalid_value', 'give exactly one of bundle (SPIFFE bundle JSON) and bundle_url');
      }
      const text = i.bundle_url !== undefined ? await fetchBundle(i.bundle_url) : i.bundle!;
      let parsed: SpiffeBundle;
      try {
        parsed = parseSpiffeBundle(text, td);
      } catch (err) {
        throw bad('invalid_value', `bundle: ${(err as Error).message}`);
      }
      const rec: FederationRecord = {
        trust_domain: td,
        bundle: text,
        ...(i.bundle_url ? { bundle_url: i.bundle_url } : {}),
        updated_at: isoTime(clock.now()),
      };
      await store.put(`federation/${td}`, Buffer.from(JSON.stringify(rec)));
      bundles.forget();
      // a key the new bundle no longer holds must stop vouching at once
      deps.onTrustChange();
      return {
        trust_domain: td,
        x509_authorities: parsed.x509Authorities.length,
        jwt_authorities: parsed.jwtAuthorities.length,
        updated_at: rec.updated_at,
      };
    },
  });

  const federationList = implement(api.IdentityFederationList, {
    action: 'identity.read',
    auth: 'token',
    resource: identitySystem,
    async handle() {
      return {
        federations: (await bundles.records()).map((f) => ({
          trust_domain: f.trust_domain,
          bundle_url: f.bundle_url ?? null,
          updated_at: f.updated_at,
        })),
      };
    },
  });

  const federationDelete = implement(api.IdentityFederationDelete, {
    action: 'identity.federate',
    auth: 'token',
    resource: identitySystem,
    async handle(_ctx, i) {
      const td = trustDomainOf(i.trust_domain);
      const path = `federation/${td}`;
      if (!(await store.get(path)))
        throw new StrongroomError('not_found', `no federation with ${i.trust_domain}`);
      await store.delete(path);
      bundles.forget();
      deps.onTrustChange();
      return { deleted: td };
    },
  });

  // Every bundle this server trusts, its own first, as SPIFFE bundle documents: what a relying party
  // (the agent's Workload API) needs to validate SVIDs of federated trust domains too. Not public, as
  // the own bundle is: it names the trust domains this one federates with. Any authenticated caller
  // may read it (identity.validate is granted to every principal and is outside token scopes).
  const trustBundles = implement(api.IdentityBundles, {
    action: 'identity.validate',
    auth: 'token',
    resource: identitySystem,
    async handle() {
      const entries: [string, api.SpiffeBundleDocument][] = [
        [trustDomain, bundleDocument(await ca.current(), deps.x509Ttl)],
      ];
      for (const b of await bundles.federated()) {
        if (b.trustDomain === trustDomain) continue;
        try {
          entries.push([
            b.trustDomain,
            wireBundle(
              toSpiffeBundle({
                x509Authorities: b.x509Authorities,
                jwtAuthorities: b.jwtAuthorities,
                sequence: b.sequence,
                refreshHintSeconds: b.refreshHint,
              }),
            ),
          ]);
        } catch {
          // a bundle that cannot be written back trusts nothing (fail closed), as one that does not parse
        }
      }
      // fromEntries: a trust domain named like an Object.prototype key stays an own key
      return { trust_domain: trustDomain, bundles: Object.fromEntries(entries) };
    },
  });

  return { federate, federationList, federationDelete, trustBundles };
}
