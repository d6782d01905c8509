import { createHash, createPublicKey } from 'node:crypto';
import { SignatureRefused, verifyModelSignature } from '../../api/model-signing.ts';
import * as api from '../../api/models.ts';
import { atLeast, checkSbom, type OsvAdvisory, type Severity } from '../../api/osv.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { isStrongroomError, StrongroomError } from '../../errors/errors.ts';
import type { LeaseRecord, LeasesPort } from '../leases/leases.ts';
import type { AllowsPort, ClockPort, TransitPort } from '../ports.ts';

export type ModelsDeps = ClockPort & LeasesPort & TransitPort & AllowsPort;

const SYSTEM: Resource = { type: 'System', id: 'models' };
const ENGINE = 'models';
const policyPath = (name: string) => `policies/${name}`;

/**
 * File names whose formats run code when loaded (Python pickle: PyTorch's .bin/.pt/.pth checkpoints,
 * joblib, dill): a model's weights should be safetensors or GGUF (docs/models.md).
 */
const PICKLE =
  /\.(pkl|pickle|pt|pth|bin|ckpt|joblib|dill|mar|npy|npz|nemo|pdparams|sav|keras|h5|hdf5)(\.(tar|gz|xz|bz2|zst|zip))*$/i;

function refuse(reason: string): never {
  throw new StrongroomError('model_refused', `model refused: ${reason}; no data key was released`);
}

/** Where an advisory is kept: under each package it affects, so a release reads only its components'. */
const advisoryDir = (ecosystem: string, name: string) =>
  `advisories/${encodeURIComponent(ecosystem)}/${encodeURIComponent(ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name)}/`;

/** The SBOM gate: the signed SBOM's components against the loaded advisories. */
async function sbomGate(
  store: BarrierStore,
  p: api.ModelPolicy,
  i: api.ModelReleaseRequest,
  want: Map<string, string>,
): Promise<void> {
  if (!p.sbom) return;
  const file = p.sbom.file;
  if (!want.has(file)) refuse(`${file}: the policy needs a signed SBOM and the model has none`);
  if (i.sbom === undefined) refuse(`${file}: the policy checks the SBOM and none was sent with the release`);
  if (createHash('sha256').update(i.sbom).digest('hex') !== want.get(file)) {
    refuse(`${file} differs from the signed file (its SHA-256 is not the signed one)`);
  }
  let sbom: unknown;
  try {
    sbom = JSON.parse(i.sbom);
  } catch {
    refuse(`${file} is not JSON`);
  }
  // the advisories of the SBOM's packages only, read from the index
  const advisories = new Map<string, OsvAdvisory>();
  const comps = JSON.stringify(sbom).match(/"purl":"pkg:[^"]+"/g) ?? [];
  for (const c of comps) {
    // the name runs to the version's '@' (an npm scope may be written @scope unencoded)
    const m = /pkg:(npm|pypi)\/([^?#"]+)@[^@?#"]*(?:[?#][^"]*)?"$/i.exec(c);
    if (!m) continue;
    const eco = m[1]!.toLowerCase() === 'npm' ? 'npm' : 'PyPI';
    let name: string;
    try {
      name = decodeURIComponent(m[2]!);
    } catch {
      refuse(`${file}: the package URL ${c.slice(8, 200)} cannot be read`);
    }
    const dir = advisoryDir(eco, name);
    for (const path of await store.list(dir)) {
      const a = await store.getJson<OsvAdvisory>(path);
      if (a) advisories.set(a.id, a);
    }
  }
  const blocking = checkSbom(sbom, advisories.values()).find((f) =>
    atLeast(f.severity, p.sbom!.fail_on as Severity),
  );
  if (blocking) {
    refuse(
      `${file}: ${blocking.component} is affected by ${blocking.advisory} (${blocking.severity}${blocking.summary ? `: ${blocking.summary}` : ''})`,
    );
  }
}

/** The checks before any key is touched; throws `model_refused` naming what failed first. */
async function check(store: BarrierStore, p: api.ModelPolicy, i: api.ModelReleaseRequest): Promise<string> {
  let signed: ReturnType<typeof verifyModelSignature>;
  try {
    signed = verifyModelSignature(i.signature, {
      keys: p.signers,
      ...(p.trust_bundle ? { anchors: p.trust_bundle } : {}),
      ...(p.spiffe_ids ? { spiffeIds: p.spiffe_ids } : {}),
    });
  } catch (err) {
    if (err instanceof SignatureRefused) refuse(`the signature: ${err.message}`);
    throw err;
  }
  // a signature of another model (another policy's, under the same signer) releases nothing here
  if (signed.model !== p.model) {
    refuse(
      `the signature is for the model ${JSON.stringify(signed.model)}, and this policy is for ${JSON.stringify(p.model)}`,
    );
  }
  const want = new Map(signed.resources.map((r) => [r.name, r.digest]));
  const have = new Map<string, string>();
  for (const f of i.files) {
    if (have.has(f.path)) refuse(`${f.path} is listed twice in the encrypted model`);
    have.set(f.path, f.sha256);
  }
  const names = [...new Set([...want.keys(), ...have.keys()])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const n of names) {
    if (!have.has(n)) refuse(`${n} is signed but not in the encrypted model`);
    if (!want.has(n)) refuse(`${n} is in the encrypted model but not signed`);
    if (want.get(n) !== have.get(n))
      refuse(`${n} differs from the signed file (its SHA-256 is not the signed one)`);
  }
  if (!p.allow_pickle) {
    const pickled = names.find((n) => PICKLE.test(n));
    if (pickled)
      refuse(
        `${pickled} is a pickle-based file, which can run code when loaded (the policy allows safetensors and GGUF)`,
      );
  }
  await sbomGate(store, p, i, want);
  return signed.model;
}

/**
 * The models engine (issue 17, item 5; docs/models.md): verify, then unwrap. A release checks, in order,
 * the signature against the policy's signers, that the encrypted model holds exactly the signed files
 * with the signed digests, that no file is of a refused format, and that each data key opens for its own
 * file (the key is bound to path and digest); only then are the data keys released, under a lease held
 * by the caller. A refusal names the first offending file; like every call it is audited.
 */
export function modelsModule(): VaultModule<ModelsDeps, BarrierStore> {
  let deps: ModelsDeps | undefined;
  let store: BarrierStore | undefined;
  const now = () => new Date(deps!.clock.now()).toISOString();

  async function policy(name: string): Promise<api.ModelPolicy> {
    const p = await store!.getJson<api.ModelPolicy>(policyPath(name));
    if (!p) throw new StrongroomError('not_found', `no model policy named ${JSON.stringify(name)}`);
    return p;
  }

  function operations(): AnyOperation[] {
    const manage = { action: 'model.manage', auth: 'token' as const, resource: () => SYSTEM };
    return [
      implement(api.ModelPolicyWrite, {
        ...manage,
        async handle(ctx, i) {
          // a policy releases the keys its transit key wraps: only someone who may decrypt with it names it
          if (
            !ctx.identity ||
            !(await deps!.allows(
              ctx.identity,
              'transit.decrypt',
              { type: 'TransitKey', id: i.key, attrs: { name: i.key } },
              ctx.request,
            ))
          ) {
            throw new StrongroomError(
              'permission_denied',
              `permission denied: a model policy naming transit/${i.key} needs transit.decrypt on it`,
            );
          }
          if (i.name === 'advisories') {
            throw new StrongroomError(
              'invalid_name',
              '"advisories" names the advisories route: choose another name',
            );
          }
          if (!i.signers?.length && !i.trust_bundle) {
            throw new StrongroomError(
              'validation_failed',
              'give signers (public keys) or a trust_bundle (for SVID signatures)',
            );
          }
          if (i.spiffe_ids && !i.trust_bundle) {
            throw new StrongroomError('validation_failed', 'spiffe_ids go with a trust_bundle');
          }
          for (const [n, pem] of (i.signers ?? []).entries()) {
            let ok = false;
            try {
              const k = createPublicKey(pem);
              ok = k.asymmetricKeyType === 'ec';
            } catch {}
            if (!ok)
              throw new StrongroomError('invalid_value', `signers[${n}] is not an ECDSA public key in PEM`);
          }
          const p: api.ModelPolicy = {
            name: i.name,
            model: i.model ?? i.name,
            key: i.key,
            signers: i.signers ?? [],
            ...(i.trust_bundle ? { trust_bundle: i.trust_bundle } : {}),
            ...(i.spiffe_ids ? { spiffe_ids: i.spiffe_ids } : {}),
            allow_pickle: i.allow_pickle ?? false,
            lease_ttl: i.lease_ttl ?? 3600,
            ...(i.sbom ? { sbom: { file: i.sbom.file ?? 'sbom.cdx.json', fail_on: i.sbom.fail_on } } : {}),
            updated_at: now(),
          };
          await store!.put(policyPath(i.name), Buffer.from(JSON.stringify(p)));
          return p;
        },
      }),
      implement(api.ModelPolicyRead, {
        ...manage,
        action: 'model.read',
        handle: (_ctx, i) => policy(i.name),
      }),
      implement(api.ModelPolicyList, {
        ...manage,
        action: 'model.read',
        handle: async () => ({
          names: (await store!.list('policies/')).map((p) => p.slice('policies/'.length)),
        }),
      }),
      implement(api.ModelPolicyDelete, {
        ...manage,
        async handle(_ctx, i) {
          const had = (await store!.get(policyPath(i.name))) !== undefined;
          await store!.delete(policyPath(i.name));
          return { deleted: had };
        },
      }),
      implement(api.ModelAdvisoriesLoad, {
        ...manage,
        async handle(_ctx, i) {
          let packages = 0;
          for (const a of i.advisories as OsvAdvisory[]) {
            for (const aff of a.affected ?? []) {
              const eco = aff.package?.ecosystem;
              const name = aff.package?.name;
              if (!eco || !name || (eco !== 'npm' && eco !== 'PyPI')) continue;
              await store!.put(
                `${advisoryDir(eco, name)}${encodeURIComponent(a.id)}`,
                Buffer.from(JSON.stringify(a)),
              );
              packages++;
            }
          }
          return { stored: i.advisories.length, packages };
        },
      }),
      implement(api.ModelRelease, {
        action: 'model.release',
        auth: 'token',
        // authorized by Cedar on System::"models/<name>"; a scoped token needs models/<name> in `credentials`
        resource: (i) => ({ type: 'System', id: `models/${i.name}` }),
        async handle(ctx, i) {
          const p = await policy(i.name);
          const model = await check(store!, p, i);
          const { lease, result } = await deps!.leases.issue(
            {
              engine: ENGINE,
              role: i.name,
              ttl: p.lease_ttl,
              maxTtl: p.lease_ttl,
              renewable: false,
              ctx,
              data: { model, files: i.files.length },
            },
            async () => {
              const keys: Array<{ path: string; data_key: string }> = [];
              for (const f of i.files) {
                let key: Buffer;
                try {
                  key = await deps!.transit.unwrap(
                    p.key,
                    f.wrapped_key,
                    api.modelKeyBinding(model, f.path, f.sha256, f.enc_sha256),
                  );
                } catch (err) {
                  if (
                    isStrongroomError(err, 'invalid_ciphertext') ||
                    isStrongroomError(err, 'key_version_disallowed')
                  ) {
                    refuse(
                      `${f.path}: its data key does not open for this file as it is now under transit/${p.key}: the encrypted file, its manifest entry or the key was changed (${err.message})`,
                    );
                  }
                  throw err;
                }
                keys.push({ path: f.path, data_key: key.toString('base64') });
                key.fill(0);
              }
              return { result: keys };
            },
          );
          return {
            model,
            lease_id: lease.id,
            lease_duration: Math.max(
              0,
              Math.round((Date.parse(lease.expires_at) - deps!.clock.now()) / 1000),
            ),
            keys: result,
          };
        },
      }),
    ];
  }

  return {
    name: 'models',
    needs: ['leases', 'transit'],
    mount: 'logical/models/',
    operations(d, st) {
      deps = d;
      store = st;
      d.leases.register({
        engine: ENGINE,
        // the keys were handed over once; the lease is the record of the release and ends with its holder
        async revoke(_lease: Readonly<LeaseRecord>) {},
      });
      return operations();
    },
  };
}
