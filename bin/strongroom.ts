// The CLI entry point: the only place that reads argv and the process environment.

import { runCli, type ServerCommandOptions } from '../src/cli/program.ts';
import {
  ConfigError,
  loadProcessSettings,
  loadRemoteGatewayConfig,
  loadServerConfig,
  type RemoteGatewayConfig,
  type ServerConfig,
} from '../src/config/config.ts';
import { isStrongroomError } from '../src/errors/errors.ts';
import { commandOf, inspectorRefusal, inspectorRequest } from '../src/lib/hardening.ts';
import type { RunningServer } from '../src/roles/server.ts';
import { printDevBanner } from '../src/server/banner.ts';
import type { Telemetry } from '../src/server/telemetry.ts';

/**
 * A role that holds keys does not start with a Node inspector asked for (`--inspect*` on the node command
 * line or in NODE_OPTIONS) outside dev mode, unless STRONGROOM_ALLOW_INSPECTOR=1 (docs/production.md#process-hardening).
 * Checked before anything is unsealed or listens.
 */
async function refuseInspector(role: string, dev: boolean): Promise<void> {
  let settings: ReturnType<typeof loadProcessSettings>;
  try {
    settings = loadProcessSettings(process.env);
  } catch (err) {
    process.stderr.write(`strongroom: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const { url } = await import('node:inspector');
  const request = inspectorRequest({
    execArgv: process.execArgv,
    nodeOptions: settings.node_options,
    active: url() !== undefined,
  });
  if (request === undefined || dev) return;
  if (settings.allow_inspector) {
    process.stderr.write(
      `strongroom: WARNING: the ${role} runs with a Node inspector (${request}) because STRONGROOM_ALLOW_INSPECTOR is set: whoever reaches it reads every key in this process. Never in production.\n`,
    );
    return;
  }
  process.stderr.write(`strongroom: ${inspectorRefusal(role, request)}\n`);
  process.exit(2);
}

/**
 * Trace context propagation always, and span export when the configuration has a `telemetry` section
 * (docs/configuration.md#telemetry); started before anything listens, stopped after the listeners close.
 */
async function startTelemetryFor(
  config: Readonly<{ telemetry?: ServerConfig['telemetry']; log_level: string }>,
): Promise<Telemetry> {
  const [{ startTelemetry }, { createLogger }] = await Promise.all([
    import('../src/server/telemetry.ts'),
    import('../src/server/logger.ts'),
  ]);
  const logger = createLogger(config.log_level);
  return startTelemetry(config.telemetry, { warn: (message) => logger.warn(message) });
}

/** `strongroom gateway` with a remote `vault` (docs/gateway-remote.md): no vault in this process. */
async function runRemoteGateway(config: Readonly<RemoteGatewayConfig>): Promise<void> {
  const [{ startRemoteGateway }, { createLogger }] = await Promise.all([
    import('../src/gateway/standalone.ts'),
    import('../src/server/logger.ts'),
  ]);
  const telemetry = await startTelemetryFor(config);
  let gateway: Awaited<ReturnType<typeof startRemoteGateway>>;
  try {
    gateway = await startRemoteGateway(config, createLogger(config.log_level));
  } catch (err) {
    const msg =
      (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `${config.gateway.listen} is already in use: stop the other process or change gateway.listen`
        : (err as Error).message;
    process.stderr.write(`strongroom: cannot start the gateway: ${msg}\n`);
    process.exit(1);
  }
  process.stdout.write(`Gateway listening on ${gateway.address} (vault: ${config.gateway.vault!.url})\n`);
  if (gateway.metricsAddress) process.stdout.write(`Gateway metrics on ${gateway.metricsAddress}/metrics\n`);
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await gateway.close();
    // the spans of the last calls are exported before the process goes
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  await new Promise(() => {});
}

async function runServer(o: ServerCommandOptions): Promise<void> {
  let config: Readonly<ServerConfig>;
  try {
    if (o.gateway) {
      const remote = loadRemoteGatewayConfig(o, process.env, process.cwd());
      if (remote) {
        await refuseInspector('gateway', false);
        return await runRemoteGateway(remote);
      }
    }
    config = loadServerConfig(o, process.env, process.cwd());
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`strongroom: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  await refuseInspector(o.gateway ? 'gateway' : 'server', config.dev === true);
  if (o.gateway && !config.gateway) {
    process.stderr.write(
      'strongroom gateway: the configuration has no `gateway` section (listen, routes): see docs/gateway.md\n',
    );
    process.exit(2);
  }
  const telemetry = await startTelemetryFor(config);
  let server: RunningServer;
  try {
    // loaded only for the server and gateway commands: the other commands start faster without it
    const { startServer } = await import('../src/roles/server.ts');
    server = await startServer(config);
  } catch (err) {
    const msg = isStrongroomError(err)
      ? err.message
      : (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `${config.listen} is already in use: stop the other server or pass --listen`
        : (err as Error).message;
    process.stderr.write(`strongroom: cannot start the server: ${msg}\n`);
    process.exit(1);
  }
  if (server.devRootToken) printDevBanner(process.stdout, server.address, server.devRootToken, config);
  if (server.gateway) process.stdout.write(`Gateway listening on ${server.gateway.address}\n`);
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    await server.close();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  await new Promise(() => {});
}

// `strongroom export … | head`: a reader that went away is not an error
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// the agent has no dev mode: an inspector is refused unless allowed explicitly
if (commandOf(process.argv.slice(2)) === 'agent') await refuseInspector('agent', false);

const code = await runCli(
  process.argv.slice(2),
  {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  },
  runServer,
);
process.exitCode = code;
