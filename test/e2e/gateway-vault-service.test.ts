import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { Agent } from 'undici';
import type { X509SvidResponse } from '../../src/api/identity.ts';
import { tempDir } from '../helpers/app.ts';
import { makeCsr } from '../helpers/spiffe.ts';
import { startTlsVault } from '../helpers/tls.ts';

/**
 * Issue 12 item 13: the vault service of remote gateways gives a gateway no
 * more than it needs. The test plays a hostile gateway: it holds a real
 * gateway SVID (registration with the `gateway` role, scoped to `llm/dev`)
 * and calls `/v1/gateway/vault/…` itself over mTLS with undici, as a
 * compromised gateway process could. The vault must derive every caller from
 * the credential the caller presented (a sealed session ticket, bound to the
 * gateway that asked), revoke only callers that presented their credential
 * to that gateway (never a root token), match only values within the
 * gateway's registration scope, and audit what it did.
 */
const TD = 'strongroom.local';
const GATEWAY_A = `spiffe://${TD}/strongroom/gateway-a`;
const GATEWAY_B = `spiffe://${TD}/strongroom/gateway-b`;

interface Json {
  status: number;
  json: Record<string, unknown>;
}

async function setup(t: TestContext) {
  const dir = tempDir(t, 'strongroom-gw-service-');
  const v = await startTlsVault(t, dir, TD);
  const { admin, call, ca } = v;
  for (const name of ['llm', 'other']) await admin('POST', '/v1/projects', { name });
  const dbPassword = 'correct-horse-battery-staple-9f3k2';
  const otherPassword = 'another-project-value-6c1b8e0d';
  await admin('PUT', '/v1/secrets/llm/dev/DB_PASSWORD', { value: dbPassword });
  await admin('PUT', '/v1/secrets/other/dev/ADMIN_PASSWORD', { value: otherPassword });
  await admin('POST', '/v1/identity/registrations', {
    spiffe_id: GATEWAY_A,
    selectors: ['app:gateway-a'],
    roles: ['gateway'],
    scope: { paths: ['llm/dev'] },
  });
  await admin('POST', '/v1/identity/registrations', {
    spiffe_id: GATEWAY_B,
    selectors: ['app:gateway-b'],
    roles: ['gateway'],
    scope: { paths: ['other/dev'] },
  });
  /** A gateway's mTLS client: its X.509-SVID from a join token. */
  const gateway = async (spiffeId: string) => {
    const csr = await makeCsr(spiffeId);
    const jt = (await admin('POST', '/v1/identity/join-tokens', { spiffe_id: spiffeId })) as {
      join_token: string;
    };
    const r = await call('POST', '/v1/identity/x509-svid', { csr: csr.pem, join_token: jt.join_token });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const svid = r.json as unknown as X509SvidResponse;
    const agent = new Agent({ connect: { ca, cert: svid.certificate, key: csr.keyPem } });
    t.after(() => agent.close());
    return (path: string, body: unknown): Promise<Json> =>
      call('POST', `/v1/gateway/vault/${path}`, body, { dispatcher: agent });
  };
  /** A workload's certificate chain (base64 DER, leaf first), as a gateway forwards what its caller presented. */
  const workloadChain = async (spiffeId: string) => {
    const csr = await makeCsr(spiffeId);
    const jt = (await admin('POST', '/v1/identity/join-tokens', { spiffe_id: spiffeId })) as {
      join_token: string;
    };
    const r = await call('POST', '/v1/identity/x509-svid', { csr: csr.pem, join_token: jt.join_token });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const pem = (r.json as unknown as X509SvidResponse).certificate;
    return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) =>
      m[1]!.replace(/\s+/g, ''),
    );
  };
  const appToken = async (scope: Record<string, unknown>) => {
    const r = (await admin('POST', '/v1/auth/token/create', {
      roles: ['app'],
      ttl: '1h',
      display_name: 'service-test-app',
      scope,
    })) as { auth?: { client_token: string; accessor: string } };
    return { token: r.auth!.client_token, accessor: r.auth!.accessor };
  };
  /** Whether a token still works on the vault API. */
  const works = async (token: string) =>
    (await call('GET', '/v1/auth/token/lookup-self', undefined, { token })).status === 200;
  return {
    ...v,
    a: await gateway(GATEWAY_A),
    b: await gateway(GATEWAY_B),
    appToken,
    works,
    workloadChain,
    dbPassword,
    otherPassword,
  };
}

/** The session the vault sealed for a caller that presented `credential` to this gateway. */
async function sessionOf(gw: (p: string, b: unknown) => Promise<Json>, credential: string): Promise<string> {
  const r = await gw('authenticate', { credential, client_address: '192.0.2.10' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.error, undefined, JSON.stringify(r.json));
  assert.match(String(r.json.session), /^st1\./);
  return r.json.session as string;
}

const MODEL = [{ provider: 'openai', model: 'gpt-4o', route: 'chat.completions' }];
const CONTEXT = { client_address: '192.0.2.10', classification: 'internal', estimated_tokens: 10 };

test('a hostile gateway gets no more from the vault service than its callers and its registration allow', {
  timeout: 120_000,
}, async (t) => {
  const s = await setup(t);
  const app = await s.appToken({ paths: ['llm/dev'], providers: ['openai'] });

  await t.test('authorize answers only for a session this vault sealed for this gateway', async () => {
    const session = await sessionOf(s.a, app.token);
    const ok = await s.a('authorize', { session, resources: MODEL, context: CONTEXT });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(
      (ok.json.decisions as { allowed: boolean }[]).map((d) => d.allowed),
      [true],
    );
    // an identity the gateway describes itself (the old request) is not a request any more
    const described = await s.a('authorize', {
      identity: {
        kind: 'token',
        accessor: app.accessor,
        display_name: 'x',
        policies: ['root'],
        owner: { type: 'root', id: 'root', name: 'root' },
        scope: null,
        mfa: true,
      },
      resources: MODEL,
      context: CONTEXT,
    });
    assert.equal(described.status, 400, JSON.stringify(described.json));
    // a ticket changed by one character, or made up, is refused; no decision comes back
    const mid = 40;
    const flipped = `${session.slice(0, mid)}${session[mid] === 'A' ? 'B' : 'A'}${session.slice(mid + 1)}`;
    for (const forged of [flipped, `st1.${'A'.repeat(200)}`]) {
      const r = await s.a('authorize', { session: forged, resources: MODEL, context: CONTEXT });
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.decisions, undefined);
    }
    // another gateway cannot use it
    const other = await s.b('authorize', { session, resources: MODEL, context: CONTEXT });
    assert.equal(other.status, 400, JSON.stringify(other.json));
  });

  await t.test(
    'revoke acts only on a caller that presented its credential to this gateway, never on a root token, and is audited with the gateway ID',
    async () => {
      const victim = await s.appToken({ paths: ['other/dev'] });
      // naming an accessor is no longer a way to revoke anything
      const byAccessor = await s.a('revoke', { kind: 'token', id: victim.accessor });
      assert.equal(byAccessor.status, 400, JSON.stringify(byAccessor.json));
      assert.ok(await s.works(victim.token), 'a token the gateway never saw stays valid');

      const caller = await s.appToken({ paths: ['llm/dev'] });
      const session = await sessionOf(s.a, caller.token);
      const r = await s.a('revoke', { session, reason: 'anomaly:burst' });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(await s.works(caller.token), false, 'the caller that presented its token is revoked');
      const entry = s
        .audit()
        .find(
          (e) =>
            e.operation === 'gateway.revoke' &&
            (e.actor as { accessor?: string })?.accessor === caller.accessor,
        );
      assert.ok(entry, 'the revocation is audited');
      assert.equal((entry.request as Record<string, unknown>).gateway, GATEWAY_A);
      assert.equal((entry.decision as { reason: string }).reason, 'anomaly:burst');

      const rootSession = await sessionOf(s.a, s.root);
      assert.equal((await s.a('revoke', { session: rootSession, reason: 'anomaly:burst' })).status, 200);
      assert.ok(await s.works(s.root), 'a gateway never revokes a root token');
      const refused = s
        .audit()
        .filter((e) => e.operation === 'gateway.revoke')
        .at(-1)!;
      assert.equal((refused.request as Record<string, unknown>).outcome, 'not_revocable');
    },
  );

  await t.test(
    'value matching counts only secrets within the gateway registration scope; a value its caller cannot read revokes the caller and is recorded as a compromise',
    async () => {
      const reader = await s.appToken({ paths: ['llm/dev'] });
      const session = await sessionOf(s.a, reader.token);
      const ask = (sess: string, candidates: string[]) =>
        s.a('fingerprints', {
          session: sess,
          candidates,
          request_id: 'req-holds-1',
          client_address: '192.0.2.10',
        });

      // its own value: found, nothing more
      let r = await ask(session, [s.dbPassword]);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json, { found: true });
      assert.ok(await s.works(reader.token));
      // a value outside the gateway's scope is never matched for it: the gateway learns nothing about it
      r = await ask(session, [s.otherPassword]);
      assert.deepEqual(r.json, { found: false });
      // gateway B, scoped to other/dev, does match it (the value is real)
      const outsider = await s.appToken({ paths: ['llm/prod'] });
      r = await s.b('fingerprints', {
        session: await sessionOf(s.b, outsider.token),
        candidates: [s.otherPassword],
      });
      assert.deepEqual(r.json, { found: true, compromised: true });
      assert.equal(
        await s.works(outsider.token),
        false,
        'the caller that held a value it cannot read is revoked',
      );

      // through gateway A too: a caller that cannot read llm/dev sending its value
      const other = await s.appToken({ paths: ['llm/prod'] });
      r = await ask(await sessionOf(s.a, other.token), [s.dbPassword]);
      assert.deepEqual(r.json, { found: true, compromised: true });
      assert.equal(await s.works(other.token), false);
      const alerts = s.audit().filter((e) => e.operation === 'gateway.compromise');
      assert.equal(alerts.length, 2);
      assert.deepEqual((alerts[1]!.request as { secrets: string[] }).secrets, ['llm/dev/DB_PASSWORD']);
      const text = JSON.stringify(s.audit());
      assert.ok(!text.includes(s.dbPassword) && !text.includes(s.otherPassword), 'no value in the audit log');
    },
  );

  await t.test(
    'a session stops answering once its credential is revoked: no decision, no admission, no record',
    async () => {
      const caller = await s.appToken({ paths: ['llm/dev'], providers: ['openai'] });
      const session = await sessionOf(s.a, caller.token);
      // a session under a second old serves the call it was made for; a ticket kept longer is re-checked
      await new Promise((r) => setTimeout(r, 1_100));
      assert.equal(
        (await s.call('POST', '/v1/auth/token/revoke-self', undefined, { token: caller.token })).status,
        200,
      );
      const auth = await s.a('authorize', { session, resources: MODEL, context: CONTEXT });
      assert.equal(auth.status, 200);
      assert.equal((auth.json.error as { code: string }).code, 'invalid_token');
      assert.equal(auth.json.decisions, undefined);
      const before = s.audit().length;
      const admitted = await s.a('admit', {
        session,
        request_id: 'after-revocation',
        operation: 'gateway.invoke',
        resource: 'Model::openai/gpt-4o',
        actor: null,
        client_address: '192.0.2.10',
        decision: { allowed: true, reason: 'permitted' },
        request: { route: 'chat.completions' },
      });
      assert.equal((admitted.json.error as { code: string }).code, 'invalid_token');
      assert.equal(s.audit().length, before, 'no record for a revoked caller');
      const live = await s.a('live', { sessions: [session] });
      assert.deepEqual(live.json, { live: [false] });
    },
  );

  await t.test("a record names only the actor the vault knows: the session's, or none", async () => {
    const r = await s.a('audit', {
      request_id: 'forged-actor',
      operation: 'gateway.invoke',
      resource: 'Model::openai/gpt-4o',
      actor: { type: 'user', id: 'alice', accessor: 'made-up', display_name: 'alice' },
      client_address: '192.0.2.10',
      decision: { allowed: true, reason: 'permitted' },
      request: { route: 'chat.completions' },
      status: 'ok',
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const entry = s.audit().find((e) => e.request_id === 'forged-actor')!;
    assert.equal(entry.actor, null);
    assert.equal((entry.request as Record<string, unknown>).gateway, GATEWAY_A);
  });

  await t.test('every value check is on record, with the caller it was asked for', async () => {
    const caller = await s.appToken({ paths: ['llm/dev'] });
    const session = await sessionOf(s.a, caller.token);
    const before = s.audit().filter((e) => e.operation === 'gateway.vault.holds').length;
    await s.a('fingerprints', {
      session,
      candidates: ['not-a-vault-value-0000000'],
      request_id: 'holds-neg',
    });
    await s.a('fingerprints', { session, candidates: [s.dbPassword], request_id: 'holds-pos' });
    const checks = s.audit().filter((e) => e.operation === 'gateway.vault.holds');
    assert.equal(checks.length, before + 2);
    assert.deepEqual(
      checks
        .slice(-2)
        .map((e) => [(e.actor as { accessor: string }).accessor, (e.request as { found: boolean }).found]),
      [
        [caller.accessor, false],
        [caller.accessor, true],
      ],
    );
    assert.ok(!JSON.stringify(s.audit()).includes(s.dbPassword));
  });

  await t.test(
    'a workload holding a value it cannot read loses its registration: no session made afterwards (a restarted gateway) is authorized',
    async () => {
      const billing = `spiffe://${TD}/app/billing`;
      await s.admin('POST', '/v1/identity/registrations', {
        spiffe_id: billing,
        selectors: ['app:billing'],
        roles: ['app'],
        scope: { paths: ['other/dev'] },
      });
      const chain = await s.workloadChain(billing);
      const authenticate = async () => {
        const r = await s.a('authenticate', { peer_certificates: chain, client_address: '192.0.2.10' });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        return r.json.session as string;
      };
      const allowed = async (session: string) => {
        const r = await s.a('authorize', { session, resources: MODEL, context: CONTEXT });
        return (r.json.decisions as { allowed: boolean }[])[0]!.allowed;
      };
      const session = await authenticate();
      assert.equal(await allowed(session), true);
      const r = await s.a('fingerprints', { session, candidates: [s.dbPassword] });
      assert.deepEqual(r.json, { found: true, compromised: true });
      const revoked = s
        .audit()
        .filter((e) => e.operation === 'gateway.revoke')
        .at(-1)!;
      assert.equal((revoked.request as { outcome: string }).outcome, 'revoked');
      assert.equal(await allowed(await authenticate()), false);
      const regs = (await s.admin('GET', '/v1/identity/registrations')) as {
        registrations: { spiffe_id: string }[];
      };
      assert.ok(!regs.registrations.some((x) => x.spiffe_id === billing), 'its registration is gone');
    },
  );

  await t.test(
    'a session serves one call: admitted once, a replayed ticket admits nothing (a one-use token included)',
    async () => {
      const created = (await s.admin('POST', '/v1/auth/token/create', {
        roles: ['app'],
        ttl: '1h',
        num_uses: 1,
        scope: { paths: ['llm/dev'], providers: ['openai'] },
      })) as { auth: { client_token: string } };
      const session = await sessionOf(s.a, created.auth.client_token);
      const admit = () =>
        s.a('admit', {
          session,
          request_id: 'once',
          operation: 'gateway.invoke',
          resource: 'Model::openai/gpt-4o',
          actor: null,
          client_address: '192.0.2.10',
          decision: { allowed: true, reason: 'permitted' },
          request: { route: 'chat.completions' },
        });
      assert.equal((await admit()).status, 200);
      const again = await admit();
      assert.equal(again.status, 400, JSON.stringify(again.json));
      assert.equal(s.audit().filter((e) => e.request_id === 'once' && e.type === 'request').length, 1);
    },
  );

  await t.test(
    'a workload session ends when its registration is narrowed: the old ticket is no longer live or authorized',
    async () => {
      const reporting = `spiffe://${TD}/app/reporting`;
      const register = (providers: string[]) =>
        s.admin('POST', '/v1/identity/registrations', {
          spiffe_id: reporting,
          selectors: ['app:reporting'],
          roles: ['app'],
          scope: { paths: ['other/dev'], providers },
        });
      await register(['openai', 'anthropic']);
      const chain = await s.workloadChain(reporting);
      const r = await s.a('authenticate', { peer_certificates: chain, client_address: '192.0.2.10' });
      const session = r.json.session as string;
      assert.deepEqual((await s.a('live', { sessions: [session] })).json, { live: [true] });
      await register(['anthropic']);
      assert.deepEqual((await s.a('live', { sessions: [session] })).json, { live: [false] });
      // past the second a fresh session is trusted for, the ticket is checked again, and refused
      await new Promise((r) => setTimeout(r, 1_100));
      const auth = await s.a('authorize', { session, resources: MODEL, context: CONTEXT });
      assert.equal((auth.json.error as { code: string }).code, 'invalid_token');
    },
  );
});
