import { join } from 'node:path';
import { type Static, Type } from 'typebox';
import { createFileSink } from './file.ts';
import type { AuditSink } from './sink.ts';
import { createSocketSink, createStdoutSink, parseSocketAddress } from './stream.ts';

const Strict = { additionalProperties: false } as const;

const AuditFileSinkSchema = Type.Object(
  {
    file: Type.Object(
      { path: Type.String({ minLength: 1, maxLength: 4096, description: 'JSON-lines audit file' }) },
      Strict,
    ),
  },
  Strict,
);

const AuditStdoutSinkSchema = Type.Object({ stdout: Type.Object({}, Strict) }, Strict);

const AuditSocketSinkSchema = Type.Object(
  {
    socket: Type.Object(
      {
        address: Type.String({
          minLength: 1,
          maxLength: 1024,
          description: 'host:port for TCP, or a Unix socket path',
        }),
        type: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('unix')])),
        syslog: Type.Optional(Type.Boolean({ description: 'frame lines as RFC 5424 syslog messages' })),
      },
      Strict,
    ),
  },
  Strict,
);

/**
 * The `audit` key of the server config: a list of sinks. Absent: one file
 * sink, `<data dir>/audit.log` (defaultAuditConfig). An empty list disables
 * auditing, which the server must announce loudly.
 */
export const AuditConfigSchema = Type.Array(
  Type.Union([AuditFileSinkSchema, AuditStdoutSinkSchema, AuditSocketSinkSchema]),
  { maxItems: 16 },
);
export type AuditConfig = Static<typeof AuditConfigSchema>;

/** Optional `audit_checkpoint` key: how often signed checkpoints are written. */
export const AuditCheckpointConfigSchema = Type.Object(
  {
    every: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'entries (0: off)' })),
    interval_seconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 86_400, description: 'seconds (0: off)' }),
    ),
  },
  Strict,
);
export type AuditCheckpointConfig = Static<typeof AuditCheckpointConfigSchema>;

export function defaultAuditConfig(dataDir: string): AuditConfig {
  return [{ file: { path: join(dataDir, 'audit.log') } }];
}

/** Broker options for an `audit_checkpoint` config. */
export function checkpointOptions(c: AuditCheckpointConfig | undefined): {
  checkpointEvery?: number;
  checkpointIntervalMs?: number;
} {
  return {
    ...(c?.every === undefined ? {} : { checkpointEvery: c.every }),
    ...(c?.interval_seconds === undefined ? {} : { checkpointIntervalMs: c.interval_seconds * 1000 }),
  };
}

/** The path of the first file sink: where `GET /v1/audit` searches. */
export function auditFilePath(config: AuditConfig): string | undefined {
  for (const s of config) if ('file' in s) return s.file.path;
  return undefined;
}

/** Builds the sinks of a validated config. Throws TypeError for a malformed socket address. */
export function createSinks(config: AuditConfig, opts: { stdout?: NodeJS.WritableStream } = {}): AuditSink[] {
  const paths = new Set<string>();
  return config.map((s) => {
    if ('file' in s) {
      // two sinks on one file would interleave two chains
      if (paths.has(s.file.path)) throw new TypeError(`audit file ${s.file.path} is configured twice`);
      paths.add(s.file.path);
      return createFileSink({ path: s.file.path });
    }
    if ('stdout' in s) return createStdoutSink(opts.stdout);
    parseSocketAddress(s.socket.address, s.socket.type);
    return createSocketSink({
      address: s.socket.address,
      ...(s.socket.type ? { type: s.socket.type } : {}),
      ...(s.socket.syslog ? { syslog: true } : {}),
    });
  });
}
