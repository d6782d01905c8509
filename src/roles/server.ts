/**
 * The vault server role: opens storage, assembles the vault, serves it over
 * HTTP (src/server/) and, when configured, the AI gateway beside it. The
 * process launcher bin/strongroom.ts starts it; it is the one place that
 * joins the transports to what they serve.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { assembleVault } from '../assemble/vault.ts';
import { parseListen, type ServerConfig } from '../config/config.ts';
import type { GatewayConfig } from '../config/gateway.ts';
import type { Core } from '../core/core.ts';
import type { IdentityOptions } from '../engines/identity/identity.ts';
import { systemClock } from '../lib/clock.ts';
import { parseDuration } from '../lib/duration.ts';
import { buildServer } from '../server/app.ts';
import { createLogger } from '../server/logger.ts';
import { vaultRoutes } from '../server/routes/vault-routes.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { openStorage, type StorageConfig } from '../storage/index.ts';

export interface RunningServer {
  app: FastifyInstance;
  /** The AI gateway, when the configuration has a `gateway` section. */
  gateway?: { app: FastifyInstance; address: string };
  core: Core;
  storage: StorageBackend;
  /** The base URL the server answers on, e.g. http://127.0.0.1:8210 */
  address: string;
  /** Set in dev mode only: a fresh root token minted at start. */
  devRootToken?: string;
  close(): Promise<void>;
}

function ensureDevKeyFile(path: string): void {
  if (existsSync(path)) return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
}

export async function startServer(
  config: Readonly<ServerConfig>,
  opts: { logger?: Logger } = {},
): Promise<RunningServer> {
  const logger = opts.logger ?? createLogger(config.log_level);
  if (config.dev && 'static' in config.seal) ensureDevKeyFile(config.seal.static.key_file);
  const storage = await openStorage(config.storage as StorageConfig);
  let app: FastifyInstance | undefined;
  try {
    const vault = assembleVault({
      storage,
      seal: config.seal,
      clock: systemClock,
      audit: config.audit ?? [],
      auditCheckpoint: config.audit_checkpoint,
      onAuditSinkError: (sink, err) =>
        logger.warn(
          { sink, err: { code: (err as NodeJS.ErrnoException).code, message: (err as Error).message } },
          'audit sink failed',
        ),
      onModuleError: (module, phase, err) =>
        logger.error({ module, phase, err: { message: (err as Error).message } }, 'a module failed to seal'),
      // the HSM's own words (token, PIN, key): never the PIN itself
      onAutoUnsealError: (err) =>
        logger.error(
          { err: { code: (err as { code?: string }).code, message: (err as Error).message } },
          'the vault stays sealed: the HSM could not unseal it (retrying every 10 s; POST /v1/sys/unseal {} to try now)',
        ),
      rateLimit: config.rate_limit,
      usage: config.usage,
      ...(config.identity ? { identity: identityOptions(config.identity) } : {}),
      ...(config.leases ? { leases: config.leases } : {}),
      ...(config.rotation
        ? {
            rotation: {
              ...(config.rotation.interval_seconds === undefined
                ? {}
                : { interval_seconds: config.rotation.interval_seconds }),
              adapters: {
                ...(config.rotation.openai_base_url
                  ? { openai: { base_url: config.rotation.openai_base_url } }
                  : {}),
                ...(config.rotation.openrouter_base_url
                  ? { openrouter: { base_url: config.rotation.openrouter_base_url } }
                  : {}),
              },
            },
          }
        : {}),
    });
    const { core } = vault;
    const routes = [...vaultRoutes];
    if ((config.audit ?? []).length === 0) {
      logger.warn('AUDITING IS DISABLED (audit: []): requests are served without an audit record');
    }
    await core.start();

    let devRootToken: string | undefined;
    if (config.dev) devRootToken = await prepareDev(core);

    app = await buildServer({ config, core, logger, routes });
    const { host, port } = parseListen(config.listen);
    await app.listen({ host, port });
    const addr = app.server.address();
    const boundPort = typeof addr === 'object' && addr ? addr.port : port;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    const address = `${config.tls ? 'https' : 'http'}://${shownHost}:${boundPort}`;
    logger.info(
      { address, storage: storage.kind, seal: Object.keys(config.seal)[0] },
      'strongroom server listening',
    );
    const server = app;
    const gateway = config.gateway
      ? await startGateway(config.gateway, core, storage, logger, vault)
      : undefined;
    return {
      app: server,
      core,
      storage,
      address,
      ...(gateway ? { gateway: { app: gateway.app, address: gateway.address } } : {}),
      ...(devRootToken ? { devRootToken } : {}),
      async close() {
        await gateway?.close();
        await server.close();
        await vault.close();
        await storage.close();
      },
    };
  } catch (err) {
    await app?.close();
    await storage.close();
    throw err;
  }
}

/**
 * Dev mode: initialise on first start, and mint a fresh root token on every
 * start (revoking the previous ones), so no token ever has to be stored.
 */
async function prepareDev(core: Core): Promise<string> {
  const status = await core.seal.status();
  if (!status.initialized) {
    await core.invoke('sys.init', {}, { request_id: 'dev-init', client_address: '127.0.0.1' });
  }
  for (const t of await core.tokens.list()) {
    if (t.policies.includes('root')) await core.tokens.revokeAccessor(t.accessor);
  }
  const { token } = await core.tokens.create({
    policies: ['root'],
    display_name: 'dev-root',
    owner: { type: 'root', id: 'root', name: 'root' },
    ttl: null,
  });
  return token;
}

/** The `identity` section, durations in seconds. */
function identityOptions(c: NonNullable<ServerConfig['identity']>): IdentityOptions {
  const sec = (v: string | number | undefined) => (v === undefined ? undefined : parseDuration(v));
  const out: Record<string, unknown> = {
    trust_domain: c.trust_domain,
    x509_ttl_seconds: sec(c.x509_svid_ttl),
    x509_max_ttl_seconds: sec(c.x509_svid_max_ttl),
    jwt_ttl_seconds: sec(c.jwt_svid_ttl),
    jwt_max_ttl_seconds: sec(c.jwt_svid_max_ttl),
    ca_ttl_seconds: sec(c.ca_ttl),
    api_audience: c.api_audience,
    issuer: c.issuer,
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as IdentityOptions;
}

/** Starts the AI gateway's listener in this process, on the vault's core (docs/gateway.md). */
async function startGateway(
  config: GatewayConfig,
  core: Core,
  storage: StorageBackend,
  logger: Logger,
  vault: ReturnType<typeof assembleVault>,
) {
  const [{ createGateway }, { createProviderKeys }] = await Promise.all([
    import('../gateway/gateway.ts'),
    import('../assemble/gateway-vault/provider-keys.ts'),
  ]);
  const keys = createProviderKeys(
    { barrier: core.barrier, secrets: vault.secrets },
    { exclusive: storage.exclusive },
  );
  const gw = await createGateway({ config, logger, ...(await vault.gatewayDeps(config, keys)) });
  const { host, port } = parseListen(config.listen);
  await gw.app.listen({ host, port });
  const a = gw.app.server.address();
  const boundPort = typeof a === 'object' && a ? a.port : port;
  const address = `${config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;
  logger.info({ address, routes: config.routes.length }, 'strongroom gateway listening');
  return {
    app: gw.app,
    address,
    async close() {
      await gw.close();
      keys.close();
    },
  };
}
