import { resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * A SPIFFE Workload API client built the way a SPIFFE library builds one: from
 * the vendored upstream proto with @grpc/proto-loader, over a Unix socket,
 * with the `workload.spiffe.io: true` security header on every call (unless
 * told to leave it out).
 */
const PROTO = resolve(import.meta.dirname, '../../proto/spiffe/workload/workload.proto');

export interface X509SvidMessage {
  svids: { spiffe_id: string; x509_svid: Buffer; x509_svid_key: Buffer; bundle: Buffer; hint: string }[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}
export interface BundlesMessage {
  bundles: Record<string, Buffer>;
}
export interface JwtSvidMessage {
  svids: { spiffe_id: string; svid: string; hint: string }[];
}
export interface StructValue {
  fields: Record<string, Record<string, unknown>>;
}
export interface ValidateMessage {
  spiffe_id: string;
  claims: StructValue;
}

/** Reads a server stream message by message. */
export interface StreamReader<T> {
  /** The next message; rejects with the call's error (a grpc.ServiceError) or after `ms`. */
  next(ms?: number): Promise<T>;
  cancel(): void;
}

function reader<T>(call: grpc.ClientReadableStream<T>): StreamReader<T> {
  const queue: T[] = [];
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  call.on('data', (d: T) => {
    queue.push(d);
    wake?.();
  });
  call.on('error', (e: Error) => {
    failure = e;
    wake?.();
  });
  call.on('end', () => {
    failure ??= new Error('the stream ended');
    wake?.();
  });
  return {
    async next(ms = 10_000) {
      const end = Date.now() + ms;
      for (;;) {
        if (queue.length) return queue.shift()!;
        if (failure) throw failure;
        const left = end - Date.now();
        if (left <= 0) throw new Error(`no stream message within ${ms} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => {
            clearTimeout(t);
            wake = undefined;
            r();
          };
        });
      }
    },
    cancel: () => call.cancel(),
  };
}

export function workloadClient(socketPath: string) {
  const def = protoLoader.loadSync(PROTO, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const Ctor = grpc.loadPackageDefinition(def).SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
  const client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure()) as grpc.Client &
    Record<string, (...args: unknown[]) => unknown>;
  const md = (header: boolean) => {
    const m = new grpc.Metadata();
    if (header) m.set('workload.spiffe.io', 'true');
    return m;
  };
  const unary = <T>(method: string, req: object, header = true) =>
    new Promise<T>((res, rej) =>
      client[method]!(req, md(header), (err: grpc.ServiceError | null, out: T) =>
        err ? rej(err) : res(out),
      ),
    );
  const stream = <T>(method: string, header = true) =>
    reader<T>(client[method]!({}, md(header)) as grpc.ClientReadableStream<T>);
  return {
    fetchX509Svid: (header = true) => stream<X509SvidMessage>('FetchX509SVID', header),
    fetchX509Bundles: (header = true) => stream<BundlesMessage>('FetchX509Bundles', header),
    fetchJwtBundles: (header = true) => stream<BundlesMessage>('FetchJWTBundles', header),
    fetchJwtSvid: (req: { audience: string[]; spiffe_id?: string }, header = true) =>
      unary<JwtSvidMessage>('FetchJWTSVID', req, header),
    validateJwtSvid: (req: { audience: string; svid: string }, header = true) =>
      unary<ValidateMessage>('ValidateJWTSVID', req, header),
    close: () => client.close(),
  };
}

/** Splits concatenated DER certificates (the Workload API's chain and bundle encoding). */
export function splitDer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] !== 0x30) throw new Error('not a DER SEQUENCE');
    let len = buf[pos + 1]!;
    let header = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
      header += n;
    }
    out.push(buf.subarray(pos, pos + header + len));
    pos += header + len;
  }
  return out;
}

/**
 * The plain value of a google.protobuf.Value as proto-loader decodes it
 * (oneofs: true; protobufjs names the well-known types' fields in camelCase).
 */
export function fromValue(v: Record<string, unknown>): unknown {
  switch (v.kind) {
    case 'nullValue':
      return null;
    case 'numberValue':
    case 'stringValue':
    case 'boolValue':
      return v[v.kind as string];
    case 'structValue':
      return fromStruct(v.structValue as StructValue);
    case 'listValue':
      return ((v.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(fromValue);
    default:
      return undefined;
  }
}

export function fromStruct(s: StructValue): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s.fields ?? {}).map(([k, v]) => [k, fromValue(v)]));
}
