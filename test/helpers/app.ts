import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { AppCredentials, LoginResponse } from '../../src/api/auth.ts';
import { assembleVault, type Vault } from '../../src/assemble/vault.ts';
import type { AuditConfig } from '../../src/audit/config.ts';
import type { AuthMethodOptions } from '../../src/auth/user-ops.ts';
import type { ServerConfig } from '../../src/config/config.ts';
import type { VaultModule } from '../../src/contract/module.ts';
import type { Core } from '../../src/core/core.ts';
import type { IdentityOptions } from '../../src/engines/identity/identity.ts';
import type { LeaseOptions } from '../../src/engines/leases/leases.ts';
import type { RotationOptions } from '../../src/engines/rotation/rotation.ts';
import { type Clock, systemClock } from '../../src/lib/clock.ts';
import type { SealSettings } from '../../src/seal/seal.ts';
import { buildServer } from '../../src/server/app.ts';
import { createLogger } from '../../src/server/logger.ts';
import type { RouteDef } from '../../src/server/routes/v1/routes.ts';
import { vaultRoutes } from '../../src/server/routes/vault-routes.ts';
import type { StorageBackend } from '../../src/storage/backend.ts';
import { createMemoryStorage } from '../../src/storage/memory.ts';

export function tempDir(t: TestContext, prefix = 'strongroom-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function staticKeyFile(t: TestContext): string {
  const path = join(tempDir(t), 'unseal.key');
  writeFileSync(path, randomBytes(32).toString('hex'), { mode: 0o600 });
  return path;
}

export interface TestApp {
  app: FastifyInstance;
  core: Core;
  /** The assembled vault (its modules: rotation scheduler, usage, audit). */
  vault: Vault;
  storage: StorageBackend;
  config: Readonly<ServerConfig>;
  /** Root token (present when the app was initialised). */
  rootToken: string;
  /** Shamir key shares, hex (present for a shamir seal). */
  keys: string[];
  /** Everything the server logged, as text. */
  logs(): string;
  inject(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** inject() with the root token and a JSON body. */
  call(
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    token?: string,
  ): Promise<LightMyRequestResponse>;
}

export interface TestAppOptions {
  storage?: StorageBackend;
  seal?: 'static' | 'shamir';
  /** Seal settings as given (a PKCS#11 seal), instead of `seal`. */
  sealSettings?: SealSettings;
  /** Skip `sys/init` (default: initialise). */
  uninitialized?: boolean;
  shares?: number;
  threshold?: number;
  clock?: Clock;
  config?: Partial<ServerConfig>;
  keyFile?: string;
  /** Settings of the user and app auth methods. */
  auth?: AuthMethodOptions;
  /** Audit sinks (default: none, so auditing is off). */
  audit?: AuditConfig;
  /** Requests per second per token (default: unlimited in tests). */
  rateLimit?: { requests_per_second: number; burst: number };
  /** Extra core modules (e.g. a module under test that the vault does not assemble yet). */
  modules?: VaultModule<Core>[];
  /** Extra routes, added after the vault's own. */
  routes?: RouteDef[];
  /** Rotation settings (scheduler period, adapter base URLs pointing at fakes). */
  rotation?: RotationOptions;
  /** Workload identity settings (trust domain, SVID and CA lifetimes). */
  identity?: IdentityOptions;
  /** Lease sweeper settings (period, batch). */
  leases?: LeaseOptions;
}

/** A fresh in-process server (memory storage unless given), torn down when the test ends. */
export async function buildTestApp(t: TestContext, opts: TestAppOptions = {}): Promise<TestApp> {
  const storage = opts.storage ?? createMemoryStorage();
  const sealKind = opts.seal ?? 'static';
  const seal: SealSettings =
    opts.sealSettings ??
    (sealKind === 'static' ? { static: { key_file: opts.keyFile ?? staticKeyFile(t) } } : { shamir: {} });
  const config = Object.freeze({
    listen: '127.0.0.1:0',
    storage: { memory: {} },
    seal,
    allow_insecure_http: false,
    max_request_bytes: 1024 * 1024,
    log_level: 'info',
    // the richest server log (a line per request), so the no-secret-in-logs tests see the most there is
    access_log: true,
    dev: false,
    ...opts.config,
  }) as ServerConfig;
  let logText = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  const logger = createLogger('info', sink);
  const vault = assembleVault({
    storage,
    seal,
    clock: opts.clock ?? systemClock,
    audit: opts.audit ?? [],
    rateLimit: opts.rateLimit,
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.modules ? { modules: opts.modules } : {}),
    ...(opts.rotation ? { rotation: opts.rotation } : {}),
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.leases ? { leases: opts.leases } : {}),
  });
  const { core } = vault;
  await core.start();
  const app = await buildServer({ config, core, logger, routes: [...vaultRoutes, ...(opts.routes ?? [])] });
  await app.ready();
  t.after(async () => {
    await app.close();
    await vault.close();
    if (!opts.storage) await storage.close();
  });

  let rootToken = '';
  let keys: string[] = [];
  if (!opts.uninitialized) {
    const body =
      sealKind === 'shamir' ? { secret_shares: opts.shares ?? 3, secret_threshold: opts.threshold ?? 2 } : {};
    const res = await app.inject({ method: 'POST', url: '/v1/sys/init', payload: body });
    if (res.statusCode !== 200) throw new Error(`init failed: ${res.body}`);
    const json = res.json() as { root_token: string; keys: string[] };
    rootToken = json.root_token;
    keys = json.keys;
    if (sealKind === 'shamir') {
      for (const k of keys.slice(0, opts.threshold ?? 2)) {
        await app.inject({ method: 'POST', url: '/v1/sys/unseal', payload: { key: k } });
      }
    }
  }

  return {
    app,
    core,
    vault,
    storage,
    config,
    rootToken,
    keys,
    logs: () => logText,
    inject: (o) => app.inject(o),
    call: (method, url, body, token) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token ?? rootToken}` },
        ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
      }),
  };
}

/** Creates app `name` (role `app`, scoped to `path`), logs it in, and returns its token. */
export async function appToken(a: TestApp, name: string, path: string): Promise<string> {
  const created = await a.call('POST', '/v1/auth/apps', { name, roles: ['app'], scope: { paths: [path] } });
  if (created.statusCode !== 201)
    throw new Error(`creating app ${name}: ${created.statusCode} ${created.body}`);
  const c = created.json() as AppCredentials;
  const login = await a.inject({
    method: 'POST',
    url: '/v1/auth/app/login',
    payload: { client_id: c.client_id, client_secret: c.client_secret },
  });
  if (login.statusCode !== 200) throw new Error(`logging app ${name} in: ${login.statusCode} ${login.body}`);
  return (login.json() as LoginResponse).auth.client_token;
}
