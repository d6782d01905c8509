import { Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Nullable } from './response-schemas.ts';

/** The wire contract of the audit API (docs/audit.md). */

/** POST /v1/sys/audit-hash */
export interface AuditHashInput {
  input: string;
}

/** GET /v1/audit: the query parameters, `limit` as a number. */
export interface AuditQueryInput {
  /** A user id, app client id, token accessor or display name. */
  actor?: string;
  /** An action, or a prefix ending in `*` (`secret.*`). */
  action?: string;
  request_id?: string;
  /** An ISO 8601 time, or a duration before now (`15m`, `1h`, `7d`). */
  since?: string;
  until?: string;
  /** At most this many entries, the newest (1 to 1000, default 100). */
  limit?: number;
}

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

const AuditHashResponse = Type.Object({
  /** `hmac-sha256:<hex>`, as audit entries carry it. */
  hash: Type.String(),
});

/**
 * Who made a request. The log's readers "ignore fields they do not know"
 * (docs/audit.md): an actor or an entry written with a field this schema does
 * not name yet is passed on as it is in the file, not cut.
 */
const AuditActorSchema = Type.Object(
  {
    type: Type.Optional(Type.String()),
    id: Type.Optional(Type.String()),
    accessor: Type.Optional(Type.String()),
    display_name: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

/** One audit log line as stored (docs/audit.md), in the order the file holds its fields. */
const AuditLogEntrySchema = Type.Object(
  {
    seq: Type.Integer(),
    prev: Type.String(),
    type: Type.Union([Type.Literal('request'), Type.Literal('response')]),
    time: Iso,
    request_id: Type.String(),
    trace_id: Type.Optional(Type.String()),
    operation: Type.String(),
    action: Type.String(),
    resource: Type.String(),
    actor: Nullable(AuditActorSchema),
    client_address: Type.String(),
    decision: Type.Optional(Type.Object({ allowed: Type.Boolean(), reason: Type.String() })),
    /** The operation's input, sensitive fields replaced by `hmac-sha256:…`. */
    request: Type.Optional(Type.Unknown()),
    status: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('error')])),
    status_code: Type.Optional(Type.Integer()),
    error_code: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

const AuditQueryResponseSchema = Type.Object({
  /** Matching request/response entries, oldest first. */
  entries: Type.Array(AuditLogEntrySchema),
  /** More entries matched than `limit`. */
  more: Type.Boolean(),
  /** The server stopped scanning before the start of the file (its byte budget). */
  partial: Type.Boolean(),
});

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

export const AuditHash = op<AuditHashInput>()('audit.hash', AuditHashResponse);
export const AuditQuery = op<AuditQueryInput>()('audit.query', AuditQueryResponseSchema);
