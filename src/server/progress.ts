import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { RequestInfo } from '../contract/operation.ts';
import type { Core } from '../core/core.ts';
import { StrongroomError } from '../errors/errors.ts';
import { HTTP_STATUS } from './errors.ts';

/**
 * Progress streaming for long operations (bulk import). The operation runs
 * inside the core pipeline as usual — authenticated, authorized and audited,
 * its response audited with its real outcome — and reports progress through
 * RequestInfo.progress; the client going away aborts RequestInfo.signal.
 *
 * When the client asked for the stream (`when(req)`), the reply starts at the
 * first progress event, which an operation emits only once it runs (so a
 * refused request is still a plain 401/403/4xx), and each event becomes one
 * chunk of `contentType`; the result or the error is the last chunk.
 * Otherwise the reply is the usual JSON, and the signal still stops the work
 * when the client disconnects.
 */
export interface ProgressStreamDef {
  /** Whether the client asked for a stream (e.g. its Accept header). */
  when(req: FastifyReply['request']): boolean;
  contentType: string;
  /** One chunk: a progress event, the result, or the error body (`{error: {...}}`). */
  encode(kind: 'progress' | 'result' | 'error', data: unknown): string;
}

/** The body the error handler would answer with (5xx messages never echo internals). */
function errorBody(err: unknown, requestId: string): { status: number; body: unknown } {
  if (err instanceof StrongroomError) {
    const status = HTTP_STATUS[err.code];
    const details = (err.details as { public?: unknown } | undefined)?.public;
    const message =
      status >= 500 && err.code !== 'sealed' && err.code !== 'audit_unavailable'
        ? 'an internal error occurred; the server log has details under this request id'
        : err.message;
    return {
      status,
      body: {
        error: { code: err.code, message, request_id: requestId, ...(details ? { details } : {}) },
      },
    };
  }
  return {
    status: 500,
    body: {
      error: {
        code: 'internal',
        message: 'an internal error occurred; the server log has details under this request id',
        request_id: requestId,
      },
    },
  };
}

export async function invokeWithProgress(
  core: Core,
  operation: string,
  input: unknown,
  info: RequestInfo,
  def: ProgressStreamDef,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const aborter = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) aborter.abort();
  };
  res.on('close', onClose);
  const streaming = def.when(reply.request);
  let out: PassThrough | undefined;
  const write = (chunk: string) => {
    if (out && !out.destroyed && !out.writableEnded) out.write(chunk);
  };
  const start = () => {
    if (out) return;
    out = new PassThrough();
    reply.code(200).header('content-type', def.contentType).header('x-accel-buffering', 'no');
    reply.send(out);
  };
  try {
    const result = await core.invoke(operation, input, {
      ...info,
      signal: aborter.signal,
      ...(streaming
        ? {
            progress: (e: Readonly<Record<string, unknown>>) => {
              start();
              write(def.encode('progress', e));
            },
          }
        : {}),
    });
    if (!streaming) return reply.code(200).send(result);
    start();
    write(def.encode('result', result));
    out!.end();
    return reply;
  } catch (err) {
    // before the stream started, the error handler answers with the right status
    if (!out) throw err;
    const { status, body } = errorBody(err, reply.request.id);
    if (status >= 500) reply.log.error({ err: { type: (err as Error).name } }, 'streamed request failed');
    write(def.encode('error', body));
    out.end();
    return reply;
  } finally {
    res.off('close', onClose);
  }
}
