import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../lib/duration.ts';

/**
 * The sidecar agent's configuration (docs/agent.md): one YAML file, validated
 * once and frozen. Relative paths are relative to the file. Credentials are
 * never written in it: it names files that hold them (a Kubernetes Secret
 * volume, a tmpfs).
 */
const Strict = { additionalProperties: false } as const;
const Path = Type.String({ minLength: 1, maxLength: 4096 });
const DurationText = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 0, maximum: 315360000 }),
]);
/** `project/env/NAME` */
const SecretRef = Type.String({
  minLength: 5,
  maxLength: 400,
  pattern: '^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*/[A-Za-z0-9_.-]+$',
});
const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,255}$' });

const AgentConfigSchema = Type.Object(
  {
    vault: Type.Object(
      {
        /** Server addresses, tried in order (failover). */
        addrs: Type.Array(Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://' }), {
          minItems: 1,
          maxItems: 16,
        }),
        /** PEM CA certificates for the servers' TLS certificates (default: the system's CAs). */
        ca_file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
      },
      Strict,
    ),
    auth: Type.Union([
      Type.Object(
        {
          app: Type.Object(
            { client_id_file: Path, client_secret_file: Path },
            { ...Strict, description: 'files holding the app credentials (e.g. a Kubernetes Secret volume)' },
          ),
        },
        Strict,
      ),
      Type.Object({ token_file: Path }, Strict),
    ]),
    cache: Type.Optional(
      Type.Object(
        {
          /** Serve from memory this long without asking the server (changes arrive by the watch stream anyway). */
          ttl: Type.Optional(DurationText),
          /** Serve the last good value this long when the server is unreachable or answers 5xx. */
          stale_if_error: Type.Optional(DurationText),
        },
        Strict,
      ),
    ),
    templates: Type.Optional(
      Type.Array(
        Type.Object(
          {
            destination: Path,
            /** The template itself, or `source`: a file holding it. */
            contents: Type.Optional(Type.String({ maxLength: 1024 * 1024 })),
            source: Type.Optional(Path),
            /** Octal file mode (default 0600). Group/other write is refused. */
            mode: Type.Optional(Type.String({ pattern: '^0?[0-7]{3}$' })),
          },
          Strict,
        ),
        { maxItems: 100 },
      ),
    ),
    exec: Type.Optional(
      Type.Object(
        {
          command: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
            minItems: 1,
            maxItems: 1000,
          }),
          /** Secrets given to the child as environment variables: NAME → project/env/SECRET. */
          env: Type.Optional(Type.Record(EnvName, SecretRef)),
          /** What a change of a secret the child uses does (default restart). */
          on_change: Type.Optional(
            Type.Union([Type.Literal('restart'), Type.Literal('signal'), Type.Literal('nothing')]),
          ),
          /** With on_change: signal, the signal sent (default SIGHUP). */
          signal: Type.Optional(
            // written out: a union built with .map() has the TypeScript type never
            Type.Union([
              Type.Literal('SIGHUP'),
              Type.Literal('SIGUSR1'),
              Type.Literal('SIGUSR2'),
              Type.Literal('SIGINT'),
              Type.Literal('SIGTERM'),
            ]),
          ),
          /** How long to wait after SIGTERM before SIGKILL (default 10s). */
          grace: Type.Optional(DurationText),
        },
        Strict,
      ),
    ),
    listen: Type.Optional(
      Type.Object(
        {
          /** Unix socket for the local cache API (mode 0600 unless socket_mode says otherwise). */
          socket: Type.Optional(Path),
          socket_mode: Type.Optional(Type.String({ pattern: '^0?[0-7]{3}$' })),
          /** host:port for health and metrics only (never secrets), for Kubernetes probes. */
          http: Type.Optional(Type.String({ minLength: 3, maxLength: 300 })),
        },
        Strict,
      ),
    ),
    /** The SPIFFE Workload API (docs/workload-api.md): SVIDs for the ID the agent's app is registered for. */
    identity: Type.Optional(
      Type.Object(
        {
          spiffe_id: Type.String({
            maxLength: 2048,
            pattern: '^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$',
          }),
          /** Unix socket of the Workload API (mode 0600 unless socket_mode says otherwise). */
          socket: Path,
          socket_mode: Type.Optional(Type.String({ pattern: '^0?[0-7]{3}$' })),
          /** X.509-SVID lifetime to ask for (default: the server's). */
          ttl: Type.Optional(DurationText),
          /** Also write svid.pem, svid_key.pem (0600) and bundle.pem here. */
          files: Type.Optional(Type.Object({ dir: Path }, Strict)),
        },
        Strict,
      ),
    ),
  },
  Strict,
);
export type AgentConfigFile = Static<typeof AgentConfigSchema>;

/** A template, its text loaded. */
export interface AgentTemplate {
  destination: string;
  text: string;
  mode: number;
}

/** The validated, resolved configuration the agent runs with. */
export interface AgentConfig {
  addrs: string[];
  /** PEM CA certificates the servers' TLS certificates are checked against (read at load). */
  ca?: string;
  auth: { app: { client_id_file: string; client_secret_file: string } } | { token_file: string };
  ttlMs: number;
  staleIfErrorMs: number;
  templates: AgentTemplate[];
  exec?: {
    command: string[];
    env: Record<string, string>;
    onChange: 'restart' | 'signal' | 'nothing';
    signal: NodeJS.Signals;
    graceMs: number;
  };
  socket?: { path: string; mode: number };
  http?: string;
  identity?: {
    spiffeId: string;
    socket: { path: string; mode: number };
    ttlSeconds?: number;
    files?: { dir: string };
  };
}

/** A configuration problem: says where and what to fix. */
export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}

function mode(text: string | undefined, fallback: number, what: string): number {
  const m = text === undefined ? fallback : Number.parseInt(text, 8);
  if (m & 0o022)
    throw new AgentConfigError(`${what}: mode ${text} lets group or others write; use 0600 or 0640`);
  return m;
}

/** Parses and validates an agent configuration (YAML text); `base` resolves relative paths. */
export function parseAgentConfig(text: string, base: string): AgentConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new AgentConfigError(`not valid YAML: ${(err as Error).message}`);
  }
  if (!Value.Check(AgentConfigSchema, raw)) {
    const e = [...Value.Errors(AgentConfigSchema, raw)][0];
    const at = e?.instancePath || '/';
    throw new AgentConfigError(`${at}: ${e?.message ?? 'invalid'}`);
  }
  const c = raw as AgentConfigFile;
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const ms = (v: string | number | undefined, fallback: number, what: string) => {
    if (v === undefined) return fallback;
    try {
      return parseDuration(v) * 1000;
    } catch (err) {
      throw new AgentConfigError(`${what}: ${(err as Error).message}`);
    }
  };
  const templates = (c.templates ?? []).map((t, i) => {
    if ((t.contents === undefined) === (t.source === undefined)) {
      throw new AgentConfigError(`/templates/${i}: give exactly one of contents and source`);
    }
    let text = t.contents;
    if (text === undefined) {
      try {
        text = readFileSync(path(t.source!), 'utf8');
      } catch (err) {
        throw new AgentConfigError(
          `/templates/${i}/source: cannot read ${t.source}: ${(err as Error).message}`,
        );
      }
    }
    return { destination: path(t.destination), text, mode: mode(t.mode, 0o600, `/templates/${i}`) };
  });
  const dests = new Set<string>();
  for (const t of templates) {
    if (dests.has(t.destination)) throw new AgentConfigError(`two templates write ${t.destination}`);
    dests.add(t.destination);
  }
  const auth =
    'app' in c.auth
      ? {
          app: {
            client_id_file: path(c.auth.app.client_id_file),
            client_secret_file: path(c.auth.app.client_secret_file),
          },
        }
      : { token_file: path(c.auth.token_file) };
  function identity(i: NonNullable<AgentConfigFile['identity']>): NonNullable<AgentConfig['identity']> {
    // SPIFFE-ID.md §2.2: no dot segments
    if (
      i.spiffe_id
        .split('/')
        .slice(3)
        .some((seg) => seg === '.' || seg === '..')
    ) {
      throw new AgentConfigError('/identity/spiffe_id: path segments may not be . or ..');
    }
    const ttl = i.ttl === undefined ? undefined : ms(i.ttl, 0, '/identity/ttl') / 1000;
    if (ttl !== undefined && ttl < 1) throw new AgentConfigError('/identity/ttl: at least 1s');
    return {
      spiffeId: i.spiffe_id,
      socket: { path: path(i.socket), mode: mode(i.socket_mode, 0o600, '/identity/socket_mode') },
      ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
      ...(i.files ? { files: { dir: path(i.files.dir) } } : {}),
    };
  }
  let ca: string | undefined;
  if (c.vault.ca_file) {
    try {
      ca = readFileSync(path(c.vault.ca_file), 'utf8');
    } catch (err) {
      throw new AgentConfigError(`/vault/ca_file: cannot read ${c.vault.ca_file}: ${(err as Error).message}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new AgentConfigError(`/vault/ca_file: ${c.vault.ca_file} holds no PEM certificate`);
  }
  const cfg: AgentConfig = {
    addrs: c.vault.addrs.map((a) => a.replace(/\/+$/, '')),
    ...(ca ? { ca } : {}),
    auth,
    ttlMs: ms(c.cache?.ttl, 300_000, '/cache/ttl'),
    staleIfErrorMs: ms(c.cache?.stale_if_error, 3_600_000, '/cache/stale_if_error'),
    templates,
    ...(c.exec
      ? {
          exec: {
            command: c.exec.command,
            env: c.exec.env ?? {},
            onChange: c.exec.on_change ?? 'restart',
            signal: (c.exec.signal ?? 'SIGHUP') as NodeJS.Signals,
            graceMs: ms(c.exec.grace, 10_000, '/exec/grace'),
          },
        }
      : {}),
    ...(c.listen?.socket
      ? {
          socket: {
            path: path(c.listen.socket),
            mode: mode(c.listen.socket_mode, 0o600, '/listen/socket_mode'),
          },
        }
      : {}),
    ...(c.listen?.http ? { http: c.listen.http } : {}),
    ...(c.identity ? { identity: identity(c.identity) } : {}),
  };
  if (cfg.identity && cfg.identity.socket.path === cfg.socket?.path) {
    throw new AgentConfigError('/identity/socket: the Workload API needs its own socket, not listen.socket');
  }
  if (!cfg.templates.length && !cfg.exec && !cfg.socket && !cfg.identity) {
    throw new AgentConfigError('nothing to do: configure templates, exec, listen.socket or identity');
  }
  return Object.freeze(cfg);
}

/** Reads and parses an agent configuration file. */
export function loadAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseAgentConfig(text, dirname(resolve(file)));
}
