// biome-ignore-all lint/style/noExcessiveLinesPerFile: the sidecar agent: templates, the child process and the watch streams it keeps current
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import type { AgentConfig } from '../config/agent.ts';
import { alive, type Running, type Sink, startChild, stopChild } from '../lib/child.ts';
import { writeFileAtomic } from '../lib/files.ts';
import { createMetricsRegistry, type MetricFamily, renderFamilies } from '../lib/metrics.ts';
import { createClient, StrongroomApiError } from '../sdk/client.ts';
import { createSecretsCache, type SecretsCache } from '../sdk/secrets.ts';
import { createSession, type Session } from '../sdk/session.ts';
import { agentLeases } from './leases.ts';
import { parseRef, parseTemplate, refKey, type SecretRef, type Template, TemplateError } from './template.ts';
import { type AgentIdentity, startAgentIdentity } from './workload-api.ts';

/**
 * The sidecar agent (docs/agent.md): authenticates as an app, keeps its token
 * renewed, renders templates to files (0600, atomically) and re-renders them
 * when a secret changes, supervises a child process, and answers reads on a
 * Unix socket from its in-memory cache — within the stale-if-error window,
 * also while the server is unreachable. Values live only in memory and in the
 * files the operator asked for (meant for a tmpfs).
 */
export interface AgentIO {
  stdout: Sink;
  stderr: Sink;
  /** The environment the child inherits. */
  env: NodeJS.ProcessEnv;
  /** Give the child this process's stdio directly. */
  inheritStdio: boolean;
}

export interface AgentOptions {
  /** Render the templates once and exit (init container). */
  once?: boolean;
  /** Stops the agent (like SIGTERM). */
  signal?: AbortSignal;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

/** What a running agent exposes to its caller (the CLI, tests). */
export interface AgentHandle {
  /** Resolves with the exit code when the agent stops. */
  done: Promise<number>;
  /** Resolves once the first render (and child start) happened. */
  ready: Promise<void>;
}

const DEBOUNCE_MS = 100;
const MAX_BACKOFF_MS = 30_000;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

function readCredential(file: string, what: string): string {
  let v: string;
  try {
    v = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read the ${what} from ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (v === '') throw new Error(`${file} is empty: it should hold the ${what}`);
  return v;
}

function describe(err: unknown): string {
  if (err instanceof StrongroomApiError)
    return `${err.message} (${err.code}${err.status ? `, ${err.status}` : ''})`;
  return (err as Error).message ?? String(err);
}

/**
 * Parses every template and secret reference of a configuration: throws a
 * TemplateError naming the line of the first mistake (`strongroom agent --check`).
 */
export function planAgent(cfg: AgentConfig) {
  const templates: { t: Template; destination: string; mode: number; hash?: string }[] = cfg.templates.map(
    (t) => {
      try {
        return { t: parseTemplate(t.text), destination: t.destination, mode: t.mode };
      } catch (err) {
        throw new TemplateError(`template for ${t.destination}: ${(err as Error).message}`);
      }
    },
  );
  const execRefs = new Map<string, SecretRef>(
    Object.entries(cfg.exec?.env ?? {}).map(([envName, ref]) => [envName, parseRef(ref)]),
  );
  const allRefs = new Set<string>([
    ...templates.flatMap((x) => [...x.t.refs]),
    ...[...execRefs.values()].map(refKey),
  ]);
  const environments = [
    ...new Map(
      [...allRefs].map((k) => {
        const r = parseRef(k);
        return [`${r.project}/${r.env}`, { project: r.project, env: r.env }];
      }),
    ).values(),
  ];
  return { templates, execRefs, allRefs, environments };
}

/** Starts the agent. */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the agent's lifecycle: its templates, child process, watch streams and renewal timers share the state kept in this closure
export function startAgent(cfg: AgentConfig, io: AgentIO, opts: AgentOptions = {}): AgentHandle {
  const log = (msg: string, extra: Record<string, unknown> = {}) =>
    io.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...extra })}\n`);
  const stop = new AbortController();
  if (opts.signal?.aborted) stop.abort();
  else opts.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  // a server certificate from a private CA (vault.ca_file): checked against it, not the system's CAs
  const tls = cfg.ca && !opts.fetch ? new UndiciAgent({ connect: { ca: cfg.ca } }) : undefined;
  const fetchOpt = opts.fetch
    ? { fetch: opts.fetch }
    : tls
      ? {
          fetch: ((input: string | URL | Request, init?: RequestInit) =>
            undiciFetch(input as string, {
              ...(init as object),
              dispatcher: tls,
            })) as unknown as typeof fetch,
        }
      : {};

  const metrics = createMetricsRegistry();
  const renders = metrics.counter(
    'strongroom_agent_renders_total',
    'Template files written (content changed)',
  );
  const renderFailures = metrics.counter(
    'strongroom_agent_render_failures_total',
    'Renders that failed (the previous file was kept)',
  );
  const restarts = metrics.counter(
    'strongroom_agent_child_restarts_total',
    'Child restarts or signals after a change',
  );
  const socketReads = metrics.counter('strongroom_agent_socket_reads_total', 'Reads on the local socket', [
    'code',
  ]);

  const { templates, execRefs, allRefs, environments } = planAgent(cfg);

  let session: Session | undefined;
  let cache: SecretsCache | undefined;
  let held: ReturnType<typeof agentLeases> | undefined;
  let identity: AgentIdentity | undefined;
  let child: Running | undefined;
  let restarting = false;
  let lastRender: number | undefined;
  let rendered = false;
  let lastError: string | undefined;
  const servers: Server[] = [];

  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  async function values(refs: Iterable<string>): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    await Promise.all(
      [...refs].map(async (k) => {
        const r = parseRef(k);
        out.set(k, await cache!.get(r.project, r.env, r.name));
      }),
    );
    return out;
  }

  /** Renders the templates that read any of `changed` (all when undefined); true if a file changed. */
  async function renderTemplates(changed?: Set<string>): Promise<boolean> {
    let any = false;
    for (const x of templates) {
      if (
        changed &&
        ![...x.t.refs].some((r) => changed.has(r)) &&
        ![...x.t.leases.keys()].some((k) => changed.has(`lease:${k}`))
      )
        continue;
      const vals = await values(x.t.refs);
      if (x.t.leases.size) await held!.ensure(x.t.leases.values());
      const text = x.t.render(
        (r) => vals.get(refKey(r))!,
        (ref, field) => held!.field(ref, field),
      );
      // only a digest of the content is kept, to skip rewriting an unchanged file
      const hash = createHash('sha256').update(text).digest('hex');
      if (hash === x.hash) continue;
      await writeFileAtomic(x.destination, text, x.mode);
      x.hash = hash;
      renders.inc();
      any = true;
      log('rendered', { destination: x.destination });
    }
    lastRender = Date.now();
    return any;
  }

  async function childEnv(): Promise<NodeJS.ProcessEnv> {
    const vals = await values([...execRefs.values()].map(refKey));
    const env: NodeJS.ProcessEnv = { ...io.env };
    for (const [name, ref] of execRefs) env[name] = vals.get(refKey(ref))!;
    return env;
  }

  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));

  async function launch() {
    if (!cfg.exec || stop.signal.aborted) return;
    const r = startChild(cfg.exec.command, {
      env: await childEnv(),
      inherit: io.inheritStdio,
      stdout: io.stdout,
      stderr: io.stderr,
      label: 'strongroom agent',
    });
    child = r;
    log('started the child', { pid: r.child.pid, command: cfg.exec.command[0] });
    void r.exited.then((code) => {
      if (child !== r || restarting || stop.signal.aborted) return;
      log('the child exited: stopping', { code });
      void shutdown(code);
    });
  }

  // Changes arrive per secret; a burst (a rotation touching several) is handled once.
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();
  function onChange(project: string, env: string, name: string) {
    const k = `${project}/${env}/${name}`;
    if (!allRefs.has(k)) return;
    pending.add(k);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const changed = new Set(pending);
      pending.clear();
      busy = busy.then(() => applyChange(changed));
    }, DEBOUNCE_MS);
  }

  async function applyChange(changed: Set<string>) {
    if (stop.signal.aborted) return;
    let filesChanged = false;
    try {
      filesChanged = await renderTemplates(changed);
      lastError = undefined;
    } catch (err) {
      renderFailures.inc();
      lastError = describe(err);
      log('could not re-render: the previous files are kept', { error: lastError });
      return;
    }
    const envChanged = [...execRefs.values()].some((r) => changed.has(refKey(r)));
    if (!cfg.exec || !child || (!filesChanged && !envChanged) || cfg.exec.onChange === 'nothing') return;
    restarts.inc();
    if (cfg.exec.onChange === 'signal' && !envChanged) {
      log('a secret changed: signalling the child', { signal: cfg.exec.signal });
      if (alive(child.child)) child.child.kill(cfg.exec.signal);
      return;
    }
    log('a secret changed: restarting the child');
    restarting = true;
    try {
      await stopChild(child, cfg.exec.graceMs, () => log('the child did not stop in time: SIGKILL'));
      await launch();
    } finally {
      restarting = false;
    }
  }

  // ---- the local API (Unix socket) and health/metrics (TCP) ----

  function health() {
    const state = session?.state ?? 'starting';
    const svid = identity?.health();
    const ok = rendered && state === 'active' && (svid?.ok ?? true);
    return {
      code: ok ? 200 : 503,
      body: {
        status: ok ? 'ok' : state === 'active' || state === 'starting' ? 'starting' : state,
        token: state,
        token_expires_at: session?.expiresAt ? new Date(session.expiresAt).toISOString() : null,
        last_render: lastRender ? new Date(lastRender).toISOString() : null,
        ...(lastError ? { last_error: lastError } : {}),
        child: cfg.exec ? (child && alive(child.child) ? 'running' : 'stopped') : 'none',
        ...(svid ? { svid: svid.body } : {}),
      },
    };
  }

  function metricsText(): string {
    const s = cache?.stats() ?? { hits: 0, loads: 0, stale: 0, errors: 0 };
    const gauge = (name: string, help: string, value: number): MetricFamily => ({
      name,
      help,
      type: 'gauge',
      samples: [{ value }],
    });
    const counter = (name: string, help: string, value: number): MetricFamily => ({
      name,
      help,
      type: 'counter',
      samples: [{ value }],
    });
    return (
      metrics.render() +
      renderFamilies([
        counter('strongroom_agent_cache_hits_total', 'Reads answered from memory', s.hits),
        counter('strongroom_agent_cache_loads_total', 'Reads fetched from the server', s.loads),
        counter(
          'strongroom_agent_cache_stale_total',
          'Reads answered stale while the server was unreachable',
          s.stale,
        ),
        counter('strongroom_agent_cache_errors_total', 'Reads that failed', s.errors),
        gauge(
          'strongroom_agent_up',
          '1 when rendered and the token is active',
          health().code === 200 ? 1 : 0,
        ),
        gauge(
          'strongroom_agent_token_expiry_seconds',
          'Expiry of the current token (Unix time; 0 when none)',
          (session?.expiresAt ?? 0) / 1000,
        ),
        gauge(
          'strongroom_agent_last_render_seconds',
          'Time of the last successful render (Unix time)',
          (lastRender ?? 0) / 1000,
        ),
        ...(identity?.metrics() ?? []),
      ])
    );
  }

  function send(res: ServerResponse, code: number, body: unknown) {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(text);
  }
  const error = (res: ServerResponse, code: number, c: string, message: string) =>
    send(res, code, { error: { code: c, message } });

  const SECRET_PATH = /^\/v1\/secrets\/([^/]+)\/([^/]+)\/([^/]+)$/;

  async function handle(req: IncomingMessage, res: ServerResponse, socket: boolean) {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return error(res, 405, 'method_not_allowed', 'the agent answers GET only');
    }
    if (url.pathname === '/healthz' || url.pathname === '/v1/sys/health') {
      const h = health();
      return send(res, h.code, h.body);
    }
    if (url.pathname === '/metrics' || url.pathname === '/v1/sys/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return res.end(metricsText());
    }
    const m = socket ? SECRET_PATH.exec(url.pathname) : null;
    if (!m) return error(res, 404, 'not_found', `no route ${url.pathname} on the agent`);
    let ref: SecretRef;
    try {
      ref = parseRef(m.slice(1, 4).map(decodeURIComponent).join('/'));
    } catch (err) {
      return error(res, 400, 'invalid_request', (err as Error).message);
    }
    if (!cache) return error(res, 503, 'starting', 'the agent is still starting');
    try {
      const value = await cache.get(ref.project, ref.env, ref.name);
      socketReads.inc(['200']);
      send(res, 200, { project: ref.project, env: ref.env, name: ref.name, value });
    } catch (err) {
      const e =
        err instanceof StrongroomApiError
          ? err
          : new StrongroomApiError(500, 'internal', 'the agent failed to read the secret');
      const code = e.status === 0 ? 503 : e.status;
      socketReads.inc([String(code)]);
      error(res, code, e.code, e.message);
    }
  }

  async function listen() {
    if (cfg.socket) {
      const path = cfg.socket.path;
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      try {
        if (lstatSync(path).isSocket()) unlinkSync(path); // left over from a previous run
      } catch {}
      const srv = createServer((req, res) => void handle(req, res, true));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        // a private umask while binding, so the socket is never briefly world-accessible
        const old = process.umask(0o177);
        try {
          srv.listen(path, () => resolve());
        } finally {
          process.umask(old);
        }
      });
      chmodSync(path, cfg.socket.mode);
      servers.push(srv);
      log('serving the local API', { socket: path });
    }
    if (cfg.http) {
      const i = cfg.http.lastIndexOf(':');
      const host = cfg.http.slice(0, i).replace(/^\[|\]$/g, '');
      const port = Number(cfg.http.slice(i + 1));
      const srv = createServer((req, res) => void handle(req, res, false));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, host, () => resolve());
      });
      servers.push(srv);
      const a = srv.address();
      log('serving health and metrics', {
        address: typeof a === 'object' && a ? `${a.address}:${a.port}` : a,
      });
    }
  }

  // a sidecar runs until it is told to stop, whatever keeps its event loop busy (a listener, a watch
  // stream) or not (templates of leased credentials only: their renewal timers do not hold the process)
  const keepAlive = opts.once ? undefined : setInterval(() => {}, 1 << 30);

  let shuttingDown = false;
  async function shutdown(code: number) {
    if (shuttingDown) return;
    shuttingDown = true;
    clearInterval(keepAlive);
    stop.abort();
    clearTimeout(timer);
    // the exit code is the reason for stopping: 0 for a signal, the child's own code when it exited by itself
    if (child && cfg.exec) {
      const r = child;
      child = undefined;
      await stopChild(r, cfg.exec.graceMs, () => log('the child did not stop in time: SIGKILL'));
    }
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await identity?.close();
    cache?.close();
    // leased credentials end with the agent; an init container's are left to their TTL (the app uses them)
    if (!opts.once) await held?.close();
    await session?.close();
    log('stopped', { code });
    finish(code);
  }
  stop.signal.addEventListener('abort', () => void shutdown(0), { once: true });

  async function main() {
    // Log in; in sidecar mode keep trying (the pod's startup probe waits), in init mode fail.
    for (let attempt = 0; !stop.signal.aborted; attempt++) {
      try {
        const credentials =
          'app' in cfg.auth
            ? {
                app: {
                  client_id: readCredential(cfg.auth.app.client_id_file, 'client id'),
                  client_secret: readCredential(cfg.auth.app.client_secret_file, 'client secret'),
                },
              }
            : { token: readCredential(cfg.auth.token_file, 'token') };
        session = await createSession({
          addrs: cfg.addrs,
          credentials,
          onError: (err) => log('token renewal failed', { error: describe(err) }),
          ...fetchOpt,
        });
        break;
      } catch (err) {
        lastError = describe(err);
        log('cannot log in', { error: lastError });
        if (opts.once || (err instanceof StrongroomApiError && err.status >= 400 && err.status < 500)) {
          return shutdown(1);
        }
        await sleep(Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.5 + Math.random() / 2), stop.signal);
      }
    }
    if (stop.signal.aborted || !session) return;
    cache = createSecretsCache({
      addrs: cfg.addrs,
      token: session.token,
      ttlMs: cfg.ttlMs,
      staleIfErrorMs: cfg.staleIfErrorMs,
      ...(opts.once || environments.length === 0 ? {} : { watch: environments }),
      onChange,
      ...fetchOpt,
    });
    held = agentLeases({
      call: createClient({ addr: cfg.addrs, token: () => session?.token(), ...fetchOpt }).request,
      log,
      // a lease that could not be renewed was replaced: re-render what reads it (and restart the child)
      onReplaced: (key) => {
        busy = busy.then(() => applyChange(new Set([`lease:${key}`])));
        return busy;
      },
    });
    if (!opts.once) await listen();
    if (cfg.identity) {
      identity = startAgentIdentity(cfg.identity, {
        addrs: cfg.addrs,
        token: session.token,
        log,
        ...(opts.once ? { once: true } : {}),
        ...fetchOpt,
      });
      // init container: the SVID files are written once, or the agent fails
      if (!opts.once) await identity.serve();
      else {
        const obtained = await identity.ready.then(() => true).catch(() => false);
        if (!obtained) return shutdown(1);
      }
    }
    for (let attempt = 0; !stop.signal.aborted; attempt++) {
      try {
        await renderTemplates();
        // the child's environment is read now too, so a missing secret fails before it starts
        if (cfg.exec) await childEnv();
        lastError = undefined;
        break;
      } catch (err) {
        renderFailures.inc();
        lastError = describe(err);
        log('cannot render', { error: lastError });
        if (opts.once) return shutdown(1);
        await sleep(Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.5 + Math.random() / 2), stop.signal);
      }
    }
    if (stop.signal.aborted) return;
    rendered = true;
    if (opts.once) {
      markReady();
      return shutdown(0);
    }
    await launch();
    markReady();
  }

  main().catch((err) => {
    log('the agent failed', { error: describe(err) });
    void shutdown(1);
  });
  return { done, ready };
}
