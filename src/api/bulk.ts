import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { MAX_SECRET_VALUE_BYTES, Name, SecretFields, SecretMetadata } from './v1.ts';

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

/** What an import does (or, in a dry run, would do) with one entry. */
export type ImportAction = 'create' | 'update' | 'skip' | 'unchanged';

export interface ImportOutcome {
  name: string;
  action: ImportAction;
  /** The version written ('create', 'update'), or the current one ('skip', 'unchanged'). */
  version?: number;
}

export interface ImportCounts {
  total: number;
  create: number;
  update: number;
  skip: number;
  unchanged: number;
}

export interface ImportResponse {
  project: string;
  env: string;
  dry_run: boolean;
  /** Whether anything was written (false for a dry run, or when every entry was skipped or unchanged). */
  committed: boolean;
  on_conflict: OnConflict;
  counts: ImportCounts;
  /** One outcome per entry, in request order. */
  entries: ImportOutcome[];
}

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

export interface ExportedSecret {
  name: string;
  version: number;
  updated_at: string;
  /** Present only in an export with values. */
  value?: string;
  provider: string | null;
  owner: string | null;
  expires_at: string | null;
  rotation: { interval: number; grace: number; adapter?: string; options?: Record<string, string> } | null;
  tags: string[];
  metadata: Record<string, string>;
}

export interface ExportResponse {
  project: string;
  env: string;
  values: boolean;
  exported_at: string;
  secrets: ExportedSecret[];
}

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const SecretExport = op()('secret.export');
export const SecretExportMetadata = op()('secret.export-metadata');
export const SecretImport = op()('secret.import');
