import type { WatchMessage } from '../api/watch.ts';
import { StrongroomApiError, type TokenSource, tokenOf } from './client.ts';

/**
 * Follows `GET /v1/secrets/{project}/{env}/watch` (server-sent events) and
 * yields its messages: `ready` first (current versions), then `change`
 * events (never values: re-read the secret), and `close` if the server ends
 * the stream (e.g. the token expired). Ends when the stream ends or `signal`
 * aborts; an HTTP error (401, 403, 404) is thrown before anything is yielded.
 *
 * @example
 * for await (const m of watchSecrets({ addr, token, project: 'demo', env: 'prod' })) {
 *   if (m.event === 'change') key = (await sr.getSecret(m.data.project, m.data.env, m.data.name)).value;
 * }
 */
export interface WatchSecretsOptions {
  addr: string;
  token?: TokenSource | undefined;
  project: string;
  env: string;
  /** Only this secret's events. */
  name?: string;
  /** Replay changes since this time (ISO, or the `id` of the last event received). */
  since?: string;
  /** Seconds between server heartbeats (1–60). */
  heartbeat?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** Parses a text/event-stream into (event, id, data) records (WHATWG HTML §9.2.6). */
export async function* parseEventStream(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; id: string | undefined; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl = buffer.search(/\r\n|\r|\n/);
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length) yield { event: event || 'message', id, data: data.join('\n') };
          event = '';
          data = [];
        } else if (!line.startsWith(':')) {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') event = v;
          else if (field === 'data') data.push(v);
          else if (field === 'id') id = v;
        }
        nl = buffer.search(/\r\n|\r|\n/);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

export async function* watchSecrets(opts: WatchSecretsOptions): AsyncGenerator<WatchMessage> {
  const base = opts.addr.replace(/\/+$/, '');
  const q = new URLSearchParams();
  if (opts.name !== undefined) q.set('name', opts.name);
  if (opts.since !== undefined) q.set('since', opts.since);
  if (opts.heartbeat !== undefined) q.set('heartbeat', String(opts.heartbeat));
  const url = `${base}/v1/secrets/${encodeURIComponent(opts.project)}/${encodeURIComponent(opts.env)}/watch${q.size ? `?${q}` : ''}`;
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  const token = tokenOf(opts.token);
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      headers,
      redirect: 'error',
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if (opts.signal?.aborted) return;
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new StrongroomApiError(0, 'unreachable', `cannot reach Strongroom at ${base} (${cause})`);
  }
  if (!res.ok || !res.body) {
    const text = await res.text().catch(() => '');
    let e: { code?: string; message?: string; request_id?: string } | undefined;
    try {
      e = (JSON.parse(text) as { error?: typeof e }).error;
    } catch {}
    throw new StrongroomApiError(
      res.status,
      e?.code ?? 'http_error',
      e?.message ?? `HTTP ${res.status} from ${base}`,
      e?.request_id,
    );
  }
  try {
    for await (const m of parseEventStream(res.body)) {
      if (m.event !== 'ready' && m.event !== 'change' && m.event !== 'close') continue;
      const data = JSON.parse(m.data) as never;
      yield m.event === 'change'
        ? { event: 'change', id: m.id ?? '', data }
        : ({ event: m.event, data } as WatchMessage);
      if (m.event === 'close') return;
    }
  } catch (err) {
    if (opts.signal?.aborted) return;
    throw err;
  }
}
