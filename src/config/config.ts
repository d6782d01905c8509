// biome-ignore-all lint/style/noExcessiveLinesPerFile: one schema for the whole configuration file, with its environment and flag overrides; each section is short
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { AuditCheckpointConfigSchema, AuditConfigSchema, defaultAuditConfig } from '../audit/config.ts';
import { parseDuration } from '../lib/duration.ts';
import { DEFAULT_MAX_JSON_DEPTH } from '../lib/json.ts';
import { type GatewayConfig, GatewayConfigSchema } from './gateway.ts';

/**
 * Server configuration: one schema, read from a YAML file, then overridden by
 * STRONGROOM_* environment variables, then by command-line flags; validated
 * once and frozen. This module is the only reader of process.env (callers pass
 * `env` in). Relative paths in a file are relative to that file.
 */
const Strict = { additionalProperties: false } as const;

const DurationField = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 1, maximum: 315360000 }),
]);

/**
 * `telemetry:` (docs/configuration.md#telemetry): spans exported over OTLP/HTTP (JSON) to a collector.
 * Absent: no export (trace context is still propagated). OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_SERVICE_NAME override the file, as the OpenTelemetry spec says.
 */
const OtlpUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://[^/?#]+(/[^?#]*)?$' });
const TelemetryConfigSchema = Type.Object(
  {
    /** The collector's OTLP/HTTP base URL (`v1/traces` is appended), e.g. http://127.0.0.1:4318 */
    otlp_endpoint: Type.Optional(OtlpUrl),
    /** The URL spans are posted to, as is (wins over otlp_endpoint). */
    otlp_traces_endpoint: Type.Optional(OtlpUrl),
    /** `service.name` of the exported spans (default `strongroom`). */
    service_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** Headers sent to the collector (e.g. its API key); never logged. */
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,100}$' }), Type.String({ maxLength: 4096 }), {
        maxProperties: 32,
      }),
    ),
    /** How long one export may take (default 10 s). */
    timeout: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 32 }), Type.Integer({ minimum: 1, maximum: 600 })]),
    ),
  },
  Strict,
);
export type TelemetryConfig = Static<typeof TelemetryConfigSchema>;

const ServerConfigSchema = Type.Object(
  {
    listen: Type.String({ minLength: 1, maxLength: 300, description: 'host:port to listen on' }),
    storage: Type.Union([
      Type.Object({ memory: Type.Object({}, Strict) }, Strict),
      Type.Object({ sqlite: Type.Object({ path: Type.String({ minLength: 1 }) }, Strict) }, Strict),
      Type.Object(
        {
          postgres: Type.Object(
            {
              url: Type.String({ minLength: 1 }),
              table: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$' })),
              max_connections: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            },
            Strict,
          ),
        },
        Strict,
      ),
    ]),
    seal: Type.Union([
      Type.Object({ shamir: Type.Object({}, Strict) }, Strict),
      Type.Object({ static: Type.Object({ key_file: Type.String({ minLength: 1 }) }, Strict) }, Strict),
      // an HSM wraps the root key (docs/seal.md); the PIN from STRONGROOM_HSM_PIN or pin_file
      Type.Object(
        {
          pkcs11: Type.Object(
            {
              lib: Type.String({ minLength: 1 }),
              token_label: Type.String({ minLength: 1, maxLength: 32 }),
              key_label: Type.String({ minLength: 1, maxLength: 128 }),
              pin: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
              pin_file: Type.Optional(Type.String({ minLength: 1 })),
              generate_key: Type.Optional(Type.Boolean()),
            },
            Strict,
          ),
        },
        Strict,
      ),
    ]),
    tls: Type.Optional(
      Type.Object(
        {
          cert_file: Type.String({ minLength: 1 }),
          key_file: Type.String({ minLength: 1 }),
          min_version: Type.Optional(Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')])),
          /** 'request' (default): workloads may present an X.509-SVID; 'off': never ask for one. */
          client_certificates: Type.Optional(Type.Union([Type.Literal('request'), Type.Literal('off')])),
        },
        Strict,
      ),
    ),
    allow_insecure_http: Type.Boolean({ description: 'allow plain HTTP on a non-loopback address' }),
    max_request_bytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    /** Deepest nesting of arrays and objects in a JSON request body (deeper: 400 json_too_deep). */
    max_json_depth: Type.Optional(Type.Integer({ minimum: 2, maximum: 1024 })),
    log_level: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    ),
    /** Log every request at info (method, URL, client, status, time): off by default, the audit log is the access record. */
    access_log: Type.Optional(Type.Boolean()),
    dev: Type.Boolean(),
    rate_limit: Type.Object(
      {
        requests_per_second: Type.Number({ minimum: 0, maximum: 1_000_000 }),
        burst: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
      },
      { ...Strict, description: 'per token (per app for app tokens); 0 disables; root tokens are exempt' },
    ),
    audit: Type.Optional(AuditConfigSchema),
    audit_checkpoint: Type.Optional(AuditCheckpointConfigSchema),
    // usage analytics (docs/usage.md): counting secret reads, flushed to storage every flush_interval
    usage: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          flush_interval: Type.Optional(
            Type.Union([Type.String({ minLength: 1, maxLength: 32 }), Type.Integer({ minimum: 1 })]),
          ),
        },
        Strict,
      ),
    ),
    // the AI gateway (docs/gateway.md): its own listener, in this process
    gateway: Type.Optional(GatewayConfigSchema),
    // trace export (docs/configuration.md#telemetry)
    telemetry: Type.Optional(TelemetryConfigSchema),
    // workload identity (docs/identity.md): the SPIFFE CA of this cluster
    identity: Type.Optional(
      Type.Object(
        {
          trust_domain: Type.Optional(
            Type.String({ minLength: 1, maxLength: 255, pattern: '^[a-z0-9._-]+$' }),
          ),
          x509_svid_ttl: Type.Optional(DurationField),
          x509_svid_max_ttl: Type.Optional(DurationField),
          jwt_svid_ttl: Type.Optional(DurationField),
          jwt_svid_max_ttl: Type.Optional(DurationField),
          ca_ttl: Type.Optional(DurationField),
          api_audience: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
          issuer: Type.Optional(Type.String({ minLength: 8, maxLength: 500, pattern: '^https?://' })),
        },
        Strict,
      ),
    ),
    leases: Type.Optional(
      Type.Object(
        {
          sweep_interval_ms: Type.Optional(
            Type.Integer({
              minimum: 50,
              maximum: 60_000,
              description: 'how often expired leases are looked for',
            }),
          ),
          batch: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
          max_per_holder: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        Strict,
      ),
    ),
    rotation: Type.Optional(
      Type.Object(
        {
          interval_seconds: Type.Optional(
            Type.Integer({ minimum: 0, maximum: 86_400, description: 'scheduler period (0: off)' }),
          ),
          openai_base_url: Type.Optional(Type.String({ minLength: 8, maxLength: 500 })),
          openrouter_base_url: Type.Optional(Type.String({ minLength: 8, maxLength: 500 })),
        },
        Strict,
      ),
    ),
  },
  Strict,
);

export type ServerConfig = Static<typeof ServerConfigSchema>;

const DEFAULTS = {
  listen: '127.0.0.1:8210',
  allow_insecure_http: false,
  max_request_bytes: 1024 * 1024,
  max_json_depth: DEFAULT_MAX_JSON_DEPTH,
  log_level: 'info',
  dev: false,
  rate_limit: { requests_per_second: 100, burst: 200 },
} as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Flags from `strongroom server`. */
export interface ServerFlags {
  config?: string;
  listen?: string;
  data?: string;
  dev?: boolean;
}

/** Environment variables that override leaves of the config (STRONGROOM_<PATH>). */
const ENV_LEAVES: Record<string, (cfg: Record<string, unknown>, v: string) => void> = {
  STRONGROOM_LISTEN: (c, v) => {
    c.listen = v;
  },
  STRONGROOM_STORAGE_SQLITE_PATH: (c, v) => {
    c.storage = { sqlite: { path: v } };
  },
  STRONGROOM_STORAGE_POSTGRES_URL: (c, v) => {
    const prev = (c.storage as { postgres?: Record<string, unknown> } | undefined)?.postgres;
    c.storage = { postgres: { ...(prev ?? {}), url: v } };
  },
  STRONGROOM_SEAL_STATIC_KEY_FILE: (c, v) => {
    c.seal = { static: { key_file: v } };
  },
  STRONGROOM_SEAL_TYPE: (c, v) => {
    if (v === 'shamir') c.seal = { shamir: {} };
    else
      throw new ConfigError(
        'STRONGROOM_SEAL_TYPE must be "shamir" (use STRONGROOM_SEAL_STATIC_KEY_FILE for a static seal)',
      );
  },
  STRONGROOM_HSM_PIN: (c, v) => {
    const seal = c.seal as { pkcs11?: Record<string, unknown> } | undefined;
    if (!seal?.pkcs11) {
      throw new ConfigError('STRONGROOM_HSM_PIN is set but the seal is not pkcs11 (seal: {pkcs11: {...}})');
    }
    seal.pkcs11.pin = v;
  },
  STRONGROOM_TLS_CERT_FILE: (c, v) => {
    c.tls = { ...((c.tls as object | undefined) ?? {}), cert_file: v };
  },
  STRONGROOM_TLS_KEY_FILE: (c, v) => {
    c.tls = { ...((c.tls as object | undefined) ?? {}), key_file: v };
  },
  STRONGROOM_ALLOW_INSECURE_HTTP: (c, v) => {
    c.allow_insecure_http = parseBool('STRONGROOM_ALLOW_INSECURE_HTTP', v);
  },
  STRONGROOM_MAX_REQUEST_BYTES: (c, v) => {
    if (!/^\d+$/.test(v))
      throw new ConfigError('STRONGROOM_MAX_REQUEST_BYTES must be a whole number of bytes');
    c.max_request_bytes = Number(v);
  },
  STRONGROOM_MAX_JSON_DEPTH: (c, v) => {
    if (!/^\d+$/.test(v)) throw new ConfigError('STRONGROOM_MAX_JSON_DEPTH must be a whole number of levels');
    c.max_json_depth = Number(v);
  },
  STRONGROOM_LOG_LEVEL: (c, v) => {
    c.log_level = v;
  },
  STRONGROOM_ACCESS_LOG: (c, v) => {
    c.access_log = parseBool('STRONGROOM_ACCESS_LOG', v);
  },
};

function parseBool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(v)}`);
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535)
    throw new ConfigError(`listen must be host:port (like 127.0.0.1:8210), not ${JSON.stringify(listen)}`);
  return { host: (m[1] ?? m[2])!, port };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * The standard OpenTelemetry variables (opentelemetry.io/docs/specs/otel/protocol/exporter/): they
 * override the file's `telemetry` section and create one when there is none. OTEL_SERVICE_NAME alone
 * names the service of an export configured elsewhere; it does not turn export on.
 */
function applyTelemetryEnv(cfg: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>) {
  const prev = cfg.telemetry;
  if (prev !== undefined && (prev === null || typeof prev !== 'object' || Array.isArray(prev))) return;
  const t: Record<string, unknown> = { ...((prev as Record<string, unknown> | undefined) ?? {}) };
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    t.otlp_endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
    // the generic variable replaces the file's endpoint, whichever key the file used
    if (!env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) delete t.otlp_traces_endpoint;
  }
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) t.otlp_traces_endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (prev === undefined && t.otlp_endpoint === undefined && t.otlp_traces_endpoint === undefined) return;
  if (env.OTEL_SERVICE_NAME) t.service_name = env.OTEL_SERVICE_NAME;
  cfg.telemetry = t;
}

/**
 * Checks a `telemetry` section and settles its one traces URL in `otlp_traces_endpoint` (the base
 * endpoint with `v1/traces` appended, as the OTLP exporter spec says).
 */
function checkTelemetry(t: TelemetryConfig, allowInsecureHttp: boolean): void {
  if (t.otlp_traces_endpoint === undefined) {
    if (t.otlp_endpoint === undefined) {
      throw new ConfigError(
        'telemetry needs otlp_endpoint (the collector, e.g. http://127.0.0.1:4318) or otlp_traces_endpoint (or set OTEL_EXPORTER_OTLP_ENDPOINT)',
      );
    }
    t.otlp_traces_endpoint = `${t.otlp_endpoint.replace(/\/*$/, '')}/v1/traces`;
  }
  const url = new URL(t.otlp_traces_endpoint);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.username || url.password) {
    throw new ConfigError('telemetry: put the collector credentials in telemetry.headers, not in the URL');
  }
  if (
    t.headers &&
    Object.keys(t.headers).length > 0 &&
    url.protocol === 'http:' &&
    !isLoopback(host) &&
    !allowInsecureHttp
  ) {
    throw new ConfigError(
      `telemetry.headers would be sent in clear to ${url.origin}: use https://, a loopback collector, or set allow_insecure_http: true`,
    );
  }
  if (t.timeout !== undefined) {
    let seconds: number | undefined;
    try {
      seconds = parseDuration(t.timeout);
    } catch {
      seconds = undefined;
    }
    if (seconds === undefined || seconds < 1 || seconds > 600) {
      throw new ConfigError(`telemetry.timeout must be from 1s to 10m, not ${JSON.stringify(t.timeout)}`);
    }
    t.timeout = seconds;
  }
}

function describeErrors(raw: unknown): string {
  const lines: string[] = [];
  for (const e of Value.Errors(ServerConfigSchema, raw)) {
    const where = e.instancePath === '' ? '(top level)' : e.instancePath.slice(1).replaceAll('/', '.');
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      lines.push(`${where}: unknown key${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`);
    } else if (e.keyword !== 'boolean' && e.keyword !== 'anyOf') {
      lines.push(`${where}: ${e.message}`);
    }
  }
  return [...new Set(lines)].slice(0, 10).join('\n  ') || 'invalid configuration';
}

/**
 * Builds the frozen server configuration from a file (optional), the
 * environment and flags, in that order of precedence (flags win).
 */
export function loadServerConfig(
  flags: ServerFlags,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): Readonly<ServerConfig> {
  const { cfg, base } = readConfigFile(flags, env, cwd);
  for (const [name, apply] of Object.entries(ENV_LEAVES)) {
    const v = env[name];
    if (v !== undefined && v !== '') apply(cfg, v);
  }
  applyTelemetryEnv(cfg, env);
  if (flags.listen) cfg.listen = flags.listen;
  if (flags.dev) cfg.dev = true;
  if (cfg.dev === true) {
    // dev mode: embedded SQLite and a static key under one local folder
    const dir = resolve(cwd, flags.data ?? '.strongroom-dev');
    cfg.storage ??= { sqlite: { path: `${dir}/strongroom.db` } };
    cfg.seal ??= { static: { key_file: `${dir}/unseal.key` } };
    cfg.log_level ??= 'warn';
  } else if (flags.data) {
    const dir = resolve(cwd, flags.data);
    cfg.storage ??= { sqlite: { path: `${dir}/strongroom.db` } };
  }
  const merged = { ...DEFAULTS, ...cfg } as Record<string, unknown>;
  if (merged.storage === undefined) {
    throw new ConfigError(
      'no storage configured: set `storage: {sqlite: {path: ...}}` or `{postgres: {url: ...}}`, or pass --data DIR',
    );
  }
  merged.seal ??= { shamir: {} };
  if (!Value.Check(ServerConfigSchema, merged)) {
    throw new ConfigError(`invalid configuration:\n  ${describeErrors(merged)}`);
  }
  const config = merged as ServerConfig;
  const { host } = parseListen(config.listen);
  if (!config.tls && !isLoopback(host) && !config.allow_insecure_http) {
    throw new ConfigError(
      `refusing to serve plain HTTP on ${config.listen}: configure tls (cert_file, key_file), listen on a loopback address, or set allow_insecure_http: true`,
    );
  }
  // resolve relative file paths against the config file's folder
  if ('sqlite' in config.storage) config.storage.sqlite.path = resolve(base, config.storage.sqlite.path);
  if ('static' in config.seal) config.seal.static.key_file = resolve(base, config.seal.static.key_file);
  if ('pkcs11' in config.seal && config.seal.pkcs11.pin_file) {
    config.seal.pkcs11.pin_file = resolve(base, config.seal.pkcs11.pin_file);
  }
  // audit: a JSON-lines file beside the data by default (next to the config file for PostgreSQL)
  if (config.audit === undefined) {
    config.audit = defaultAuditConfig(
      'sqlite' in config.storage ? dirname(config.storage.sqlite.path) : base,
    );
  }
  for (const sink of config.audit) {
    if ('file' in sink) sink.file.path = resolve(base, sink.file.path);
  }
  if (config.tls) {
    config.tls.cert_file = resolve(base, config.tls.cert_file);
    config.tls.key_file = resolve(base, config.tls.key_file);
  }
  if (config.gateway) {
    if (config.gateway.vault || config.gateway.metrics_listen) {
      throw new ConfigError(
        'gateway.vault and gateway.metrics_listen are for `strongroom gateway` in front of a remote vault; this configuration runs a vault (storage, seal): remove them, or run the gateway with a configuration of its own',
      );
    }
    checkGateway(config.gateway, base, config.allow_insecure_http);
  }
  if (config.telemetry) checkTelemetry(config.telemetry, config.allow_insecure_http);
  return deepFreeze(config);
}

/** The config file (flags.config or $STRONGROOM_CONFIG) as a mapping, and the folder its paths are relative to. */
function readConfigFile(
  flags: { config?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): { cfg: Record<string, unknown>; base: string } {
  const file = flags.config ?? env.STRONGROOM_CONFIG;
  if (!file) return { cfg: {}, base: cwd };
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read the config file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `the config file ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
    throw new ConfigError(`the config file ${path} must be a YAML mapping of keys`);
  }
  return { cfg: { ...((parsed as Record<string, unknown> | null) ?? {}) }, base: dirname(path) };
}

/** Checks a `gateway` section and resolves its file paths against `base`. */
function checkGateway(g: GatewayConfig, base: string, allowInsecureHttp: boolean): void {
  if (!g.tls && !isLoopback(parseListen(g.listen).host) && !allowInsecureHttp) {
    throw new ConfigError(
      `refusing to serve the gateway in plain HTTP on ${g.listen}: configure gateway.tls, or listen on a loopback address`,
    );
  }
  if (g.tls) {
    g.tls.cert_file = resolve(base, g.tls.cert_file);
    g.tls.key_file = resolve(base, g.tls.key_file);
  }
  if (g.vault) {
    if (g.vault.ca_file) g.vault.ca_file = resolve(base, g.vault.ca_file);
    if ('dir' in g.vault.svid) g.vault.svid.dir = resolve(base, g.vault.svid.dir);
  }
  for (const r of g.routes) {
    for (const u of [r, ...(r.fallbacks ?? [])]) {
      const url = new URL(u.base_url);
      // a provider key never travels in clear, except to a local test double
      if (url.protocol === 'http:' && !isLoopback(url.hostname.replace(/^\[|\]$/g, ''))) {
        throw new ConfigError(
          `gateway route ${r.provider}: ${u.base_url} must be https:// (keys are sent to it)`,
        );
      }
    }
  }
}

/** The configuration of `strongroom gateway` in front of a remote vault (docs/gateway-remote.md). */
const RemoteGatewayConfigSchema = Type.Object(
  {
    log_level: Type.Optional(ServerConfigSchema.properties.log_level),
    allow_insecure_http: Type.Optional(Type.Boolean()),
    gateway: GatewayConfigSchema,
    telemetry: Type.Optional(TelemetryConfigSchema),
  },
  Strict,
);
export type RemoteGatewayConfig = Omit<Static<typeof RemoteGatewayConfigSchema>, 'log_level'> & {
  log_level: ServerConfig['log_level'];
};

/**
 * `strongroom gateway --config F`: when the file's gateway section names a remote `vault`, the
 * gateway's configuration (no storage, no seal: the vault is elsewhere); otherwise undefined, and the
 * file is a server configuration with a gateway in the same process.
 */
export function loadRemoteGatewayConfig(
  flags: { config?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
): Readonly<RemoteGatewayConfig> | undefined {
  const { cfg, base } = readConfigFile(flags, env, cwd);
  const g = cfg.gateway as Record<string, unknown> | undefined;
  if (!g || typeof g !== 'object' || g.vault === undefined) return undefined;
  for (const key of Object.keys(cfg)) {
    if (!['log_level', 'allow_insecure_http', 'gateway', 'telemetry'].includes(key)) {
      throw new ConfigError(
        `a gateway with a remote vault takes no \`${key}\` section: the vault is elsewhere`,
      );
    }
  }
  applyTelemetryEnv(cfg, env);
  if (!Value.Check(RemoteGatewayConfigSchema, cfg)) {
    const lines = [...Value.Errors(RemoteGatewayConfigSchema, cfg)]
      .filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'boolean')
      .map((e) => `${e.instancePath.slice(1).replaceAll('/', '.') || '(top level)'}: ${e.message}`);
    throw new ConfigError(
      `invalid gateway configuration:\n  ${[...new Set(lines)].slice(0, 10).join('\n  ') || 'invalid'}`,
    );
  }
  const config = { log_level: 'info', ...cfg } as RemoteGatewayConfig;
  checkGateway(config.gateway, base, config.allow_insecure_http === true);
  if (config.telemetry) checkTelemetry(config.telemetry, config.allow_insecure_http === true);
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Settings of the process itself, for the roles that hold keys (docs/production.md#process-hardening):
 * whether an inspector asked for outside dev mode is allowed (STRONGROOM_ALLOW_INSPECTOR, for debugging
 * only), and NODE_OPTIONS, where such a request may hide.
 */
export interface ProcessSettings {
  readonly allow_inspector: boolean;
  readonly node_options: string;
}

export function loadProcessSettings(env: Readonly<Record<string, string | undefined>>): ProcessSettings {
  const allow = env.STRONGROOM_ALLOW_INSPECTOR;
  return Object.freeze({
    allow_inspector:
      allow === undefined || allow === '' ? false : parseBool('STRONGROOM_ALLOW_INSPECTOR', allow),
    node_options: env.NODE_OPTIONS ?? '',
  });
}
