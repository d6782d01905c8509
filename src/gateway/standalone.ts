import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { parseListen, type RemoteGatewayConfig } from '../config/config.ts';
import { parseDuration } from '../lib/duration.ts';
import { fileSvidSource, type SvidSource, workloadApiSvidSource } from '../spiffe/svid-source.ts';
import { gatewayParts } from './assemble.ts';
import { createGateway } from './gateway.ts';
import { remoteVault, sourcedGatewayIdentity } from './remote-vault.ts';

/**
 * `strongroom gateway` in front of a remote vault (docs/gateway-remote.md):
 * the gateway's SVID from the agent (Workload API or files), every decision
 * asked of the vault over mTLS with it, the same pipeline as in process.
 */
export interface RunningGateway {
  app: FastifyInstance;
  address: string;
  /** `http://host:port` of the metrics listener, when configured. */
  metricsAddress?: string;
  close(): Promise<void>;
}

const displayAddress = (scheme: string, host: string, port: number) =>
  `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;

export async function startRemoteGateway(
  config: RemoteGatewayConfig,
  logger: Logger,
): Promise<RunningGateway> {
  const g = config.gateway;
  const v = g.vault!;
  const onError = (err: Error) =>
    logger.warn({ err: { message: err.message } }, 'gateway SVID update failed');
  let source: SvidSource;
  try {
    source =
      'workload_api' in v.svid
        ? await workloadApiSvidSource({ socketPath: v.svid.workload_api, onError })
        : await fileSvidSource({ dir: v.svid.dir, initialTimeoutMs: 10_000, onError });
  } catch (err) {
    throw new Error(
      `no SVID for the gateway (${(err as Error).message}): is the agent running with an \`identity\` section for this gateway's SPIFFE ID, and does gateway.vault.svid point where it serves it? (docs/gateway-remote.md)`,
      { cause: err },
    );
  }
  const vault = remoteVault({
    url: v.url,
    ...(v.ca_file ? { ca: readFileSync(v.ca_file, 'utf8') } : {}),
    source,
    ...(v.timeout === undefined ? {} : { timeoutMs: parseDuration(v.timeout) * 1000 }),
    onError: (detail) => logger.warn({ detail }, 'the gateway could not use its vault'),
  });
  const identity =
    g.provenance !== false || g.remote_stages?.length ? sourcedGatewayIdentity(source) : undefined;
  const gw = await createGateway({ config: g, logger, ...gatewayParts(g, vault, identity) });
  let metricsServer: Server | undefined;
  try {
    const { host, port } = parseListen(g.listen);
    await gw.app.listen({ host, port });
    const a = gw.app.server.address();
    const address = displayAddress(
      g.tls ? 'https' : 'http',
      host,
      typeof a === 'object' && a ? a.port : port,
    );
    let metricsAddress: string | undefined;
    if (g.metrics_listen) {
      const m = parseListen(g.metrics_listen);
      metricsServer = createServer((req, res) => {
        if (req.method === 'GET' && req.url === '/metrics') {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(vault.metrics.render());
        } else if (req.method === 'GET' && req.url === '/healthz') {
          void vault.health().then((status) => {
            res.writeHead(status === 'ok' ? 200 : 503, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ status }));
          });
        } else res.writeHead(404).end();
      });
      await new Promise<void>((resolve, reject) => {
        metricsServer!.once('error', reject).listen(m.port, m.host, () => resolve());
      });
      const ma = metricsServer.address();
      metricsAddress = displayAddress('http', m.host, typeof ma === 'object' && ma ? ma.port : m.port);
    }
    logger.info(
      {
        address,
        ...(metricsAddress ? { metrics: metricsAddress } : {}),
        vault: new URL(v.url).origin,
        spiffe_id: source.current().spiffeId,
        routes: g.routes.length,
      },
      'strongroom gateway listening (remote vault)',
    );
    return {
      app: gw.app,
      address,
      ...(metricsAddress ? { metricsAddress } : {}),
      async close() {
        await new Promise((r) => (metricsServer ? metricsServer.close(r) : r(undefined)));
        await gw.close();
        await vault.close();
        source.close();
      },
    };
  } catch (err) {
    metricsServer?.close();
    await gw.close();
    await vault.close();
    source.close();
    throw err;
  }
}
