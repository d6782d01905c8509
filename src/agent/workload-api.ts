import { chmodSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { AgentConfig } from '../config/agent.ts';
import type { MetricFamily } from '../lib/metrics.ts';
import type { TokenSource } from '../sdk/client.ts';
import {
  createHttpSvidIssuer,
  createSvidManager,
  isRefusal,
  type SvidIssuer,
  type SvidManager,
  type TrustBundles,
  type X509Svid,
} from './svid.ts';

/**
 * The SPIFFE Workload API (github.com/spiffe/spiffe standards/SPIFFE_Workload_API.md
 * and SPIFFE_Workload_Endpoint.md), served over gRPC on a Unix socket from the
 * upstream proto (proto/spiffe/workload/workload.proto), backed by the SVID
 * manager (svid.ts). The socket's file mode is the access control: the agent
 * does no workload attestation, so everyone who can connect gets the agent's
 * one identity.
 */

/** The vendored upstream service definition. */
const WORKLOAD_PROTO = resolve(import.meta.dirname, '../../proto/spiffe/workload/workload.proto');

/** SPIFFE_Workload_Endpoint.md §3: every call carries this header, set to `true`. */
const SECURITY_HEADER = 'workload.spiffe.io';

/** What the server needs from the SVID manager. */
export type WorkloadIdentity = Pick<
  SvidManager,
  'spiffeId' | 'trustDomain' | 'current' | 'bundles' | 'status' | 'subscribe' | 'jwtSvid' | 'validateJwtSvid'
>;

export interface WorkloadApiServer {
  /** The socket path. */
  readonly path: string;
  /** Open FetchX509SVID / FetchX509Bundles / FetchJWTBundles streams. */
  streams(): number;
  /** Ends every stream, stops the server and removes the socket. */
  close(): Promise<void>;
}

type Log = (msg: string, extra?: Record<string, unknown>) => void;

interface GrpcError {
  code: grpc.status;
  details: string;
}

const err = (code: grpc.status, details: string): GrpcError => ({ code, details });

let serviceDefinition: grpc.ServiceDefinition | undefined;
function service(): grpc.ServiceDefinition {
  if (!serviceDefinition) {
    const def = protoLoader.loadSync(WORKLOAD_PROTO, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def);
    serviceDefinition = (pkg.SpiffeWorkloadAPI as grpc.ServiceClientConstructor).service;
  }
  return serviceDefinition;
}

/** SPIFFE_Workload_Endpoint.md §6: a call without the security header is a client bug, not retried. */
function headerProblem(md: grpc.Metadata): GrpcError | undefined {
  const v = md.get(SECURITY_HEADER);
  if (v.length === 0 || String(v[0]) !== 'true') {
    return err(grpc.status.INVALID_ARGUMENT, 'security header missing from request');
  }
  return undefined;
}

/** Why there is nothing to serve yet (SPIFFE_Workload_Endpoint.md Appendix A). */
function noSvid(id: WorkloadIdentity): GrpcError {
  const s = id.status();
  if (s.state === 'denied') {
    return err(
      grpc.status.PERMISSION_DENIED,
      `the vault refuses an SVID for ${s.spiffeId}: ${s.lastError ?? 'not allowed'}`,
    );
  }
  if (s.state === 'expired') {
    return err(grpc.status.UNAVAILABLE, `the SVID of ${s.spiffeId} expired and could not be renewed`);
  }
  return err(grpc.status.UNAVAILABLE, 'the agent has no SVID yet');
}

const tdId = (td: string) => `spiffe://${td}`;
const der = (certs: readonly { raw: Buffer }[]) => Buffer.concat(certs.map((c) => c.raw));

function x509SvidResponse(svid: X509Svid, b: TrustBundles | undefined, td: string) {
  const federated: Record<string, Buffer> = {};
  for (const [name, certs] of b?.x509 ?? []) if (name !== td) federated[tdId(name)] = der(certs);
  return {
    svids: [
      {
        spiffe_id: svid.spiffeId,
        x509_svid: svid.chainDer,
        x509_svid_key: svid.keyDer,
        bundle: der(b?.x509.get(td) ?? []),
        hint: '',
      },
    ],
    crl: [],
    federated_bundles: federated,
  };
}

/**
 * google.protobuf.Struct of a JSON object (the `claims` of ValidateJWTSVIDResponse).
 * protobufjs defines the well-known types with camelCase field names whatever `keepCase` says.
 */
export function toStruct(obj: Record<string, unknown>): { fields: Record<string, unknown> } {
  const value = (v: unknown): Record<string, unknown> => {
    if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
    if (typeof v === 'number') return { numberValue: v };
    if (typeof v === 'string') return { stringValue: v };
    if (typeof v === 'boolean') return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
    return { stringValue: String(v) };
  };
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, value(v)])) };
}

/**
 * Serves the Workload API on a Unix socket with `mode`. The socket is bound
 * inside a private directory, given its mode, then moved into place, so it is
 * never reachable with a wider mode (and no process-wide umask is touched).
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the five Workload API handlers share the attestation and the SVID sources of one gRPC server
export async function startWorkloadApi(opts: {
  socket: string;
  mode: number;
  identity: WorkloadIdentity;
  log?: Log;
}): Promise<WorkloadApiServer> {
  const { identity: id } = opts;
  const log: Log = opts.log ?? (() => {});
  const td = id.trustDomain;
  const open = new Set<grpc.ServerWritableStream<unknown, unknown>>();

  /**
   * A server stream (SPIFFE_Workload_API.md §4.3): the full state at once,
   * then again whenever it changes, until the client goes away.
   */
  function stream(
    call: grpc.ServerWritableStream<unknown, unknown>,
    build: () => { message: object; print: string } | GrpcError,
  ) {
    const bad = headerProblem(call.metadata);
    if (bad) return void call.emit('error', bad);
    let last = '';
    let unsubscribe = () => {};
    const finish = () => {
      unsubscribe();
      open.delete(call);
    };
    const push = () => {
      if (call.cancelled || call.writableEnded) return finish();
      const r = build();
      if ('code' in r) {
        finish();
        call.emit('error', r);
        return;
      }
      if (r.print === last) return;
      last = r.print;
      call.write(r.message);
    };
    const first = build();
    if ('code' in first) return void call.emit('error', first);
    open.add(call);
    unsubscribe = id.subscribe(() => push());
    call.on('cancelled', finish);
    call.on('close', finish);
    call.on('error', finish);
    push();
  }

  const x509Print = (svid: X509Svid, b: TrustBundles | undefined) =>
    `${svid.chainDer.toString('base64')}|${[...(b?.x509 ?? [])]
      .map(([name, certs]) => `${name}:${der(certs).toString('base64')}`)
      .join(',')}`;

  const handlers: grpc.UntypedServiceImplementation = {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, () => {
        const svid = id.current();
        if (!svid) return noSvid(id);
        const b = id.bundles();
        return { message: x509SvidResponse(svid, b, td), print: x509Print(svid, b) };
      });
    },

    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, () => {
        const b = id.bundles();
        if (!b?.x509.has(td)) return err(grpc.status.UNAVAILABLE, 'the agent has no trust bundle yet');
        const bundles: Record<string, Buffer> = {};
        for (const [name, certs] of b.x509) bundles[tdId(name)] = der(certs);
        const print = Object.entries(bundles)
          .map(([k, v]) => `${k}:${v.toString('base64')}`)
          .join(',');
        return { message: { crl: [], bundles }, print };
      });
    },

    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, () => {
        const b = id.bundles();
        if (!b?.jwks.has(td)) return err(grpc.status.UNAVAILABLE, 'the agent has no JWT bundle yet');
        const bundles: Record<string, Buffer> = {};
        for (const [name, jwks] of b.jwks) bundles[tdId(name)] = Buffer.from(jwks);
        return { message: { bundles }, print: JSON.stringify([...b.jwks]) };
      });
    },

    FetchJWTSVID(
      call: grpc.ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) {
      const bad = headerProblem(call.metadata);
      if (bad) return callback(bad);
      const { audience, spiffe_id: wanted } = call.request;
      // SPIFFE_Workload_API.md §4.5: a mandatory field with its default value is InvalidArgument
      if (!audience?.length || audience.some((a) => a === '')) {
        return callback(err(grpc.status.INVALID_ARGUMENT, 'audience must be specified'));
      }
      // §6.2.1: an identity the caller is not entitled to is PermissionDenied
      if (wanted && wanted !== id.spiffeId) {
        return callback(
          err(
            grpc.status.PERMISSION_DENIED,
            `no identity issued for ${JSON.stringify(wanted.slice(0, 200))}`,
          ),
        );
      }
      id.jwtSvid(audience).then(
        (j) => callback(null, { svids: [{ spiffe_id: j.spiffeId, svid: j.token, hint: '' }] }),
        (e: unknown) => {
          log('cannot obtain a JWT-SVID', { error: (e as Error).message });
          callback(
            isRefusal(e)
              ? err(grpc.status.PERMISSION_DENIED, `the vault refuses a JWT-SVID: ${(e as Error).message}`)
              : err(grpc.status.UNAVAILABLE, 'the vault cannot be reached for a JWT-SVID'),
          );
        },
      );
    },

    ValidateJWTSVID(
      call: grpc.ServerUnaryCall<{ audience: string; svid: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) {
      const bad = headerProblem(call.metadata);
      if (bad) return callback(bad);
      const { audience, svid } = call.request;
      if (!audience) return callback(err(grpc.status.INVALID_ARGUMENT, 'audience must be specified'));
      if (!svid) return callback(err(grpc.status.INVALID_ARGUMENT, 'svid must be specified'));
      id.validateJwtSvid(svid, audience).then(
        (v) => callback(null, { spiffe_id: v.spiffeId, claims: toStruct(v.claims) }),
        (e: unknown) => {
          const untrusted = (e as { code?: string }).code === 'untrusted' && !id.bundles()?.jwks.size;
          callback(
            untrusted
              ? err(grpc.status.UNAVAILABLE, 'the agent has no JWT bundle yet')
              : err(grpc.status.INVALID_ARGUMENT, (e as Error).message),
          );
        },
      );
    },
  };

  const server = new grpc.Server();
  server.addService(service(), handlers);

  const path = resolve(opts.socket);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path); // left over from a previous run
  } catch {}
  const privateDir = mkdtempSync(join(dirname(path), '.workload-api-'));
  const tmp = join(privateDir, 's');
  try {
    await new Promise<void>((res, rej) =>
      server.bindAsync(`unix:${tmp}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    chmodSync(tmp, opts.mode);
    renameSync(tmp, path);
  } catch (e) {
    server.forceShutdown();
    throw e;
  } finally {
    rmSync(privateDir, { recursive: true, force: true });
  }
  log('serving the SPIFFE Workload API', { socket: path, spiffe_id: id.spiffeId });

  return {
    path,
    streams: () => open.size,
    async close() {
      for (const call of [...open]) {
        open.delete(call);
        call.end();
      }
      await new Promise<void>((res) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          res();
        }, 1_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          res();
        });
      });
      try {
        unlinkSync(path);
      } catch {}
    },
  };
}

// ---------------------------------------------------------------- the agent's identity

/** What agent.ts runs when `identity:` is configured. */
export interface AgentIdentity {
  readonly manager: SvidManager;
  /** First X.509-SVID in hand (rejects at the first failure in `once` mode). */
  readonly ready: Promise<void>;
  /** Binds the Workload API socket. */
  serve(): Promise<void>;
  /** Whether /healthz may say ok, and what it shows. */
  health(): { ok: boolean; body: Record<string, unknown> };
  metrics(): MetricFamily[];
  close(): Promise<void>;
}

/** Starts the SVID manager for the agent's configured identity (the Workload API waits for `serve()`). */
export function startAgentIdentity(
  cfg: NonNullable<AgentConfig['identity']>,
  deps: {
    addrs: readonly string[];
    token: TokenSource;
    log: Log;
    once?: boolean;
    fetch?: typeof fetch;
    /** An issuer other than the vault's HTTP API (tests). */
    source?: SvidIssuer;
  },
): AgentIdentity {
  const source =
    deps.source ??
    createHttpSvidIssuer({
      addrs: deps.addrs,
      token: deps.token,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    });
  const manager = createSvidManager({
    spiffeId: cfg.spiffeId,
    source,
    ...(cfg.ttlSeconds === undefined ? {} : { ttlSeconds: cfg.ttlSeconds }),
    ...(cfg.files ? { files: cfg.files } : {}),
    ...(deps.once ? { once: true } : {}),
    log: deps.log,
  });
  let server: WorkloadApiServer | undefined;
  return {
    manager,
    ready: manager.ready,
    async serve() {
      server = await startWorkloadApi({
        socket: cfg.socket.path,
        mode: cfg.socket.mode,
        identity: manager,
        log: deps.log,
      });
    },
    health() {
      const s = manager.status();
      return {
        ok: s.state === 'ok',
        body: {
          spiffe_id: s.spiffeId,
          state: s.state,
          expires_at: s.expiresAt === null ? null : new Date(s.expiresAt).toISOString(),
          rotations: s.rotations,
          ...(s.lastError ? { last_error: s.lastError } : {}),
        },
      };
    },
    metrics() {
      const s = manager.status();
      return [
        {
          name: 'strongroom_agent_svid_expiry_seconds',
          help: 'Expiry of the current X.509-SVID (Unix time; 0 when none)',
          type: 'gauge',
          samples: [{ value: (s.expiresAt ?? 0) / 1000 }],
        },
        {
          name: 'strongroom_agent_svid_rotations_total',
          help: 'X.509-SVID rotations',
          type: 'counter',
          samples: [{ value: s.rotations }],
        },
        {
          name: 'strongroom_agent_workload_api_streams',
          help: 'Open Workload API streams',
          type: 'gauge',
          samples: [{ value: server?.streams() ?? 0 }],
        },
      ];
    },
    async close() {
      manager.stop();
      await server?.close();
    },
  };
}
