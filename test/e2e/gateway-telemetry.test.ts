import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import OpenAI from 'openai';
import { loadServerConfig } from '../../src/config/config.ts';
import { createClient } from '../../src/sdk/client.ts';
import { startServer } from '../../src/server/run.ts';
import { startOpenAiFake } from '../fakes/openai-upstream.ts';
import { tempDir } from '../helpers/app.ts';

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

test('spans carry the GenAI attributes, continue the caller trace, reach the upstream, and hold no prompt', async (t) => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  t.after(() => {
    trace.disable();
    propagation.disable();
  });
  const { fake, openai, dir } = await setup(t);
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  await openai.chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] },
    { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } },
  );
  const spans = exporter.getFinishedSpans();
  const span = spans.find((s) => s.name === 'gateway chat.completions');
  assert.ok(span, `a gateway span (got ${spans.map((s) => s.name).join(', ')})`);
  assert.equal(span.spanContext().traceId, traceId, 'the caller trace continues');
  assert.equal(span.attributes['gen_ai.system'], 'openai');
  assert.equal(span.attributes['gen_ai.request.model'], 'gpt-4o');
  assert.equal(span.attributes['gen_ai.operation.name'], 'chat.completions');
  assert.ok(Number(span.attributes['gen_ai.usage.input_tokens']) > 0);
  assert.ok(Number(span.attributes['gen_ai.usage.output_tokens']) > 0);
  assert.doesNotMatch(JSON.stringify(span.attributes), new RegExp(PROMPT));
  const upstream = fake.lastRequest()!;
  assert.match(String(upstream.headers.traceparent), new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
  // the audit entry: one per call, tokens and cost, no prompt and no key
  const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
  const calls = audit
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { operation?: string; request?: Record<string, unknown> })
    .filter((e) => e.operation === 'gateway.invoke');
  assert.equal(calls.length, 1);
  assert.ok(Number(calls[0]!.request!.input_tokens) > 0);
  assert.ok(Number(calls[0]!.request!.cost_usd) > 0);
  assert.doesNotMatch(audit, new RegExp(PROMPT));
  assert.ok(!audit.includes(fake.key));
});

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
