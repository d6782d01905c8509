import type * as api from '../api/bulk.ts';
import type { ImportProblem, ImportRequest, ImportStreamLine } from '../api/bulk.ts';
import { NDJSON } from '../api/media.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import { type ClientOptions, firstAddr, StrongroomApiError, tokenOf } from './client.ts';

/**
 * Bulk import and export (docs/import-export.md).
 *
 * @example
 * const r = await importSecrets({ addr, token }, 'demo', 'dev', { secrets, on_conflict: 'skip' }, {
 *   onProgress: (p) => console.error(p.phase, p.done, '/', p.total),
 * });
 */
export type ImportProgress = Extract<ImportStreamLine, { phase: string }>;
type ImportResult = Out<typeof api.SecretImport>;
/** Both exports (with values, secret.export, and without, secret.export-metadata) answer with one schema. */
type ExportResult = Out<typeof api.SecretExport>;

/** An import the server refused: `problems` says which entries stopped it (nothing was written). */
export class StrongroomImportError extends StrongroomApiError {
  readonly problems: ImportProblem[];
  /** How many problems there were (the server returns at most 1000). */
  readonly problemCount: number;

  constructor(
    status: number,
    code: string,
    message: string,
    requestId: string | undefined,
    details: { problems?: ImportProblem[]; problem_count?: number } | undefined,
  ) {
    super(status, code, message, requestId);
    this.name = 'StrongroomImportError';
    this.problems = details?.problems ?? [];
    this.problemCount = details?.problem_count ?? this.problems.length;
  }
}

const seg = (s: string) => encodeURIComponent(s);

function unreachable(base: string, err: unknown): StrongroomApiError {
  const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
  return new StrongroomApiError(
    0,
    'unreachable',
    `cannot reach Strongroom at ${base} (${cause}): is the server running, and is STRONGROOM_ADDR right?`,
  );
}

function errorFrom(status: number, body: unknown, base: string): StrongroomImportError {
  const e = (body as { error?: Record<string, unknown> } | undefined)?.error;
  return new StrongroomImportError(
    status,
    (e?.code as string | undefined) ?? 'http_error',
    (e?.message as string | undefined) ?? `HTTP ${status} from ${base}`,
    e?.request_id as string | undefined,
    e?.details as { problems?: ImportProblem[]; problem_count?: number } | undefined,
  );
}

/**
 * Imports secrets into an environment in one all-or-nothing transaction,
 * streaming progress to `onProgress`. Aborting `signal` before the result
 * arrives cancels the import on the server: nothing is written.
 */
export async function importSecrets(
  opts: ClientOptions,
  project: string,
  env: string,
  req: ImportRequest,
  options: { onProgress?: (p: ImportProgress) => void; signal?: AbortSignal } = {},
): Promise<ImportResult> {
  const base = firstAddr(opts.addr);
  const headers: Record<string, string> = { accept: NDJSON, 'content-type': 'application/json' };
  const token = tokenOf(opts.token);
  if (token) headers.authorization = `Bearer ${token}`;
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 15 * 60_000);
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(`${base}/v1/secrets/${seg(project)}/${seg(env)}/import`, {
      method: 'POST',
      headers,
      body: JSON.stringify(req),
      signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
      redirect: 'error',
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw unreachable(base, err);
  }
  if (!(res.headers.get('content-type') ?? '').startsWith(NDJSON)) {
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {}
    if (res.ok) return json as ImportResult;
    throw errorFrom(res.status, json, base);
  }
  // one JSON object per line: progress, then the result or the error
  const decoder = new TextDecoder();
  let buffered = '';
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buffered += decoder.decode(value, { stream: true });
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
      if (line === '') continue;
      const msg = JSON.parse(line) as ImportStreamLine;
      if ('result' in msg) return msg.result satisfies ImportResult;
      if ('error' in msg) throw errorFrom(res.status >= 400 ? res.status : 422, msg, base);
      options.onProgress?.(msg);
    }
    if (done) break;
  }
  throw new StrongroomApiError(
    0,
    'incomplete',
    'the import stream ended before its result, so whether it committed is unknown: list the environment, or run the import again with on_conflict skip (entries already written show as unchanged)',
  );
}

/** An environment's secrets: names and fields, and with `values` their current values (needs `secret.export`). */
export async function exportSecrets(
  opts: ClientOptions,
  project: string,
  env: string,
  options: { values?: boolean } = {},
): Promise<ExportResult> {
  const base = firstAddr(opts.addr);
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = tokenOf(opts.token);
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(
      `${base}/v1/secrets/${seg(project)}/${seg(env)}/export${options.values ? '?values=true' : ''}`,
      { headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 5 * 60_000), redirect: 'error' },
    );
  } catch (err) {
    throw unreachable(base, err);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {}
  if (res.ok) return json as ExportResult;
  throw errorFrom(res.status, json, base);
}
