import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Nullable, StringOrNull } from './response-schemas.ts';
import {
  type EnvParams,
  MAX_SECRET_VALUE_BYTES,
  Name,
  RotationSettingsOut,
  SecretFields,
  SecretMetadata,
} from './v1.ts';

/**
 * The wire contract of bulk import and export (docs/import-export.md):
 * `POST /v1/secrets/{project}/{env}/import` and `GET .../export`.
 */
const Strict = { additionalProperties: false } as const;

/** At most this many entries in one import request. */
export const MAX_IMPORT_ENTRIES = 20_000;
/** The import route's body limit (the server-wide default is 1 MiB). */
export const MAX_IMPORT_BYTES = 32 * 1024 * 1024;
/** The media type of a streamed import (progress lines, then the result). */
export { NDJSON } from './media.ts';

/**
 * The secret-name rule, for clients that check names before sending (the
 * server's rule is src/engines/kv/names.ts; a test keeps the two equal).
 */
export const SECRET_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export const ImportEntry = Type.Object(
  {
    name: Name,
    value: Type.String({ maxLength: MAX_SECRET_VALUE_BYTES }),
    metadata: Type.Optional(SecretMetadata),
    ...SecretFields,
  },
  Strict,
);
export type ImportEntry = Static<typeof ImportEntry>;

export const OnConflict = Type.Union([Type.Literal('skip'), Type.Literal('overwrite'), Type.Literal('fail')]);
export type OnConflict = Static<typeof OnConflict>;

export const ImportRequest = Type.Object(
  {
    secrets: Type.Array(ImportEntry, { maxItems: MAX_IMPORT_ENTRIES }),
    /** What to do with a name that exists with another value (default 'fail'). */
    on_conflict: Type.Optional(OnConflict),
    /** Plan only: nothing is written. */
    dry_run: Type.Optional(Type.Boolean()),
    /** Store values that do not look like their provider's key format. */
    force: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type ImportRequest = Static<typeof ImportRequest>;

export const ExportQuery = Type.Object(
  { values: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) },
  Strict,
);

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

/** What an import does (or, in a dry run, would do) with one entry. */
const ImportActionSchema = Type.Union([
  Type.Literal('create'),
  Type.Literal('update'),
  Type.Literal('skip'),
  Type.Literal('unchanged'),
]);
export type ImportAction = Static<typeof ImportActionSchema>;

const ImportOutcomeSchema = Type.Object({
  name: Type.String(),
  action: ImportActionSchema,
  /** The version written ('create', 'update'), or the current one ('skip', 'unchanged'). */
  version: Type.Optional(Type.Integer()),
});
export type ImportOutcome = Static<typeof ImportOutcomeSchema>;

const ImportCountsSchema = Type.Object({
  total: Type.Integer(),
  create: Type.Integer(),
  update: Type.Integer(),
  skip: Type.Integer(),
  unchanged: Type.Integer(),
});

/**
 * The import's answer. The route streams progress when asked (`progress`), so
 * the server does not serialize a plain answer with this schema: it types the
 * result for the engine and the SDK and documents it.
 */
const ImportResponseSchema = Type.Object({
  project: Type.String(),
  env: Type.String(),
  dry_run: Type.Boolean(),
  /** Whether anything was written (false for a dry run, or when every entry was skipped or unchanged). */
  committed: Type.Boolean(),
  on_conflict: OnConflict,
  counts: ImportCountsSchema,
  /** One outcome per entry, in request order. */
  entries: Type.Array(ImportOutcomeSchema),
});
export type ImportResponse = Static<typeof ImportResponseSchema>;

/** Why an entry stopped an import (in the error's `details.problems`). */
export interface ImportProblem {
  /** Position in the request's `secrets` array. */
  index: number;
  name: string;
  code: 'invalid_name' | 'invalid_value' | 'validation_failed' | 'duplicate' | 'conflict' | 'out_of_scope';
  message: string;
}

/** One line of a streamed import: progress, then exactly one `result` or `error`. */
export type ImportStreamLine =
  | { phase: 'validate' | 'write' | 'commit'; done: number; total: number }
  | { result: ImportResponse }
  | {
      error: {
        code: string;
        message: string;
        request_id: string;
        details?: { problems?: ImportProblem[]; problem_count?: number };
      };
    };

const ExportedSecretSchema = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  updated_at: Iso,
  /** Present only in an export with values. */
  value: Type.Optional(Type.String()),
  provider: StringOrNull,
  owner: StringOrNull,
  expires_at: Nullable(Iso),
  rotation: Nullable(RotationSettingsOut),
  tags: Type.Array(Type.String()),
  metadata: Type.Record(Type.String(), Type.String()),
});
export type ExportedSecret = Static<typeof ExportedSecretSchema>;

/** Both exports answer with it (`values` says which), so the one route serializes either with it. */
const ExportResponseSchema = Type.Object({
  project: Type.String(),
  env: Type.String(),
  values: Type.Boolean(),
  exported_at: Iso,
  secrets: Type.Array(ExportedSecretSchema),
});
export type ExportResponse = Static<typeof ExportResponseSchema>;

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

type EnvAddress = Static<typeof EnvParams>;

/** `GET …/export?values=true`: names, fields and values (needs `secret.export`). */
export const SecretExport = op<EnvAddress>()('secret.export', ExportResponseSchema);
/** `GET …/export`: names and fields only (what the list shows). */
export const SecretExportMetadata = op<EnvAddress>()('secret.export-metadata', ExportResponseSchema);
export const SecretImport = op<EnvAddress & ImportRequest>()('secret.import', ImportResponseSchema);
