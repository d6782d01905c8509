import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manualClock } from '../../src/lib/clock.ts';
import { createMetricsRegistry, renderFamilies } from '../../src/lib/metrics.ts';
import { buildTestApp } from '../helpers/app.ts';

/**
 * `GET /v1/sys/metrics` (issue 4, item 4): the Prometheus text exposition
 * parses line by line, its secret gauges match a known set of secrets, and
 * it needs a token allowed `sys.metrics`.
 */
const DAY = 86_400_000;
const START = Date.UTC(2026, 0, 1);

interface Line {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the exposition strictly: HELP/TYPE comments, else `name{labels} value`. */
function parse(text: string): Line[] {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const out: Line[] = [];
  const typed = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|untyped)$/.exec(line);
    if (type) {
      assert.ok(!typed.has(type[1]!), `one TYPE line per family: ${type[1]}`);
      typed.add(type[1]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `line does not parse: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let pos = 0;
    while (pos < body.length) {
      re.lastIndex = pos;
      const l = re.exec(body);
      assert.ok(l, `labels do not parse: ${body}`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      pos = re.lastIndex;
    }
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(m[1]!) || typed.has(base), `${m[1]} has a TYPE line before its samples`);
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const pick = (lines: Line[], name: string, labels: Record<string, string> = {}) =>
  lines.filter((l) => l.name === name && Object.entries(labels).every(([k, v]) => l.labels[k] === v));

test('the exposition parses and its secret gauges and request counters match a known set of secrets', async (t) => {
  const clock = manualClock(START);
  const a = await buildTestApp(t, { clock });
  await a.call('POST', '/v1/projects', { name: 'llm', environments: ['dev', 'prod', 'empty'] });
  const put = (env: string, name: string, body: Record<string, unknown> = {}) =>
    a.call('PUT', `/v1/secrets/llm/${env}/${name}`, { value: 'v', ...body });
  await put('prod', 'OVERDUE', { rotation: { interval: '30d' } });
  await put('prod', 'EXPIRING', {
    rotation: { interval: '365d' },
    expires_at: new Date(START + 103 * DAY).toISOString(),
  });
  await put('prod', 'EXPIRED', {
    rotation: { interval: '365d' },
    expires_at: new Date(START + 50 * DAY).toISOString(),
  });
  await put('dev', 'OLD');
  await put('dev', 'GONE');
  await a.call('DELETE', '/v1/secrets/llm/dev/GONE');
  clock.advance(100 * DAY);
  await put('dev', 'NEW');

  const res = await a.call('GET', '/v1/sys/metrics');
  assert.equal(res.statusCode, 200, res.body);
  assert.match(res.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
  const lines = parse(res.body);
  const gauge = (name: string, env: string) => {
    const found = pick(lines, name, { project: 'llm', env });
    assert.equal(found.length, 1, `${name}{env=${env}} appears once`);
    return found[0]!.value;
  };
  assert.deepEqual(
    ['prod', 'dev', 'empty'].map((env) => [
      gauge('strongroom_secrets_total', env),
      gauge('strongroom_secrets_rotation_overdue', env),
      gauge('strongroom_secrets_expiring', env),
      gauge('strongroom_secrets_expired', env),
      gauge('strongroom_secrets_never_rotated', env),
    ]),
    [
      [3, 1, 1, 1, 0],
      [2, 0, 0, 0, 1],
      [0, 0, 0, 0, 0],
    ],
  );
  assert.equal(pick(lines, 'strongroom_secrets_expiring', { env: 'prod' })[0]!.labels.within, '7d');
  assert.equal(pick(lines, 'strongroom_rotation_failures_total').length, 1);
  assert.equal(
    pick(lines, 'strongroom_requests_total', { operation: 'secret.write', status: 'ok' })[0]!.value,
    6,
  );
  assert.equal(
    pick(lines, 'strongroom_requests_total', { operation: 'secret.delete', status: 'ok' })[0]!.value,
    1,
  );
  const count = pick(lines, 'strongroom_request_duration_seconds_count', { operation: 'secret.write' })[0]!;
  assert.equal(count.value, 6);
  const inf = pick(lines, 'strongroom_request_duration_seconds_bucket', {
    operation: 'secret.write',
    le: '+Inf',
  })[0]!;
  assert.equal(inf.value, 6);
  assert.ok(pick(lines, 'process_resident_memory_bytes')[0]!.value > 0);
  assert.ok(!res.body.includes('"v"'), 'no value in the exposition');
});

test('metrics need a token allowed sys.metrics: 401 without one, 403 for a developer or a scoped token, 200 for an auditor', async (t) => {
  const a = await buildTestApp(t);
  const mint = async (body: Record<string, unknown>) =>
    (
      (await a.call('POST', '/v1/auth/token/create', { ttl: '1h', ...body })).json() as {
        auth: { client_token: string };
      }
    ).auth.client_token;
  assert.equal((await a.inject({ method: 'GET', url: '/v1/sys/metrics' })).statusCode, 401);
  const dev = await a.call('GET', '/v1/sys/metrics', undefined, await mint({ roles: ['developer'] }));
  assert.equal(dev.statusCode, 403);
  assert.equal((dev.json() as { error: { code: string } }).error.code, 'permission_denied');
  const scoped = await mint({ roles: ['auditor'], scope: { paths: ['llm'] } });
  assert.equal((await a.call('GET', '/v1/sys/metrics', undefined, scoped)).statusCode, 403);
  const auditor = await a.call('GET', '/v1/sys/metrics', undefined, await mint({ roles: ['auditor'] }));
  assert.equal(auditor.statusCode, 200);
  // the denied attempts are counted too
  assert.match(
    auditor.body,
    /^strongroom_requests_total\{operation="sys\.metrics",status="permission_denied"\} 2$/m,
  );
});

test('label values are escaped (backslash, quote, line feed) and counters and histograms render', () => {
  const text = renderFamilies([
    {
      name: 'x_total',
      help: 'help with \\ and\nnewline',
      type: 'counter',
      samples: [{ labels: { v: 'a"b\\c\nd' }, value: 1 }],
    },
  ]);
  assert.equal(
    text,
    '# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\nx_total{v="a\\"b\\\\c\\nd"} 1\n',
  );
  assert.equal(parse(text)[0]!.labels.v, 'a"b\\c\nd');
  const r = createMetricsRegistry();
  r.counter('c_total', 'c', ['k']).inc(['x'], 2);
  assert.equal(
    r.counter('c_total', 'ignored', ['k']).get(['x']),
    2,
    'registering twice returns the same counter',
  );
  const h = r.histogram('h_seconds', 'h', [], [0.1, 1]);
  h.observe([], 0.05);
  h.observe([], 0.5);
  h.observe([], 5);
  const lines = parse(r.render());
  assert.deepEqual(
    pick(lines, 'h_seconds_bucket').map((l) => [l.labels.le, l.value]),
    [
      ['0.1', 1],
      ['1', 2],
      ['+Inf', 3],
    ],
  );
  assert.equal(pick(lines, 'h_seconds_sum')[0]!.value, 5.55);
  assert.throws(() => r.counter('bad name', 'x'), TypeError);
});

// ---- bounded series (issue 12 item 16): defence in depth under the gateway's own bounded labels ----

test('a metric keeps at most its cap of label sets; later new ones count under all-other labels', () => {
  const r = createMetricsRegistry({ maxSeriesPerMetric: 10 });
  const c = r.counter('calls_total', 'calls', ['model', 'status']);
  const h = r.histogram('call_seconds', 'latency', ['model'], [0.1, 1]);
  for (let i = 0; i < 150; i++) {
    c.inc([`made-up-${i}`, '200']);
    h.observe([`made-up-${i}`], 0.05);
  }
  c.inc(['made-up-3', '200'], 5);
  const lines = parse(r.render());
  const counted = pick(lines, 'calls_total');
  assert.equal(counted.length, 11, 'the cap, plus the all-other series');
  assert.deepEqual(pick(lines, 'calls_total', { model: 'other', status: 'other' })[0]!.value, 140);
  assert.equal(pick(lines, 'calls_total', { model: 'made-up-3' })[0]!.value, 6, 'kept series still count');
  assert.equal(
    counted.reduce((n, l) => n + l.value, 0),
    155,
    'nothing is lost',
  );
  assert.equal(pick(lines, 'call_seconds_count').length, 11);
  assert.equal(pick(lines, 'call_seconds_count', { model: 'other' })[0]!.value, 140);
});

test('the default cap is 2,000 label sets per metric', () => {
  const r = createMetricsRegistry();
  const c = r.counter('calls_total', 'calls', ['model']);
  for (let i = 0; i < 5_000; i++) c.inc([`m-${i}`]);
  const lines = pick(parse(r.render()), 'calls_total');
  assert.equal(lines.length, 2_001);
  assert.equal(pick(lines, 'calls_total', { model: 'other' })[0]!.value, 3_000);
});

test('an 8,000-character label value is never stored: it is cut to 256 characters', () => {
  const r = createMetricsRegistry();
  const c = r.counter('calls_total', 'calls', ['model']);
  const long = `gpt-${'x'.repeat(8_000)}`;
  c.inc([long]);
  c.inc([long]);
  c.inc([`${long}y`]);
  const text = r.render();
  assert.ok(!text.includes('x'.repeat(257)), 'no label of 8,000 characters');
  const lines = pick(parse(text), 'calls_total');
  assert.equal(lines.length, 1, 'names equal in their first 256 characters share a series');
  assert.equal(lines[0]!.labels.model!.length, 256);
  assert.equal(lines[0]!.value, 3);
  assert.equal(c.get([long]), 3);
});

test('label values with quotes, backslashes, line feeds, other control characters and lone surrogates stay on one parseable line', () => {
  const r = createMetricsRegistry();
  const c = r.counter('calls_total', 'calls', ['caller', 'reason']);
  const evil = 'virtual-key:"} evil_metric{x="1\nfake_total 1\r\\\u0000\u001b\ud800';
  c.inc([evil, 'a\u0000b']);
  c.inc(['a', '\u0000b']);
  const text = r.render();
  assert.equal(text.split('\n').filter((l) => l.startsWith('calls_total')).length, 2, text);
  for (const ch of ['\r', '\u0000', '\u001b']) assert.ok(!text.includes(ch), JSON.stringify(ch));
  assert.doesNotMatch(text, /^fake_total/m);
  const lines = pick(parse(text), 'calls_total');
  assert.equal(
    lines[0]!.labels.caller,
    'virtual-key:"} evil_metric{x="1\nfake_total 1\ufffd\\\ufffd\ufffd\ufffd',
  );
  // a value holding the registry's key separator cannot pass for another label set
  assert.equal(lines.length, 2);
  assert.equal(pick(lines, 'calls_total', { caller: 'a' })[0]!.labels.reason, '\ufffdb');
});
