import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import OpenAI from 'openai';
import { loadServerConfig } from '../../src/config/config.ts';
import { startServer } from '../../src/roles/server.ts';
import { createClient } from '../../src/sdk/client.ts';
import { startOpenAiFake, type UpstreamFake } from '../fakes/openai-upstream.ts';
import { startOtlpReceiver } from '../fakes/otlp-receiver.ts';
import { tempDir } from '../helpers/app.ts';
import { BIN, NODE } from '../helpers/process.ts';

const PROMPT = 'the-secret-plans-for-tuesday';

async function setup(t: Parameters<typeof tempDir>[0], extra = '') {
  const dir = tempDir(t);
  const fake = await startOpenAiFake();
  t.after(() => fake.close());
  writeFileSync(
    join(dir, 'strongroom.yaml'),
    `listen: 127.0.0.1:0
audit:
  - file: { path: audit.log }
gateway:
  listen: 127.0.0.1:0
  routes:
    - provider: openai
      models: ["gpt-*"]
      base_url: ${fake.url}
      keys: [llm/dev/OPENAI_API_KEY]
  prices: { "gpt-*": { input: 2.5, output: 10 } }
${extra}`,
  );
  const config = loadServerConfig(
    { config: join(dir, 'strongroom.yaml'), dev: true, data: join(dir, 'data') },
    {},
    dir,
  );
  const server = await startServer(config);
  t.after(() => server.close());
  const admin = createClient({ addr: server.address, token: server.devRootToken });
  await admin.createProject('llm');
  await admin.putSecret('llm', 'dev', 'OPENAI_API_KEY', fake.key, { force: true });
  const openai = new OpenAI({
    baseURL: `${server.gateway!.address}/v1`,
    apiKey: server.devRootToken!,
    maxRetries: 0,
  });
  return { dir, fake, server, admin, openai };
}

test('anomalies: a new model after the learning period narrows the caller and is audited', async (t) => {
  const { openai, dir, server } = await setup(
    t,
    `  anomaly:
    learning_calls: 3
    actions: { new_model: narrow }
`,
  );
  for (let i = 0; i < 4; i++) {
    await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  }
  await assert.rejects(
    openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    (err: unknown) => {
      assert.equal((err as { status?: number }).status, 403);
      assert.equal((err as { code?: string }).code, 'anomaly_narrowed');
      return true;
    },
  );
  // still allowed what it used before
  await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
  assert.match(audit, /"operation":"gateway\.anomaly"/);
  assert.match(audit, /anomaly:new_model/);
  const res = await fetch(`${server.address}/v1/sys/metrics`, {
    headers: { authorization: `Bearer ${server.devRootToken}` },
  });
  assert.match(await res.text(), /strongroom_gateway_anomalies_total\{kind="new_model",action="narrow"\} 1/);
});

// ---- the shipped binary (issue 12 item 15): propagation always, OTLP/HTTP export when configured ----

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${CLIENT_SPAN}-01`;

interface BinaryGateway {
  child: ChildProcess;
  gateway: string;
  root: string;
  fake: UpstreamFake;
  dir: string;
  output(): string;
  /** SIGTERM, and the exit code once the process is gone. */
  stop(): Promise<number | null>;
}

/**
 * `strongroom gateway --dev --config F` as a real process (the binary users run, with nothing registered
 * by the test), its gateway routing gpt-* to the OpenAI fake whose key is stored in the vault.
 */
async function startBinaryGateway(
  t: TestContext,
  opts: { yaml?: string; env?: Record<string, string> } = {},
): Promise<BinaryGateway> {
  const dir = tempDir(t);
  const fake = await startOpenAiFake();
  t.after(() => fake.close());
  writeFileSync(
    join(dir, 'strongroom.yaml'),
    `listen: 127.0.0.1:0
audit:
  - file: { path: audit.log }
gateway:
  listen: 127.0.0.1:0
  routes:
    - provider: openai
      models: ["gpt-*"]
      base_url: ${fake.url}
      keys: [llm/dev/OPENAI_API_KEY]
  prices: { "gpt-*": { input: 2.5, output: 10 } }
${opts.yaml ?? ''}`,
  );
  // the test's own environment never configures the child's telemetry
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OTEL_')) env[k] = v;
  const child = spawn(
    NODE,
    [BIN, 'gateway', '--dev', '--data', join(dir, 'data'), '--config', join(dir, 'strongroom.yaml')],
    {
      cwd: dir,
      env: { ...env, STRONGROOM_LOG_LEVEL: 'warn', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const deadline = Date.now() + 20_000;
  const STARTED =
    /listening on (http:\/\/\S+)[\s\S]*STRONGROOM_TOKEN=(\S+)[\s\S]*Gateway listening on (http:\/\/\S+)/;
  let m = STARTED.exec(out);
  while (!m) {
    if (child.exitCode !== null) throw new Error(`strongroom gateway exited with ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`strongroom gateway did not start in 20 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
    m = STARTED.exec(out);
  }
  const [, vault, root, gateway] = m;
  const admin = createClient({ addr: vault!, token: root! });
  await admin.createProject('llm');
  await admin.putSecret('llm', 'dev', 'OPENAI_API_KEY', fake.key, { force: true });
  return {
    child,
    gateway: gateway!,
    root: root!,
    fake,
    dir,
    output: () => out,
    async stop() {
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

const openaiFor = (g: BinaryGateway) =>
  new OpenAI({ baseURL: `${g.gateway}/v1`, apiKey: g.root, maxRetries: 0 });

/** One plain and one streamed chat call, both continuing the caller's trace. */
async function twoCalls(g: BinaryGateway): Promise<void> {
  const openai = openaiFor(g);
  const plain = await openai.chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] },
    { headers: { traceparent: TRACEPARENT } },
  );
  assert.match(plain.choices[0]!.message.content ?? '', /You said/);
  const stream = await openai.chat.completions.create(
    { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: `${PROMPT} again` }] },
    { headers: { traceparent: TRACEPARENT } },
  );
  for await (const _ of stream) {
    // drained
  }
}

test('the strongroom binary forwards the caller trace context to the provider with no telemetry configured', async (t) => {
  const g = await startBinaryGateway(t);
  await openaiFor(g).chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] },
    { headers: { traceparent: TRACEPARENT } },
  );
  const upstream = g.fake.lastRequest()!;
  // no span is made when none is exported: the parent is passed on as it came (W3C Trace Context §3.2)
  assert.equal(upstream.headers.traceparent, TRACEPARENT, 'the upstream continues the caller trace');
  // and without a traceparent nothing is made up
  await openaiFor(g).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(g.fake.lastRequest()!.headers.traceparent, undefined);
});

test('with telemetry configured, the binary exports the gateway spans over OTLP/HTTP: the caller trace, a new span forwarded upstream, GenAI attributes, no key, credential or prompt', async (t) => {
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const g = await startBinaryGateway(t, {
    yaml: `telemetry:\n  otlp_endpoint: ${receiver.url}\n  service_name: strongroom-gw-test\n`,
  });
  await twoCalls(g);
  // the upstream got the caller's trace with the gateway's own span as parent
  const upstream = g.fake.requests.filter((r) => r.pathname === '/v1/chat/completions');
  assert.equal(upstream.length, 2);
  const forwarded = upstream.map((r) => {
    const m = new RegExp(`^00-${TRACE_ID}-([0-9a-f]{16})-01$`).exec(String(r.headers.traceparent));
    assert.ok(m, `the upstream traceparent continues the caller trace: ${r.headers.traceparent}`);
    assert.notEqual(m[1], CLIENT_SPAN, 'a new span id: the gateway span');
    return m[1]!;
  });
  // SIGTERM flushes the batch (default delay 5 s): every span is there once the process has stopped
  assert.equal(await g.stop(), 0);
  const spans = receiver.spans().filter((s) => s.name.startsWith('gateway '));
  assert.deepEqual(receiver.refused(), []);
  assert.equal(
    spans.length,
    2,
    `two gateway spans (got ${receiver
      .spans()
      .map((s) => s.name)
      .join(', ')})`,
  );
  for (const [i, span] of spans.entries()) {
    assert.equal(span.name, 'gateway chat.completions');
    assert.equal(span.traceId, TRACE_ID, 'the caller trace continues');
    assert.equal(span.parentSpanId, CLIENT_SPAN, 'under the caller span');
    assert.equal(span.spanId, forwarded[i], 'the span the upstream was told about');
    assert.equal(span.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(span.resource['service.name'], 'strongroom-gw-test');
    assert.equal(span.attributes['gen_ai.system'], 'openai');
    assert.equal(span.attributes['gen_ai.operation.name'], 'chat.completions');
    assert.equal(span.attributes['gen_ai.request.model'], i === 0 ? 'gpt-4o' : 'gpt-4o-mini');
    assert.ok(Number(span.attributes['gen_ai.usage.input_tokens']) > 0);
    assert.ok(Number(span.attributes['gen_ai.usage.output_tokens']) > 0);
    assert.equal(span.attributes['http.response.status_code'], 200);
  }
  // nothing exported holds the provider key, the caller's credential, the prompt or the answer
  const exported = receiver.rawBodies().join('\n');
  for (const [what, text] of [
    ['the provider key', g.fake.key],
    ['the provider key (its secret part)', g.fake.key.slice(-24)],
    ['the client credential', g.root],
    ['the prompt', PROMPT],
    ['the completion', 'You said'],
  ] as const) {
    assert.ok(!exported.includes(text), `no ${what} in the exported spans`);
  }
  // the audit: the calls' tokens and cost, no prompt and no key
  const audit = readFileSync(join(g.dir, 'audit.log'), 'utf8');
  const settled = audit
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { operation?: string; request?: Record<string, unknown> })
    .filter((e) => e.operation === 'gateway.invoke' && Number(e.request?.input_tokens) > 0);
  assert.ok(settled.length >= 2, 'each call is audited with its tokens');
  assert.ok(settled.every((e) => Number(e.request!.cost_usd) > 0));
  assert.doesNotMatch(audit, new RegExp(PROMPT));
  assert.ok(!audit.includes(g.fake.key));
});

test('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_SERVICE_NAME configure the export, and SIGTERM exports the spans still queued', async (t) => {
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const g = await startBinaryGateway(t, {
    env: {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
      OTEL_SERVICE_NAME: 'from-env',
    },
  });
  await openaiFor(g).chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] },
    { headers: { traceparent: TRACEPARENT } },
  );
  // still in the batch (exported every 5 s): only the shutdown sends it
  assert.equal(receiver.spans().length, 0, 'nothing exported before the batch delay');
  assert.equal(await g.stop(), 0);
  const [span] = await receiver.waitForSpans(1, 1_000);
  assert.equal(span!.name, 'gateway chat.completions');
  assert.equal(span!.traceId, TRACE_ID);
  assert.equal(span!.resource['service.name'], 'from-env');
});

test('an unreachable collector neither fails calls nor holds the process at SIGTERM', async (t) => {
  const receiver = await startOtlpReceiver();
  const dead = receiver.url;
  await receiver.close();
  const g = await startBinaryGateway(t, { yaml: `telemetry:\n  otlp_endpoint: ${dead}\n  timeout: 2s\n` });
  const res = await openaiFor(g).chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] },
    { headers: { traceparent: TRACEPARENT } },
  );
  assert.match(res.choices[0]!.message.content ?? '', /You said/);
  const t0 = Date.now();
  assert.equal(await g.stop(), 0);
  assert.ok(Date.now() - t0 < 8_000, `stopped in ${Date.now() - t0} ms`);
  // the failure is reported once, without the span data
  assert.match(g.output(), /telemetry: exporting spans to http:\/\/127\.0\.0\.1:\d+ failed/);
  assert.doesNotMatch(g.output(), /gen_ai|chat\.completions/);
});

test('a telemetry section without an endpoint stops the binary with a clear message', async (t) => {
  await assert.rejects(
    startBinaryGateway(t, { yaml: 'telemetry:\n  service_name: x\n' }),
    /exited with 2[\s\S]*telemetry needs otlp_endpoint/,
  );
});
