import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import type { X509SvidResponse } from '../../src/api/identity.ts';
import { decodeProvenanceHeader, PROVENANCE_HEADER, verifyStage } from '../../src/gateway/stages/signing.ts';
import { bundlesFromCertificates } from '../../src/spiffe/svid-source.ts';
import { startAnthropicFake } from '../fakes/anthropic-upstream.ts';
import { startOpenAiFake } from '../fakes/openai-upstream.ts';
import { tempDir } from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';
import { makeCsr } from '../helpers/spiffe.ts';
import { selfSignedCert, startTlsVault } from '../helpers/tls.ts';
import { awayFromMinuteEdge } from '../helpers/wait.ts';

/**
 * Issue 7 item 1, with nothing stubbed: `strongroom gateway` in its own
 * process in front of a `strongroom server` process (the vault, TLS), the
 * gateway authenticating to the vault with its own X.509-SVID over mTLS
 * (registration with the `gateway` role, SVID files as the agent writes
 * them). The official OpenAI and Anthropic clients call the gateway; the
 * vault decides everything (tokens, virtual keys, Cedar, budgets, vault
 * values) and holds the one audit record per call. Then the faults: a caller
 * that is not a gateway workload is refused by the vault, a sealed vault and
 * a stopped vault make the gateway answer 503 without calling upstream.
 */
const TD = 'strongroom.local';
const GATEWAY_ID = `spiffe://${TD}/strongroom/gateway`;
const OTHER_ID = `spiffe://${TD}/not/a/gateway`;

interface Json {
  status: number;
  json: Record<string, unknown>;
}

async function setup(t: TestContext, opts: { gatewaySvidTtl?: string; gatewayTls?: boolean } = {}) {
  const dir = tempDir(t, 'strongroom-gw-remote-');
  const openaiFake = await startOpenAiFake();
  const anthropicFake = await startAnthropicFake();
  t.after(() => Promise.all([openaiFake.close(), anthropicFake.close()]));

  // --- the vault: its own process, TLS, workload identity on ---
  // a low per-principal rate limit, so the flood of refused calls below meets it whatever the machine's load
  // (the gateway's allowed plumbing and the root token are not counted)
  const v = await startTlsVault(t, dir, TD, { rateLimit: { requests_per_second: 2, burst: 20 } });
  const { call, admin, ca, root, certFile } = v;
  const vault = v.server;
  await admin('POST', '/v1/projects', { name: 'llm' });
  await admin('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: openaiFake.key });
  await admin('PUT', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: anthropicFake.key });
  // a value the firewall must recognise in a prompt (by fingerprint, asked of the vault)
  const dbPassword = 'correct-horse-battery-staple-9f3k2';
  await admin('PUT', '/v1/secrets/llm/dev/DB_PASSWORD', { value: dbPassword });

  // --- the gateway's identity: registered with the gateway role, scoped to the keys' environment ---
  await admin('POST', '/v1/identity/registrations', {
    spiffe_id: GATEWAY_ID,
    selectors: ['app:gateway'],
    roles: ['gateway'],
    scope: { paths: ['llm/dev'] },
  });
  /** An X.509-SVID: with a join token, or renewed over mTLS with the workload's current SVID (as the agent does). */
  const svidOf = async (
    spiffeId: string,
    o: { ttl?: string; renew?: { cert: string; key: string } } = {},
  ) => {
    const csr = await makeCsr(spiffeId);
    let r: Json;
    if (o.renew) {
      const mtls = new Agent({ connect: { ca, cert: o.renew.cert, key: o.renew.key } });
      r = await call(
        'POST',
        '/v1/identity/x509-svid',
        { csr: csr.pem, ...(o.ttl ? { ttl: o.ttl } : {}) },
        {
          dispatcher: mtls,
        },
      );
      await mtls.close();
    } else {
      const jt = (await admin('POST', '/v1/identity/join-tokens', { spiffe_id: spiffeId })) as {
        join_token: string;
      };
      r = await call('POST', '/v1/identity/x509-svid', {
        csr: csr.pem,
        join_token: jt.join_token,
        ...(o.ttl ? { ttl: o.ttl } : {}),
      });
    }
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const svid = r.json as unknown as X509SvidResponse;
    return {
      cert: svid.certificate,
      key: csr.keyPem,
      bundle: svid.bundle.join('\n'),
      expiresAt: Date.parse(svid.expires_at),
    };
  };
  const svidDir = join(dir, 'svid');
  mkdirSync(svidDir, { mode: 0o700 });
  /** Writes the gateway's SVID files as the agent does (the gateway re-reads them on change). */
  const writeSvid = (svid: { cert: string; key: string; bundle: string }) => {
    writeFileSync(join(svidDir, 'svid_key.pem'), svid.key, { mode: 0o600 });
    writeFileSync(join(svidDir, 'svid.pem'), svid.cert);
    writeFileSync(join(svidDir, 'bundle.pem'), svid.bundle);
  };
  const gwSvid = await svidOf(GATEWAY_ID, opts.gatewaySvidTtl ? { ttl: opts.gatewaySvidTtl } : {});
  writeSvid(gwSvid);

  // --- the gateway: its own process, no storage, no seal ---
  const gatewayCert = opts.gatewayTls ? selfSignedCert(dir, 'gateway') : undefined;
  const gwConfig = join(dir, 'gateway.yaml');
  writeFileSync(
    gwConfig,
    [
      'log_level: info',
      'gateway:',
      '  listen: 127.0.0.1:0',
      ...(gatewayCert
        ? [
            `  tls: {cert_file: ${gatewayCert.certFile}, key_file: ${gatewayCert.keyFile}, client_certificates: request}`,
          ]
        : []),
      '  metrics_listen: 127.0.0.1:0',
      '  vault:',
      `    url: ${vault.address}`,
      `    ca_file: ${certFile}`,
      `    svid: {dir: ${svidDir}}`,
      '  routes:',
      '    - provider: openai',
      '      models: ["gpt-4o", "gpt-4o-mini", "gpt-*"]',
      `      base_url: ${openaiFake.url}`,
      '      keys: [llm/dev/OPENAI_API_KEY]',
      '    - provider: anthropic',
      '      models: ["claude-sonnet-5-5", "claude-*"]',
      `      base_url: ${anthropicFake.url}`,
      '      keys: [llm/dev/ANTHROPIC_API_KEY]',
      '  prices:',
      '    "gpt-*": { input: 2.5, output: 10 }',
      '    "claude-*": { input: 3, output: 15 }',
      '',
    ].join('\n'),
  );
  const gateway = await startServerProcess(t, ['--config', gwConfig], {}, 'gateway');
  const gw = /Gateway listening on (https?:\/\/\S+)/.exec(gateway.output())?.[1] ?? gateway.address;
  const metrics = /"metrics":"(http:\/\/[^"]+)"/.exec(gateway.output())?.[1];

  const appToken = async (scope: Record<string, unknown> = { providers: ['openai', 'anthropic'] }) => {
    const r = (await admin('POST', '/v1/auth/token/create', {
      roles: ['app'],
      ttl: '1h',
      display_name: 'remote-gateway-app',
      scope,
    })) as { auth?: { client_token: string }; token?: string };
    return r.auth?.client_token ?? r.token!;
  };
  const audit = v.audit;
  return {
    dir,
    vault,
    gateway,
    gw,
    metrics,
    call,
    admin,
    root,
    ca,
    svidOf,
    gwSvid,
    writeSvid,
    appToken,
    audit,
    auditText: () => readFileSync(v.auditFile, 'utf8'),
    openaiFake,
    anthropicFake,
    dbPassword,
    gatewayCa: gatewayCert ? readFileSync(gatewayCert.certFile, 'utf8') : undefined,
    openai: (apiKey: string) => new OpenAI({ baseURL: `${gw}/v1`, apiKey, maxRetries: 0 }),
    anthropic: (apiKey: string) => new Anthropic({ baseURL: gw, apiKey, maxRetries: 0 }),
  };
}

test('a gateway in front of a remote vault over mTLS: the vault decides, holds the keys and the audit record', {
  timeout: 120_000,
}, async (t) => {
  const s = await setup(t);
  const upstreamCalls = () => s.openaiFake.requests.length + s.anthropicFake.requests.length;

  await t.test(
    'the OpenAI client completes plain and streaming calls with an app token; the key stays in the vault',
    async () => {
      const token = await s.appToken();
      const openai = s.openai(token);
      const plain = await openai.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'hello over the remote gateway' }],
      });
      assert.ok(plain.choices[0]?.message.content);
      const stream = await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'stream please' }],
        stream: true,
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.ok(text.length > 0);
      const seen = s.openaiFake.requests.at(-1)!;
      assert.equal(
        seen.headers.authorization,
        `Bearer ${s.openaiFake.key}`,
        'the fake got the vault-held key',
      );
      assert.ok(!JSON.stringify(plain).includes(s.openaiFake.key));
      // the gateway's record is in the vault's audit log, vouched for by the gateway's SPIFFE ID
      const calls = s.audit().filter((e) => e.operation === 'gateway.invoke');
      assert.ok(calls.length >= 2, 'one record per call');
      const last = calls.at(-1)!;
      assert.equal((last.request as Record<string, unknown>).gateway, GATEWAY_ID);
      assert.equal((last.actor as Record<string, unknown>).display_name, 'remote-gateway-app');
      assert.equal(last.resource, 'Model::openai/gpt-4o-mini');
      // the plumbing is not audited call by call (only refusals and value checks are), the key reads are
      assert.equal(
        s
          .audit()
          .filter(
            (e) => String(e.operation).startsWith('gateway.vault.') && e.operation !== 'gateway.vault.holds',
          ).length,
        0,
      );
      assert.ok(
        s.audit().some((e) => e.operation === 'secret.read' && String(e.resource).includes('OPENAI_API_KEY')),
      );
      assert.ok(!s.auditText().includes(s.openaiFake.key), 'the key is in no audit entry');
      assert.ok(!s.auditText().includes(token), 'the token is in no audit entry');
    },
  );

  await t.test(
    'the answer carries one provenance link, signed with the gateway SVID from the agent, over the answer and the request sent upstream',
    async () => {
      const traceId = randomBytes(16).toString('hex');
      const res = await fetch(`${s.gw}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await s.appToken()}`,
          'content-type': 'application/json',
          traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
        },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'sign this' }] }),
      });
      assert.equal(res.status, 200);
      const text = await res.text();
      const links = decodeProvenanceHeader(res.headers.get(PROVENANCE_HEADER));
      // no remote stage: one signature per call (decision 0017)
      assert.deepEqual(
        links.map((l) => [l.stage, l.spiffe_id]),
        [['gateway', GATEWAY_ID]],
      );
      const upstream = s.openaiFake.requests.findLast((r) => r.rawBody.includes('sign this'));
      assert.ok(upstream, 'the provider received the call');
      const bundles = bundlesFromCertificates(s.gwSvid.bundle, TD);
      const check = (body: string, request: string) =>
        verifyStage(links[0]!, {
          body,
          request,
          traceId,
          prev: null,
          bundles,
          expectSpiffeId: (id) => id === GATEWAY_ID,
          now: Date.now(),
        });
      // the link covers the bytes received and vouches for the exact bytes the provider received
      const verified = await check(text, upstream.rawBody);
      assert.equal(verified.spiffeId, GATEWAY_ID);
      assert.equal(verified.requestSha256, createHash('sha256').update(upstream.rawBody).digest('base64url'));
      // one changed byte of the answer, or of the request, does not verify
      await assert.rejects(check(text.replace('"', "'"), upstream.rawBody), /does not verify/);
      await assert.rejects(check(text, upstream.rawBody.replace('sign this', 'sign that')), /does not vouch/);
    },
  );

  await t.test(
    'a virtual key works with the Anthropic client, is refused once revoked, and never outside its scope',
    async () => {
      const created = (await s.admin('POST', '/v1/gateway/keys', {
        name: 'remote-app',
        scope: { providers: ['anthropic'], models: ['claude-sonnet-*'] },
        ttl: '10m',
      })) as { virtual_key: string; key: { id: string } };
      const anthropic = s.anthropic(created.virtual_key);
      const msg = await anthropic.messages.create({
        model: 'claude-sonnet-5-5',
        max_tokens: 64,
        messages: [{ role: 'user', content: 'hi' }],
      });
      assert.equal(msg.type, 'message');
      assert.equal(s.anthropicFake.requests.at(-1)!.headers['x-api-key'], s.anthropicFake.key);
      // outside its model scope
      await assert.rejects(
        anthropic.messages.create({
          model: 'claude-haiku-5-5',
          max_tokens: 8,
          messages: [{ role: 'user', content: 'x' }],
        }),
        (e: { status?: number }) => e.status === 403,
      );
      await s.admin('DELETE', `/v1/gateway/keys/${created.key.id}`);
      await assert.rejects(
        anthropic.messages.create({
          model: 'claude-sonnet-5-5',
          max_tokens: 8,
          messages: [{ role: 'user', content: 'x' }],
        }),
        (e: { status?: number }) => e.status === 401,
      );
    },
  );

  await t.test(
    '100 concurrent calls against a budget of 10 a minute: exactly 10 succeed, the rest get 429 with Retry-After',
    async () => {
      const created = (await s.admin('POST', '/v1/gateway/keys', {
        name: 'budget',
        scope: { providers: ['openai'] },
        limits: { requests_per_minute: 10 },
        ttl: '10m',
      })) as { virtual_key: string };
      const before = s.openaiFake.requests.length;
      // one minute window for the whole burst (the limit counts windows aligned to the minute)
      await awayFromMinuteEdge();
      const results = await Promise.all(
        Array.from({ length: 100 }, () =>
          fetch(`${s.gw}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${created.virtual_key}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              model: 'gpt-4o',
              messages: [{ role: 'user', content: 'count me' }],
              max_tokens: 8,
            }),
          }).then(async (r) => ({
            status: r.status,
            retry: r.headers.get('retry-after'),
            body: await r.text(),
          })),
        ),
      );
      const ok = results.filter((r) => r.status === 200).length;
      const limited = results.filter((r) => r.status === 429);
      assert.equal(
        ok,
        10,
        JSON.stringify(results.filter((r) => r.status !== 200 && r.status !== 429).slice(0, 3)),
      );
      assert.equal(limited.length, 90);
      assert.ok(limited.every((r) => Number(r.retry) >= 1));
      assert.equal(s.openaiFake.requests.length - before, 10, 'no call over the budget reached the upstream');
    },
  );

  await t.test(
    'reservations are settled from the reported usage (with the record, in one round trip)',
    async () => {
      // 300 tokens a minute; each call reserves its input estimate + max_tokens 100, and uses far less
      const created = (await s.admin('POST', '/v1/gateway/keys', {
        name: 'tokens',
        scope: { providers: ['openai'] },
        limits: { tokens_per_minute: 300 },
        ttl: '10m',
      })) as { virtual_key: string };
      const openai = s.openai(created.virtual_key);
      let used = 0;
      for (let i = 0; i < 6; i++) {
        const r = await openai.chat.completions.create({
          model: 'gpt-4o',
          max_tokens: 100,
          messages: [{ role: 'user', content: 'hi' }],
        });
        used += r.usage?.total_tokens ?? 0;
      }
      // six calls fit only because each reservation shrank to what was used
      assert.ok(used > 0 && used <= 300, `used ${used}`);
      assert.equal(
        s
          .audit()
          .filter(
            (e) => String(e.operation).startsWith('gateway.vault.') && e.operation !== 'gateway.vault.holds',
          ).length,
        0,
      );
    },
  );

  await t.test('Cedar in the vault decides: a forbid policy on a model is a 403 at the gateway', async () => {
    await s.admin('PUT', '/v1/sys/policies/no-gpt4o-mini', {
      policy:
        'forbid (principal, action == Strongroom::Action::"gateway.invoke", resource == Strongroom::Model::"openai/gpt-4o-mini");',
    });
    const openai = s.openai(await s.appToken());
    const before = upstreamCalls();
    await assert.rejects(
      openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
      (e: { status?: number }) => e.status === 403,
    );
    assert.equal(upstreamCalls(), before);
    await s.admin('DELETE', '/v1/sys/policies/no-gpt4o-mini');
  });

  await t.test(
    'a prompt holding a value stored in the vault is refused (matched by fingerprint in the vault)',
    async () => {
      const openai = s.openai(await s.appToken());
      const before = upstreamCalls();
      await assert.rejects(
        openai.chat.completions.create({
          model: 'gpt-4o',
          messages: [{ role: 'user', content: `connect with password ${s.dbPassword} please` }],
        }),
        (e: { status?: number; code?: string }) => e.status === 400 && e.code === 'credential_detected',
      );
      assert.equal(upstreamCalls(), before);
      assert.ok(!s.auditText().includes(s.dbPassword), 'the candidate is in no audit entry');
    },
  );

  await t.test(
    'the vault serves gateways only: a token, or a workload without the gateway role, is refused',
    async () => {
      const asked = { credential: 'srv_anything', client_address: '127.0.0.1' };
      // the root token: not a workload
      const byToken = await s.call('POST', '/v1/gateway/vault/authenticate', asked, { token: s.root });
      assert.equal(byToken.status, 403);
      // another workload of the same trust domain, with no gateway registration
      const other = await s.svidOf(OTHER_ID);
      const mtls = new Agent({ connect: { ca: s.ca, cert: other.cert, key: other.key } });
      t.after(() => mtls.close());
      const byOther = await s.call('POST', '/v1/gateway/vault/authenticate', asked, { dispatcher: mtls });
      assert.equal(byOther.status, 403);
      assert.equal((byOther.json.error as { code: string }).code, 'permission_denied');
      const keyRead = await s.call('GET', '/v1/secrets/llm/dev/OPENAI_API_KEY', undefined, {
        dispatcher: mtls,
      });
      assert.equal(keyRead.status, 403);
      // refused callers stay under the vault's rate limit (burst 20 here): no flood of refusals into the audit log
      const flood = await Promise.all(
        Array.from({ length: 60 }, () =>
          s.call('POST', '/v1/gateway/vault/authenticate', asked, { dispatcher: mtls }).then((r) => r.status),
        ),
      );
      assert.ok(flood.includes(429), `statuses: ${[...new Set(flood)].join(', ')}`);
      assert.ok(flood.every((st) => st === 403 || st === 429));
      // the refusals are audited, with the candidate credential as an HMAC only
      const refused = s.audit().filter((e) => e.operation === 'gateway.vault.authenticate');
      assert.ok(refused.length >= 2);
      assert.ok(!s.auditText().includes('srv_anything'));
    },
  );

  await t.test(
    'a token revoked in the vault ends its open stream at the remote gateway within 1 s, and the upstream request is cancelled',
    async () => {
      const token = await s.appToken();
      s.openaiFake.reply = Array.from({ length: 400 }, (_, i) => `w${i}`).join(' ');
      s.openaiFake.chunkDelayMs = 40;
      try {
        const stream = await s.openai(token).chat.completions.create({
          model: 'gpt-4o',
          stream: true,
          messages: [{ role: 'user', content: 'talk for a while' }],
        });
        let revokedAt = 0;
        let n = 0;
        await assert.rejects(async () => {
          for await (const _ of stream) {
            if (++n === 3) {
              const r = await s.call('POST', '/v1/auth/token/revoke-self', undefined, { token });
              assert.equal(r.status, 200);
              revokedAt = Date.now();
            }
          }
        }, /revoked/);
        const took = Date.now() - revokedAt;
        assert.ok(took < 1000, `the stream went on ${took} ms after the revocation`);
        for (let i = 0; i < 50 && s.openaiFake.lastRequest()?.abortedAt === undefined; i++)
          await new Promise((r) => setTimeout(r, 20));
        assert.ok(s.openaiFake.lastRequest()?.abortedAt, 'the upstream request was cancelled');
      } finally {
        s.openaiFake.reply = undefined;
        s.openaiFake.chunkDelayMs = 0;
      }
    },
  );

  await t.test('the gateway exposes its metrics on its own listener', async () => {
    assert.ok(s.metrics, s.gateway.output());
    const text = await (await fetch(`${s.metrics}/metrics`)).text();
    assert.match(
      text,
      /strongroom_gateway_requests_total\{provider="openai",model="gpt-4o",status="200"\} \d+/,
    );
    assert.match(text, /strongroom_gateway_denials_total/);
    // health follows the vault (asked at most once a second), on both listeners
    assert.deepEqual(await (await fetch(`${s.metrics}/healthz`)).json(), { status: 'ok' });
    assert.equal((await fetch(`${s.gw}/healthz`)).status, 200);
  });

  await t.test(
    'a sealed vault, then a stopped one: 503 at the gateway and no upstream call (fail closed)',
    async () => {
      const openai = s.openai(await s.appToken());
      await s.admin('POST', '/v1/sys/seal');
      const before = upstreamCalls();
      await assert.rejects(
        openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
        (e: { status?: number }) => e.status === 503,
      );
      await new Promise((r) => setTimeout(r, 1_100));
      const sealedHealth = await fetch(`${s.gw}/healthz`);
      assert.equal(sealedHealth.status, 503);
      assert.deepEqual(await sealedHealth.json(), { status: 'sealed' });
      await s.vault.stop();
      // the gateway took the vault as sealed for a second after its last answer; then it asks again
      await new Promise((r) => setTimeout(r, 1_100));
      assert.deepEqual(await (await fetch(`${s.metrics}/healthz`)).json(), { status: 'vault_unavailable' });
      const res = await fetch(`${s.gw}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer whatever', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
      });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'vault_unavailable');
      // the caller is told no internals; the gateway's log says what went wrong
      assert.equal(body.error.message, 'the gateway cannot use its vault right now: try again later');
      assert.match(s.gateway.output(), /"detail":"cannot reach the vault at https:\/\/127\.0\.0\.1:\d+/);
      assert.equal(upstreamCalls(), before);
      assert.ok(!s.gateway.output().includes(s.openaiFake.key), 'the key is in no gateway log line');
    },
  );
});

test('the gateway rotates its SVID from the agent files: calls keep working after the first SVID expired', {
  timeout: 90_000,
}, async (t) => {
  const s = await setup(t, { gatewaySvidTtl: '10s' });
  const openai = s.openai(await s.appToken());
  const ask = () =>
    openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
  assert.ok((await ask()).choices.length);
  // the agent renews at half-life: a new SVID, obtained with the current one, written over the files
  const renewed = await s.svidOf(GATEWAY_ID, {
    ttl: '1h',
    renew: { cert: s.gwSvid.cert, key: s.gwSvid.key },
  });
  s.writeSvid(renewed);
  // past the first SVID's expiry, the vault refuses it (401 on any connection still using it)
  await new Promise((r) => setTimeout(r, Math.max(0, s.gwSvid.expiresAt - Date.now()) + 500));
  for (let i = 0; i < 5; i++)
    assert.ok((await ask()).choices.length, `call ${i} after the first SVID expired`);
  // and nothing was refused for the gateway on the way
  assert.equal(
    s
      .audit()
      .filter(
        (e) => String(e.operation).startsWith('gateway.vault.') && e.operation !== 'gateway.vault.holds',
      ).length,
    0,
  );
});

test('over mTLS to the gateway: a virtual key bound to a SPIFFE ID works only with that SVID, checked by the remote vault', {
  timeout: 90_000,
}, async (t) => {
  const s = await setup(t, { gatewayTls: true });
  assert.match(s.gw, /^https:/);
  const BOUND = `spiffe://${TD}/app/bound`;
  const bound = await s.svidOf(BOUND);
  const other = await s.svidOf(OTHER_ID);
  const created = (await s.admin('POST', '/v1/gateway/keys', {
    name: 'bound',
    scope: { providers: ['openai'] },
    spiffe_id: BOUND,
    ttl: '10m',
  })) as { virtual_key: string };
  const ask = async (client?: { cert: string; key: string }) => {
    const dispatcher = new Agent({ connect: { ca: s.gatewayCa!, ...(client ?? {}) } });
    try {
      const res = await undiciFetch(`${s.gw}/v1/chat/completions`, {
        method: 'POST',
        dispatcher,
        headers: { authorization: `Bearer ${created.virtual_key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'bound call' }] }),
      });
      return { status: res.status, body: await res.text() };
    } finally {
      await dispatcher.close();
    }
  };
  const before = s.openaiFake.requests.length;
  // the key string alone is useless
  const alone = await ask();
  assert.equal(alone.status, 401, alone.body);
  // another workload's SVID does not unlock it
  const wrong = await ask({ cert: other.cert, key: other.key });
  assert.equal(wrong.status, 401, wrong.body);
  assert.equal(s.openaiFake.requests.length, before, 'no upstream call without the bound SVID');
  // the bound workload's SVID does (its chain was verified by the vault, the gateway holds no trust bundle)
  const ok = await ask({ cert: bound.cert, key: bound.key });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(s.openaiFake.requests.length, before + 1);
  const record = s
    .audit()
    .filter((e) => e.operation === 'gateway.invoke')
    .at(-1)!;
  assert.equal((record.actor as { display_name: string }).display_name, 'virtual-key:bound');
});
