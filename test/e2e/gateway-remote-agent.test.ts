import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import OpenAI from 'openai';
import { decodeProvenanceHeader, PROVENANCE_HEADER } from '../../src/gateway/stages/signing.ts';
import { startOpenAiFake } from '../fakes/openai-upstream.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE, ROOT, runCli, startServerProcess } from '../helpers/process.ts';
import { startTlsVault } from '../helpers/tls.ts';

/**
 * docs/gateway-remote.md end to end with the Workload API, nothing stubbed:
 * a `strongroom server` process (the vault, TLS with a private CA, workload
 * identity on), a `strongroom agent` process that logs in as the app
 * `gateway` (registered, with `--app gateway --role gateway --scope llm/dev`,
 * for the gateway's SPIFFE ID) and serves the SPIFFE Workload API with 4 s
 * SVIDs, and a `strongroom gateway` process whose `gateway.vault.svid` is
 * that socket. The OpenAI client calls the gateway; the gateway follows the
 * agent's rotations for its mTLS to the vault (the vault refuses an expired
 * client SVID on any connection, so calls past several lifetimes prove it);
 * once the agent is stopped, the gateway works until its last SVID expires
 * and then fails closed (503 vault_unavailable, no upstream call).
 *
 * The agent trusts the vault's private CA through `vault.ca_file` in its
 * configuration; the CLI used for the set-up through NODE_EXTRA_CA_CERTS.
 */
const TD = 'strongroom.local';
const GATEWAY_ID = `spiffe://${TD}/strongroom/gateway`;
const TTL_S = 4;
const LOOP_MS = 12_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 15_000,
  output?: () => string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch {}
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${output ? `:\n${output()}` : ''}`);
    await sleep(25);
  }
}

interface AgentProc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** The health/metrics port. */
  port: number;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Starts `strongroom agent --config FILE` and waits until it serves the Workload API with an SVID in hand. */
async function startAgent(
  t: TestContext,
  config: string,
  env: Record<string, string> = {},
): Promise<AgentProc> {
  const child = spawn(NODE, [BIN, 'agent', '--config', config], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const output = () => out;
  await until(
    'the agent to serve the Workload API',
    () => /"serving the SPIFFE Workload API"/.test(out) && /"serving health and metrics"/.test(out),
    30_000,
    output,
  );
  const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(out)![1]);
  await until(
    'an SVID in the agent',
    async () => (await getJson(port, '/healthz')).status === 200,
    30_000,
    output,
  );
  return {
    child,
    output,
    exited,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The SVIDs the agent logged: obtained, then each rotation. */
const agentSvids = (out: string) =>
  out
    .split('\n')
    .filter((l) => /"msg":"(obtained an|rotated the) X\.509-SVID"/.test(l))
    .map((l) => JSON.parse(l) as { msg: string; spiffe_id: string; expires_at: string });

/** The gateway's SVID of the moment, as the leaf of its provenance link (the source that also authenticates it to the vault). */
function signingLeaf(header: string | null): X509Certificate {
  const link = decodeProvenanceHeader(header)[0]!;
  const head = JSON.parse(Buffer.from(link.jws.split('.')[0]!, 'base64url').toString()) as { x5c: string[] };
  return new X509Certificate(Buffer.from(head.x5c[0]!, 'base64'));
}

test('a remote gateway with its SVID from a real agent over the Workload API: rotation, then fail closed once the agent stops', {
  timeout: 90_000,
}, async (t) => {
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const dir = tempDir(t, 'strongroom-gw-agent-');
  const openaiFake = await startOpenAiFake();
  t.after(() => openaiFake.close());

  // --- the vault: its own process, TLS with a private CA, workload identity on ---
  const v = await startTlsVault(t, dir, TD);
  const { admin, root, certFile } = v;
  const vault = v.server;
  assert.match(vault.address, /^https:/);
  await admin('POST', '/v1/projects', { name: 'llm' });
  await admin('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: openaiFake.key });

  // --- docs/gateway-remote.md step 2, with the CLI: the app the agent logs in as, entitled to the gateway's ID ---
  const cliEnv = { STRONGROOM_ADDR: vault.address, STRONGROOM_TOKEN: root, NODE_EXTRA_CA_CERTS: certFile };
  const [appCreated, registered] = await Promise.all([
    runCli(['--format', 'json', 'app', 'create', 'gateway', '--role', 'app', '--scope', 'llm/dev'], {
      env: cliEnv,
    }),
    runCli(
      [
        '--format',
        'json',
        'identity',
        'register',
        GATEWAY_ID,
        '--app',
        'gateway',
        '--role',
        'gateway',
        '--scope',
        'llm/dev',
      ],
      { env: cliEnv },
    ),
  ]);
  assert.equal(appCreated.code, 0, appCreated.stderr);
  assert.equal(registered.code, 0, registered.stderr);
  const app = JSON.parse(appCreated.stdout) as { client_id: string; client_secret: string };
  const registration = (JSON.parse(registered.stdout) as { registration: Record<string, unknown> })
    .registration;
  assert.deepEqual(registration.selectors, ['app:gateway']);
  assert.deepEqual(registration.roles, ['gateway']);
  assert.deepEqual(registration.scope, { paths: ['llm/dev'] });
  writeFileSync(join(dir, 'client-id'), `${app.client_id}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'client-secret'), `${app.client_secret}\n`, { mode: 0o600 });

  // --- the agent beside the gateway: logs in as `gateway`, serves the Workload API with 4 s SVIDs ---
  const socket = join(dir, 'run', 'agent.sock');
  const agentConfig = join(dir, 'agent.yaml');
  writeFileSync(
    agentConfig,
    `vault:
  addrs: ["${vault.address}"]
  ca_file: ${certFile}
auth:
  app:
    client_id_file: client-id
    client_secret_file: client-secret
identity:
  spiffe_id: ${GATEWAY_ID}
  socket: run/agent.sock
  ttl: ${TTL_S}s
listen:
  http: 127.0.0.1:0
`,
  );
  const agent = await startAgent(t, agentConfig);
  t.diagnostic(`vault and agent up after ${since()}`);

  // --- the gateway: its own process, no storage, no seal, its SVID from the agent's Workload API ---
  const gwConfig = join(dir, 'gateway.yaml');
  writeFileSync(
    gwConfig,
    [
      'log_level: info',
      'gateway:',
      '  listen: 127.0.0.1:0',
      '  vault:',
      `    url: ${vault.address}`,
      `    ca_file: ${certFile}`,
      `    svid: {workload_api: "unix://${socket}"}`,
      '  routes:',
      '    - provider: openai',
      '      models: ["gpt-4o", "gpt-4o-mini", "gpt-*"]',
      `      base_url: ${openaiFake.url}`,
      '      keys: [llm/dev/OPENAI_API_KEY]',
      '',
    ].join('\n'),
  );
  const gateway = await startServerProcess(t, ['--config', gwConfig], {}, 'gateway');
  const gw = /Gateway listening on (http:\/\/\S+)/.exec(gateway.output())?.[1] ?? gateway.address;
  t.diagnostic(`gateway up after ${since()}`);

  const token = (
    (await admin('POST', '/v1/auth/token/create', {
      roles: ['app'],
      ttl: '1h',
      display_name: 'agent-gateway-app',
      scope: { providers: ['openai'] },
    })) as { auth: { client_token: string } }
  ).auth.client_token;
  const audit = v.audit;
  /** One chat completion through the gateway, with plain fetch (to read the status, the error code and the provenance). */
  const ask = async () => {
    const at = Date.now();
    const res = await fetch(`${gw}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'are you there' }] }),
    });
    const text = await res.text();
    return { at, end: Date.now(), status: res.status, text, provenance: res.headers.get(PROVENANCE_HEADER) };
  };
  const errorCode = (text: string) => {
    try {
      return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    } catch {
      return undefined;
    }
  };

  await t.test(
    'the agent logged in as the app entitled to the gateway ID and serves its SVID to the gateway',
    async () => {
      const health = await getJson(agent.port, '/healthz');
      assert.equal(
        (health.body.svid as { state?: string } | undefined)?.state,
        'ok',
        JSON.stringify(health.body),
      );
      const first = agentSvids(agent.output())[0];
      assert.equal(first?.spiffe_id, GATEWAY_ID, agent.output());
      // the gateway took that ID from the Workload API
      assert.match(gateway.output(), new RegExp(`"spiffe_id":"${GATEWAY_ID}"`));
      assert.match(gateway.output(), /strongroom gateway listening \(remote vault\)/);
      // in the vault's audit log: the app's login, then SVIDs for the gateway ID issued to that app
      const responses = audit().filter((e) => e.type === 'response' && e.status === 'ok');
      assert.ok(
        responses.some(
          (e) =>
            e.operation === 'auth.app-login' &&
            (e.request as { client_id?: string }).client_id === app.client_id,
        ),
        'the app logged in',
      );
      const issued = responses.filter(
        (e) =>
          e.operation === 'identity.x509-svid' &&
          e.resource === `Identity::${GATEWAY_ID}` &&
          (e.actor as { type?: string; id?: string }).type === 'app' &&
          (e.actor as { id?: string }).id === app.client_id,
      );
      assert.ok(issued.length >= 1, 'the agent obtained an SVID for the gateway ID, as the app');
      assert.equal((issued[0]!.request as { ttl?: number }).ttl, TTL_S);
    },
  );

  await t.test(
    'the OpenAI client completes plain and streaming calls with an app token; the key comes from the vault',
    async () => {
      const openai = new OpenAI({ baseURL: `${gw}/v1`, apiKey: token, maxRetries: 0 });
      const before = openaiFake.requests.length;
      const plain = await openai.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'hello through the agent-backed gateway' }],
      });
      assert.match(plain.choices[0]?.message.content ?? '', /You said 5 words/);
      const stream = await openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'stream please' }],
        stream: true,
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.match(text, /You said 2 words/);
      const seen = openaiFake.requests.slice(before);
      assert.equal(seen.length, 2);
      for (const r of seen)
        assert.equal(r.headers.authorization, `Bearer ${openaiFake.key}`, 'the vault-held key');
      assert.ok(!JSON.stringify(plain).includes(openaiFake.key));
      const invoked = audit().filter((e) => e.operation === 'gateway.invoke');
      assert.equal((invoked.at(-1)!.request as Record<string, unknown>).gateway, GATEWAY_ID);
    },
  );

  await t.test(
    `calls keep succeeding for ${LOOP_MS / 1000} s of ${TTL_S} s SVIDs: the gateway follows the rotation`,
    async () => {
      const rotationsBefore = agentSvids(agent.output()).length;
      const upstreamBefore = openaiFake.requests.length;
      const failures: string[] = [];
      /** serial → notAfter, as the gateway held them */
      const held = new Map<string, number>();
      let ok = 0;
      let lastOkAt = 0;
      const end = Date.now() + LOOP_MS;
      while (Date.now() < end) {
        const r = await ask();
        if (r.status !== 200) {
          failures.push(`${r.status} ${r.text.slice(0, 300)}`);
          continue;
        }
        ok++;
        lastOkAt = r.at;
        const leaf = signingLeaf(r.provenance);
        held.set(leaf.serialNumber, leaf.validToDate.getTime());
      }
      const rotations = agentSvids(agent.output()).length - rotationsBefore;
      const firstExpiry = Math.min(...held.values());
      t.diagnostic(
        `${ok} calls in ${LOOP_MS} ms, ${failures.length} failed; the agent rotated ${rotations} times, ` +
          `the gateway signed with ${held.size} distinct SVIDs; the last call ${lastOkAt - firstExpiry} ms after the first of them expired`,
      );
      assert.deepEqual(failures, []);
      assert.ok(ok >= 20, `only ${ok} calls`);
      assert.equal(openaiFake.requests.length - upstreamBefore, ok);
      // TTL 4 s rotated at half-life: ~6 rotations in 12 s; at least 3 shows the gateway followed several
      assert.ok(rotations >= 3, `the agent rotated ${rotations} times`);
      assert.ok(held.size >= 3, `the gateway held ${held.size} SVIDs`);
      // the vault refuses an expired client SVID on any connection: calls long after the first expiry prove the mTLS rotated
      assert.ok(lastOkAt > firstExpiry + TTL_S * 1000, 'calls went on well past the first SVID expiry');
      assert.equal(
        // (value checks are recorded as they happen: only refusals count here)
        audit().filter((e) => String(e.operation).startsWith('gateway.vault.') && e.status === 'error')
          .length,
        0,
        'the vault refused the gateway nothing',
      );
    },
  );

  await t.test(
    'the agent stops: the gateway works until its last SVID expires, then 503 vault_unavailable and no upstream call',
    async () => {
      // stop right after a rotation has reached the gateway, so the SVID it holds has most of its life left
      const n = agentSvids(agent.output()).length;
      await until(
        'a rotation',
        () => agentSvids(agent.output()).length > n,
        TTL_S * 1000 + 5_000,
        agent.output,
      );
      const fresh = Date.parse(agentSvids(agent.output()).at(-1)!.expires_at);
      await until(
        'the gateway to hold the new SVID',
        async () => {
          const r = await ask();
          return r.status === 200 && signingLeaf(r.provenance).validToDate.getTime() >= fresh;
        },
        TTL_S * 1000,
      );
      const stoppedAt = Date.now();
      assert.equal(await agent.stop(), 0, agent.output());
      const lastIssued = Date.parse(agentSvids(agent.output()).at(-1)!.expires_at);
      t.diagnostic(
        `agent stopped in ${Date.now() - stoppedAt} ms; its last SVID expires ${lastIssued - stoppedAt} ms after the stop`,
      );

      // calls go on with the SVID in hand, until it expires
      let ok = 0;
      let lastOk: Awaited<ReturnType<typeof ask>> | undefined;
      let refused: Awaited<ReturnType<typeof ask>> | undefined;
      /** upstream requests made during the refused call (the one crossing the expiry) */
      let crossing = 0;
      const deadline = lastIssued + 10_000;
      while (Date.now() < deadline) {
        const upstreamBefore = openaiFake.requests.length;
        const r = await ask();
        if (r.status === 200) {
          ok++;
          lastOk = r;
          continue;
        }
        refused = r;
        crossing = openaiFake.requests.length - upstreamBefore;
        break;
      }
      assert.ok(refused, 'the gateway never failed after the SVID expired');
      assert.ok(lastOk, `no call succeeded after the agent stopped: ${refused.status} ${refused.text}`);
      // the gateway went on with the SVID it had from the agent (the one seen after the rotation, or a later one)
      const notAfter = signingLeaf(lastOk.provenance).validToDate.getTime();
      assert.ok(
        notAfter >= fresh && notAfter <= lastIssued,
        'the gateway held an SVID the agent issued last',
      );
      t.diagnostic(
        `${ok} more calls succeeded, the last started ${notAfter - lastOk.at} ms before the expiry; ` +
          `refused in a call started ${refused.at - notAfter} ms from the expiry (it ${crossing ? 'had reached' : 'did not reach'} the upstream)`,
      );
      assert.ok(lastOk.at <= notAfter, 'no success started after the expiry');
      assert.ok(refused.end >= notAfter, 'refused only once the SVID expired');
      assert.ok(refused.at - notAfter < 5_000, 'refused soon after the expiry');
      assert.equal(refused.status, 503, refused.text);
      assert.equal(errorCode(refused.text), 'vault_unavailable', refused.text);

      // from then on: 503 vault_unavailable, and the upstream hears nothing
      const upstream = openaiFake.requests.length;
      for (let i = 0; i < 3; i++) {
        const r = await ask();
        assert.equal(r.status, 503, r.text);
        assert.equal(errorCode(r.text), 'vault_unavailable', r.text);
      }
      const openai = new OpenAI({ baseURL: `${gw}/v1`, apiKey: token, maxRetries: 0 });
      await assert.rejects(
        openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }),
        (e: { status?: number; code?: string }) => e.status === 503 && e.code === 'vault_unavailable',
      );
      assert.equal(openaiFake.requests.length, upstream, 'no upstream request once the SVID expired');
      // the gateway said why: the Workload API stream ended (it keeps trying to reconnect)
      assert.match(gateway.output(), /gateway SVID update failed/);
      assert.ok(!gateway.output().includes(openaiFake.key), 'the key is in no gateway log line');
    },
  );

  t.diagnostic(`all done after ${since()}`);
});
