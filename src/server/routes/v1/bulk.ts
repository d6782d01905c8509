import type { FastifyRequest } from 'fastify';
import * as ops from '../../../api/bulk.ts';
import { ExportQuery, ImportRequest, MAX_IMPORT_BYTES, NDJSON } from '../../../api/bulk.ts';
import { EnvParams } from '../../../api/v1.ts';
import type { RouteDef } from './routes.ts';

/**
 * Bulk import and export (src/engines/kv/bulk.ts, docs/import-export.md). An
 * import asked for with `Accept: application/x-ndjson` streams its progress,
 * one JSON object per line, and ends with `{"result": …}` or `{"error": …}`.
 */
type Req = FastifyRequest<{
  Params: Record<string, string>;
  Querystring: Record<string, string>;
  Body: Record<string, unknown>;
}>;
const params = (req: FastifyRequest) => (req as Req).params;

export const bulkRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/import',
    operation: ops.SecretImport,
    schema: { params: EnvParams, body: ImportRequest },
    bodyLimit: MAX_IMPORT_BYTES,
    input: (r) => ({ ...((r as Req).body ?? {}), project: params(r).project, env: params(r).env }),
    progress: {
      when: (r) => (r.headers.accept ?? '').includes(NDJSON),
      contentType: NDJSON,
      encode: (kind, data) =>
        `${JSON.stringify(kind === 'progress' ? data : kind === 'result' ? { result: data } : data)}\n`,
    },
  },
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/export',
    operation: ops.SecretExportMetadata,
    variant: { operation: ops.SecretExport, when: (r) => (r as Req).query.values === 'true' },
    schema: { params: EnvParams, querystring: ExportQuery },
    input: (r) => ({ project: params(r).project, env: params(r).env }),
  },
];
