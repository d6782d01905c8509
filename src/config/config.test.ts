import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadRemoteGatewayConfig, loadServerConfig } from './config.ts';

function withFile(t: { after(fn: () => void): void }, yaml: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sr-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'strongroom.yaml');
  writeFileSync(file, yaml);
  return { dir, file };
}

describe('server configuration', () => {
  test('a minimal file gets defaults, resolves paths against its folder, and is frozen', (t) => {
    const { dir, file } = withFile(t, 'storage:\n  sqlite:\n    path: data/sr.db\n');
    const c = loadServerConfig({ config: file }, {}, '/');
    assert.equal(c.listen, '127.0.0.1:8210');
    assert.equal(c.max_request_bytes, 1048576);
    assert.deepEqual(c.seal, { shamir: {} });
    assert.deepEqual(c.storage, { sqlite: { path: join(dir, 'data/sr.db') } });
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.storage));
    assert.throws(() => {
      (c as { listen: string }).listen = 'x';
    }, TypeError);
  });

  test('environment variables override the file and flags override both', (t) => {
    const { file } = withFile(t, 'listen: 127.0.0.1:1111\nstorage: {sqlite: {path: /tmp/a.db}}\n');
    const env = {
      STRONGROOM_LISTEN: '127.0.0.1:2222',
      STRONGROOM_MAX_REQUEST_BYTES: '4096',
      STRONGROOM_SEAL_STATIC_KEY_FILE: '/k',
    };
    assert.equal(loadServerConfig({ config: file }, env, '/').listen, '127.0.0.1:2222');
    assert.equal(loadServerConfig({ config: file }, env, '/').max_request_bytes, 4096);
    assert.deepEqual(loadServerConfig({ config: file }, env, '/').seal, { static: { key_file: '/k' } });
    assert.equal(
      loadServerConfig({ config: file, listen: '127.0.0.1:3333' }, env, '/').listen,
      '127.0.0.1:3333',
    );
  });

  test('leases: the sweeper settings are read, and unknown or out-of-range ones refused', (t) => {
    const { file } = withFile(
      t,
      'storage: {sqlite: {path: /tmp/a.db}}\nleases: {sweep_interval_ms: 500, max_per_holder: 50}\n',
    );
    assert.deepEqual(loadServerConfig({ config: file }, {}, '/').leases, {
      sweep_interval_ms: 500,
      max_per_holder: 50,
    });
    const bad = withFile(t, 'storage: {sqlite: {path: /tmp/a.db}}\nleases: {sweep_interval_ms: 1}\n');
    assert.throws(() => loadServerConfig({ config: bad.file }, {}, '/'), /sweep_interval_ms/);
    const unknown = withFile(t, 'storage: {sqlite: {path: /tmp/a.db}}\nleases: {forever: true}\n');
    assert.throws(() => loadServerConfig({ config: unknown.file }, {}, '/'), /forever/);
  });

  test('the access log is off unless asked for, in the file or with STRONGROOM_ACCESS_LOG', (t) => {
    assert.equal(loadServerConfig({ dev: true }, {}, '/').access_log, undefined);
    const { file } = withFile(t, 'storage: {sqlite: {path: /tmp/a.db}}\naccess_log: true\n');
    assert.equal(loadServerConfig({ config: file }, {}, '/').access_log, true);
    assert.equal(loadServerConfig({ config: file }, { STRONGROOM_ACCESS_LOG: 'off' }, '/').access_log, false);
    assert.equal(loadServerConfig({ dev: true }, { STRONGROOM_ACCESS_LOG: '1' }, '/').access_log, true);
    assert.throws(
      () => loadServerConfig({ dev: true }, { STRONGROOM_ACCESS_LOG: 'loud' }, '/'),
      /STRONGROOM_ACCESS_LOG/,
    );
  });

  test('dev mode puts SQLite and the key file under .strongroom-dev', () => {
    const c = loadServerConfig({ dev: true }, {}, '/work/x');
    assert.deepEqual(c.storage, { sqlite: { path: '/work/x/.strongroom-dev/strongroom.db' } });
    assert.deepEqual(c.seal, { static: { key_file: '/work/x/.strongroom-dev/unseal.key' } });
  });

  const bad: [string, string, RegExp][] = [
    ['an unknown top-level key', 'storage: {memory: {}}\nlisten_addr: x\n', /unknown key listen_addr/],
    ['an unknown nested key', 'storage: {sqlite: {path: a, mode: wal}}\n', /unknown key mode/],
    ['two storage backends', 'storage: {sqlite: {path: a}, memory: {}}\n', /storage/],
    ['a bad listen address', 'storage: {memory: {}}\nlisten: nope\n', /listen must be host:port/],
    ['a port out of range', 'storage: {memory: {}}\nlisten: 127.0.0.1:70000\n', /listen must be host:port/],
    ['a too small body limit', 'storage: {memory: {}}\nmax_request_bytes: 10\n', /max_request_bytes/],
    ['a string where a number goes', 'storage: {memory: {}}\nmax_request_bytes: lots\n', /max_request_bytes/],
    ['an unknown seal', 'storage: {memory: {}}\nseal: {hsm: {}}\n', /seal/],
    ['a bad log level', 'storage: {memory: {}}\nlog_level: loud\n', /log_level/],
    [
      'plain HTTP on a public address',
      'storage: {memory: {}}\nlisten: 0.0.0.0:8210\n',
      /refusing to serve plain HTTP/,
    ],
    ['a YAML list', '- a\n- b\n', /must be a YAML mapping/],
    ['broken YAML', 'storage: {sqlite: [\n', /not valid YAML/],
    ['no storage', 'listen: 127.0.0.1:1\n', /no storage configured/],
  ];
  for (const [what, yaml, message] of bad) {
    test(`${what} is a clear startup error`, (t) => {
      const { file } = withFile(t, yaml);
      assert.throws(
        () => loadServerConfig({ config: file }, {}, '/'),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    });
  }

  test('plain HTTP on a public address is allowed only when asked for explicitly', (t) => {
    const { file } = withFile(t, 'storage: {memory: {}}\nlisten: 0.0.0.0:8210\nallow_insecure_http: true\n');
    assert.equal(loadServerConfig({ config: file }, {}, '/').listen, '0.0.0.0:8210');
  });

  test('a missing config file is a clear error', () => {
    assert.throws(
      () => loadServerConfig({ config: '/nonexistent/sr.yaml' }, {}, '/'),
      /cannot read the config file/,
    );
  });

  test('a bad boolean in the environment is a clear error', () => {
    assert.throws(
      () => loadServerConfig({ dev: true }, { STRONGROOM_ALLOW_INSECURE_HTTP: 'maybe' }, '/'),
      /STRONGROOM_ALLOW_INSECURE_HTTP must be true or false/,
    );
  });
});

describe('gateway in front of a remote vault', () => {
  const remote = (extra = '') =>
    [
      'gateway:',
      '  listen: 127.0.0.1:8300',
      '  vault:',
      '    url: https://vault.internal:8210',
      '    ca_file: certs/vault-ca.pem',
      '    svid: {dir: svid}',
      '  routes:',
      '    - {provider: openai, models: [gpt-4o], base_url: "https://api.openai.com/v1", keys: [llm/prod/OPENAI_API_KEY]}',
      extra,
    ].join('\n');

  test('a gateway section with a vault is a gateway configuration: no storage or seal, paths resolved', (t) => {
    const { dir, file } = withFile(t, remote());
    const c = loadRemoteGatewayConfig({ config: file }, {}, '/');
    assert.ok(c);
    assert.equal(c.log_level, 'info');
    assert.equal(c.gateway.vault?.ca_file, join(dir, 'certs/vault-ca.pem'));
    assert.deepEqual(c.gateway.vault?.svid, { dir: join(dir, 'svid') });
    assert.ok(Object.isFrozen(c.gateway));
  });

  test('without a vault, the file is a server configuration (the gateway runs on the vault in process)', (t) => {
    const { file } = withFile(t, 'storage: {memory: {}}\n');
    assert.equal(loadRemoteGatewayConfig({ config: file }, {}, '/'), undefined);
  });

  test('a vault section is refused with storage, a plain-http vault, or two SVID sources', (t) => {
    const cases: [string, RegExp][] = [
      [`storage: {memory: {}}\n${remote()}`, /takes no `storage` section/],
      [remote().replace('https://vault.internal', 'http://vault.internal'), /gateway\.vault\.url/],
      [
        remote().replace('svid: {dir: svid}', 'svid: {dir: svid, workload_api: /run/a.sock}'),
        /gateway\.vault\.svid/,
      ],
      [
        remote().replace('listen: 127.0.0.1:8300', 'listen: 0.0.0.0:8300'),
        /refusing to serve the gateway in plain HTTP/,
      ],
    ];
    for (const [yaml, message] of cases) {
      const { file } = withFile(t, yaml);
      assert.throws(() => loadRemoteGatewayConfig({ config: file }, {}, '/'), message, yaml);
    }
  });

  test('a server configuration may not carry a remote vault section', (t) => {
    const { file } = withFile(t, `storage: {memory: {}}\n${remote()}`);
    assert.throws(
      () => loadServerConfig({ config: file }, {}, '/'),
      /gateway\.vault and gateway\.metrics_listen/,
    );
  });
});

describe('telemetry configuration', () => {
  const base = 'storage: {memory: {}}\n';
  const remoteGateway = [
    'gateway:',
    '  listen: 127.0.0.1:8300',
    '  vault: {url: "https://vault.internal:8210", svid: {dir: svid}}',
    '  routes:',
    '    - {provider: openai, models: [gpt-4o], base_url: "https://api.openai.com/v1", keys: [llm/prod/OPENAI_API_KEY]}',
    '',
  ].join('\n');

  test('otlp_endpoint is the collector base: spans go to its /v1/traces; otlp_traces_endpoint is used as is', (t) => {
    const a = withFile(
      t,
      `${base}telemetry: {otlp_endpoint: "http://127.0.0.1:4318/", service_name: vault-eu}\n`,
    );
    const c = loadServerConfig({ config: a.file }, {}, '/');
    assert.equal(c.telemetry?.otlp_traces_endpoint, 'http://127.0.0.1:4318/v1/traces');
    assert.equal(c.telemetry?.service_name, 'vault-eu');
    const b = withFile(
      t,
      `${base}telemetry: {otlp_traces_endpoint: "https://otel.example.com/in/traces", timeout: 30s}\n`,
    );
    const d = loadServerConfig({ config: b.file }, {}, '/');
    assert.equal(d.telemetry?.otlp_traces_endpoint, 'https://otel.example.com/in/traces');
    assert.equal(d.telemetry?.timeout, 30);
    assert.equal(
      loadServerConfig({ config: withFile(t, base).file }, {}, '/').telemetry,
      undefined,
      'off by default',
    );
  });

  test('the OTEL_* variables override the file, and alone turn export on', (t) => {
    const { file } = withFile(
      t,
      `${base}telemetry: {otlp_endpoint: "http://127.0.0.1:4318", service_name: a}\n`,
    );
    const c = (env: Record<string, string>) => loadServerConfig({ config: file }, env, '/').telemetry;
    assert.equal(
      c({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })?.otlp_traces_endpoint,
      'http://collector:4318/v1/traces',
    );
    assert.equal(
      c({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x',
      })?.otlp_traces_endpoint,
      'http://t:1/x',
    );
    assert.equal(c({ OTEL_SERVICE_NAME: 'b' })?.service_name, 'b');
    const none = withFile(t, base).file;
    assert.equal(loadServerConfig({ config: none }, { OTEL_SERVICE_NAME: 'b' }, '/').telemetry, undefined);
    assert.deepEqual(
      loadServerConfig(
        { config: none },
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SERVICE_NAME: 'b' },
        '/',
      ).telemetry,
      { otlp_endpoint: 'http://c:4318', otlp_traces_endpoint: 'http://c:4318/v1/traces', service_name: 'b' },
    );
  });

  test('a gateway in front of a remote vault takes a telemetry section and the OTEL_* variables', (t) => {
    const { file } = withFile(t, `${remoteGateway}telemetry: {otlp_endpoint: "http://127.0.0.1:4318"}\n`);
    assert.equal(
      loadRemoteGatewayConfig({ config: file }, {}, '/')?.telemetry?.otlp_traces_endpoint,
      'http://127.0.0.1:4318/v1/traces',
    );
    const plain = withFile(t, remoteGateway).file;
    assert.equal(
      loadRemoteGatewayConfig(
        { config: plain },
        { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' },
        '/',
      )?.telemetry?.otlp_traces_endpoint,
      'http://c:4318/v1/traces',
    );
  });

  const bad: [string, string, Record<string, string>, RegExp][] = [
    ['no endpoint', 'telemetry: {service_name: x}\n', {}, /telemetry needs otlp_endpoint/],
    [
      'an endpoint that is not http(s)',
      'telemetry: {otlp_endpoint: "grpc://c:4317"}\n',
      {},
      /telemetry\.otlp_endpoint/,
    ],
    [
      'an environment endpoint that is not a URL',
      '',
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector' },
      /telemetry\.otlp_endpoint/,
    ],
    ['credentials in the URL', 'telemetry: {otlp_endpoint: "https://u:p@c:4318"}\n', {}, /not in the URL/],
    [
      'headers in clear to a remote collector',
      'telemetry: {otlp_endpoint: "http://collector:4318", headers: {authorization: "Bearer x"}}\n',
      {},
      /sent in clear/,
    ],
    [
      'an unknown key',
      'telemetry: {otlp_endpoint: "http://c:4318", protocol: grpc}\n',
      {},
      /unknown key protocol/,
    ],
    [
      'a timeout out of range',
      'telemetry: {otlp_endpoint: "http://c:4318", timeout: 1h}\n',
      {},
      /telemetry\.timeout/,
    ],
  ];
  for (const [name, yaml, env, message] of bad) {
    test(`telemetry with ${name} is refused with a clear message`, (t) => {
      const { file } = withFile(t, `${base}${yaml}`);
      assert.throws(
        () => loadServerConfig({ config: file }, env, '/'),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});
