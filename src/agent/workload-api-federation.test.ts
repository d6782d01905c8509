import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createStubSvidSource, type StubSvidSource } from '../../test/fakes/svid-issuer.ts';
import { type BundlesMessage, workloadClient } from '../../test/helpers/workload-client.ts';
import { StrongroomApiError } from '../sdk/client.ts';
import { parseSpiffeBundle } from '../spiffe/index.ts';
import { createSvidManager, type SvidManagerOptions, type TrustBundlesAnswer } from './svid.ts';
import { startWorkloadApi } from './workload-api.ts';

/**
 * The Workload API serves federation (issue 13 item 3; SPIFFE_Workload_API.md
 * §5.2, §6.2.2): the bundles of the trust domains the vault federates with,
 * kept current while streams are open. The vault is a stub SvidIssuer whose
 * `bundles()` answers like `GET /v1/identity/bundles` from a federation that
 * the tests change; the client is built from the upstream proto.
 */
const TD = 'strongroom.test';
const ID = `spiffe://${TD}/ns/demo/sa/api`;
const PARTNER = 'partner.test';
const PID = `spiffe://${PARTNER}/ns/billing/sa/api`;
const OWN_KEY = `spiffe://${TD}`;
const PARTNER_KEY = `spiffe://${PARTNER}`;
const BOTH = [OWN_KEY, PARTNER_KEY].sort();

interface Vault {
  source: StubSvidSource;
  partner: StubSvidSource;
  federate(): void;
  unfederate(): void;
  /** `bundles()` calls so far. */
  calls(): number;
}

async function stubVault(opts: { federated?: boolean; bundlesMissing?: boolean } = {}): Promise<Vault> {
  const source = await createStubSvidSource({ trustDomain: TD, allowed: [ID] });
  const partner = await createStubSvidSource({ trustDomain: PARTNER, allowed: [PID] });
  let federated = false;
  let calls = 0;
  const vault: Vault = {
    source,
    partner,
    federate() {
      federated = true;
      // what the vault's X.509-SVID answer carries for a federation (X.509 authorities only)
      source.federated = { [PARTNER]: [partner.caPem] };
    },
    unfederate() {
      federated = false;
      source.federated = {};
    },
    calls: () => calls,
  };
  (source as StubSvidSource & { bundles(): Promise<TrustBundlesAnswer> }).bundles = async () => {
    calls++;
    if (opts.bundlesMissing) throw new StrongroomApiError(404, 'route_not_found', 'no route');
    if (source.failure === 'outage')
      throw new StrongroomApiError(0, 'unreachable', 'cannot reach Strongroom');
    return {
      trust_domain: TD,
      bundles: {
        [TD]: await source.bundle(),
        ...(federated ? { [PARTNER]: await partner.bundle() } : {}),
      },
    };
  };
  if (opts.federated) vault.federate();
  return vault;
}

async function serve(t: TestContext, vault: Vault, opts: Partial<SvidManagerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-wl-fed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const manager = createSvidManager({
    spiffeId: ID,
    source: vault.source,
    retryMinMs: 20,
    retryMaxMs: 100,
    ...opts,
  });
  const socket = join(dir, 'workload.sock');
  const server = await startWorkloadApi({ socket, mode: 0o600, identity: manager });
  const client = workloadClient(socket);
  await manager.ready;
  t.after(async () => {
    client.close();
    manager.stop();
    await server.close();
  });
  return { manager, client };
}

const partnerToken = async (v: Vault, audience = 'service-b') =>
  (await v.partner.jwtSvid({ audience: [audience], spiffe_id: PID })).token;

const invalid = (err: unknown) => (err as grpc.ServiceError).code === grpc.status.INVALID_ARGUMENT;

/** Reads stream messages until one satisfies `ok` (streams send the full state on every change). */
async function until<T>(s: { next(ms?: number): Promise<T> }, ok: (m: T) => boolean, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const m = await s.next(Math.max(1, end - Date.now()));
    if (ok(m)) return m;
  }
}

const keys = (m: BundlesMessage | { federated_bundles: Record<string, Buffer> }) =>
  Object.keys('bundles' in m ? m.bundles : m.federated_bundles).sort();

test('FetchJWTBundles carries the JWT bundle of a federated trust domain, keyed by its ID, jwt-svid keys only', async (t) => {
  const v = await stubVault({ federated: true });
  const { client } = await serve(t, v);
  const s = client.fetchJwtBundles();
  t.after(() => s.cancel());
  const m = await until(s, (x) => PARTNER_KEY in x.bundles);
  assert.deepEqual(keys(m), BOTH);
  const jwks = JSON.parse(m.bundles[PARTNER_KEY]!.toString()) as { keys: { use: string; kid: string }[] };
  assert.deepEqual(
    jwks.keys.map((k) => [k.kid, k.use]),
    [['k1', 'jwt-svid']],
  );
  // the same key the partner's own bundle publishes
  const theirs = parseSpiffeBundle((await v.partner.bundle()) as object, PARTNER).jwtAuthorities[0]!;
  assert.ok(parseSpiffeBundle(jwks, PARTNER).jwtAuthorities[0]!.publicKey.equals(theirs.publicKey));
});

test('ValidateJWTSVID accepts a JWT-SVID of a federated trust domain for its audience only', async (t) => {
  const v = await stubVault({ federated: true });
  const { client } = await serve(t, v);
  const token = await partnerToken(v);
  const r = await client.validateJwtSvid({ audience: 'service-b', svid: token });
  assert.equal(r.spiffe_id, PID);
  await assert.rejects(client.validateJwtSvid({ audience: 'service-c', svid: token }), invalid);
  // a token of a trust domain nobody federates with is refused
  const stranger = await createStubSvidSource({
    trustDomain: 'evil.example',
    allowed: ['spiffe://evil.example/x'],
  });
  const evil = await stranger.jwtSvid({ audience: ['service-b'], spiffe_id: 'spiffe://evil.example/x' });
  await assert.rejects(client.validateJwtSvid({ audience: 'service-b', svid: evil.token }), invalid);
});

test('a federation added at the vault reaches open streams without restarting the agent', async (t) => {
  const v = await stubVault();
  const { client } = await serve(t, v, { bundleRefreshMaxMs: 200 });
  const jwt = client.fetchJwtBundles();
  const x509 = client.fetchX509Bundles();
  t.after(() => {
    jwt.cancel();
    x509.cancel();
  });
  assert.deepEqual(keys(await jwt.next()), [OWN_KEY]);
  assert.deepEqual(keys(await x509.next()), [OWN_KEY]);
  v.federate();
  assert.deepEqual(keys(await until(jwt, (m) => PARTNER_KEY in m.bundles)), BOTH);
  const xm = await until(x509, (m) => PARTNER_KEY in m.bundles);
  assert.ok(xm.bundles[PARTNER_KEY]!.equals(new X509Certificate(v.partner.caPem).raw));
  assert.equal(
    (await client.validateJwtSvid({ audience: 'a', svid: await partnerToken(v, 'a') })).spiffe_id,
    PID,
  );
});

test('a JWT-SVID of a trust domain federated a moment ago validates at once (no wait for the next refresh)', async (t) => {
  const v = await stubVault();
  const { client } = await serve(t, v, { bundleRefreshMaxMs: 600_000 });
  v.federate();
  const r = await client.validateJwtSvid({ audience: 'service-b', svid: await partnerToken(v) });
  assert.equal(r.spiffe_id, PID);
});

test('a federation removed at the vault leaves every open stream, and its JWT-SVIDs stop validating', async (t) => {
  const v = await stubVault({ federated: true });
  const { client } = await serve(t, v, { bundleRefreshMaxMs: 200 });
  const token = await partnerToken(v);
  assert.equal((await client.validateJwtSvid({ audience: 'service-b', svid: token })).spiffe_id, PID);
  const jwt = client.fetchJwtBundles();
  const x509 = client.fetchX509Bundles();
  const svid = client.fetchX509Svid();
  t.after(() => {
    jwt.cancel();
    x509.cancel();
    svid.cancel();
  });
  assert.deepEqual(keys(await until(jwt, (m) => PARTNER_KEY in m.bundles)), BOTH);
  assert.deepEqual(keys(await until(x509, (m) => PARTNER_KEY in m.bundles)), BOTH);
  assert.deepEqual(keys(await until(svid, (m) => PARTNER_KEY in m.federated_bundles)), [PARTNER_KEY]);

  v.unfederate();
  assert.deepEqual(keys(await until(jwt, (m) => !(PARTNER_KEY in m.bundles))), [OWN_KEY]);
  assert.deepEqual(keys(await until(x509, (m) => !(PARTNER_KEY in m.bundles))), [OWN_KEY]);
  assert.deepEqual(keys(await until(svid, (m) => !(PARTNER_KEY in m.federated_bundles))), []);
  await assert.rejects(client.validateJwtSvid({ audience: 'service-b', svid: token }), invalid);
});

test('a removed federation stops vouching for JWT-SVIDs within seconds, whatever the refresh interval', async (t) => {
  const v = await stubVault({ federated: true });
  let offset = 0;
  const { client } = await serve(t, v, { bundleRefreshMaxMs: 600_000, clock: () => Date.now() + offset });
  const token = await partnerToken(v);
  assert.equal((await client.validateJwtSvid({ audience: 'service-b', svid: token })).spiffe_id, PID);
  v.unfederate();
  offset += 5_000;
  await assert.rejects(client.validateJwtSvid({ audience: 'service-b', svid: token }), invalid);
});

test('an X.509-SVID answer fetched before a federation was removed does not bring it back', async (t) => {
  const v = await stubVault({ federated: true });
  // the second X.509-SVID answer is held back: it was issued while the partner was still federated
  const issue = v.source.x509Svid.bind(v.source);
  let held: (() => void) | undefined;
  let calls = 0;
  v.source.x509Svid = async (req) => {
    const answer = await issue(req);
    if (++calls === 2) await new Promise<void>((r) => (held = r));
    return answer;
  };
  const { client } = await serve(t, v, { ttlSeconds: 2, bundleRefreshMaxMs: 100 });
  const bundles = client.fetchX509Bundles();
  const svid = client.fetchX509Svid();
  t.after(() => {
    bundles.cancel();
    svid.cancel();
  });
  const first = await until(svid, (m) => PARTNER_KEY in m.federated_bundles);
  while (!held) await new Promise((r) => setTimeout(r, 20));
  v.unfederate();
  await until(bundles, (m) => !(PARTNER_KEY in m.bundles));
  held();
  // the rotated SVID lands on the stream, and the partner stays out
  const rotated = await until(svid, (m) => !m.svids[0]!.x509_svid.equals(first.svids[0]!.x509_svid));
  assert.deepEqual(rotated.federated_bundles, {});
  await new Promise((r) => setTimeout(r, 300));
  const again = client.fetchX509Bundles();
  t.after(() => again.cancel());
  assert.deepEqual(keys(await again.next()), [OWN_KEY]);
});

test('against a vault without GET /v1/identity/bundles (404) the agent still serves its own JWT bundle and federated X.509 authorities', async (t) => {
  const v = await stubVault({ federated: true, bundlesMissing: true });
  const { client } = await serve(t, v);
  const jwt = client.fetchJwtBundles();
  const x509 = client.fetchX509Bundles();
  t.after(() => {
    jwt.cancel();
    x509.cancel();
  });
  assert.deepEqual(keys(await jwt.next()), [OWN_KEY]);
  assert.deepEqual(keys(await until(x509, (m) => PARTNER_KEY in m.bundles)), BOTH);
  assert.ok(v.calls() >= 1, 'the agent asked for the federated bundles');
});
