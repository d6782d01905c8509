import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { loadServerConfig } from '../../src/config/config.ts';
import { type RunningServer, startServer } from '../../src/roles/server.ts';
import { createLogger } from '../../src/server/logger.ts';
import { startAnthropicFake } from '../fakes/anthropic-upstream.ts';
import { type RecordedRequest, startOpenAiFake, type UpstreamFake } from '../fakes/openai-upstream.ts';
import { tempDir } from './app.ts';

/**
 * A whole gateway set-up for end-to-end tests: the fake OpenAI and Anthropic
 * upstreams, an "evil" HTTP server that no request may ever reach, and an
 * in-process `startServer` (dev mode in a temp folder, SQLite, a JSON-lines
 * audit file, the log captured) whose `gateway:` section routes to the fakes,
 * with the provider keys stored in the vault.
 */

export interface EvilServer {
  url: string;
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  close(): Promise<void>;
}

/** A server that records whatever reaches it (it must record nothing). */
export async function startEvilServer(): Promise<EvilServer> {
  const requests: EvilServer['requests'] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ stolen: true }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** What a client received: every response's status, headers and body text. */
export interface Seen {
  status: number;
  url: string;
  headers: string;
  body: string;
}

/**
 * A `fetch` for the official clients that records every response it hands
 * them (headers and the whole body, streams included), so a test can show
 * what the client saw.
 */
export function recordingFetch(seen: Seen[]): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const entry: Seen = {
      status: res.status,
      url: String(input instanceof Request ? input.url : input),
      headers: JSON.stringify([...res.headers.entries()]),
      body: '',
    };
    seen.push(entry);
    if (!res.body) return res;
    // tee the body: the client reads one branch, we keep the other
    const [a, b] = res.body.tee();
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of b) entry.body += dec.decode(chunk, { stream: true });
    })().catch(() => {});
    return new Response(a, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

export interface GatewaySetup {
  server: RunningServer;
  /** The gateway's base URL (no /v1). */
  gw: string;
  /** The vault API's base URL. */
  api: string;
  root: string;
  openaiFake: UpstreamFake;
  anthropicFake: UpstreamFake;
  evil: EvilServer;
  dir: string;
  auditFile: string;
  /** The second key of the OpenAI pool (when `pool`), which the fake does not accept. */
  poolKey?: string;
  /** Everything the server logged. */
  logs(): string;
  /** The audit file's entries. */
  audit(): Record<string, unknown>[];
  /** A call to the vault API with the root token (or `token`). */
  vault<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; json: T }>;
  /** A token with the `app` role (its `scope`, `ttl`), from `POST /v1/auth/token/create`. */
  appToken(opts?: { ttl?: string; scope?: Record<string, unknown> }): Promise<string>;
  openai(apiKey: string, seen?: Seen[], extra?: Partial<ConstructorParameters<typeof OpenAI>[0]>): OpenAI;
  anthropic(apiKey: string, seen?: Seen[]): Anthropic;
  /** Every key held by the vault for the gateway (the fakes' keys and the pool key). */
  secrets(): string[];
  /** Every request either fake received. */
  upstreamRequests(): RecordedRequest[];
}

export interface GatewaySetupOptions {
  /** The OpenAI route's pool: [a key the fake refuses, the fake's key]. */
  pool?: boolean;
  /** Route OpenAI calls to this base URL instead of the OpenAI fake (which still holds the key). */
  openaiBaseUrl?: string;
  /** Route Anthropic calls to this base URL instead of the Anthropic fake. */
  anthropicBaseUrl?: string;
  /** Extra YAML lines under `gateway:` (indented by two spaces). */
  gatewayYaml?: string[];
  /** The price table instead of the default one (`gpt-*`, `text-embedding-*`, `claude-*`). */
  prices?: Record<string, { input: number; output: number }>;
}

export const OPENAI_MODELS = ['gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small'];
export const ANTHROPIC_MODELS = ['claude-sonnet-5-5', 'claude-haiku-5-5'];

export async function startGatewaySetup(
  t: TestContext,
  opts: GatewaySetupOptions = {},
): Promise<GatewaySetup> {
  const dir = tempDir(t, 'strongroom-gateway-');
  const openaiFake = await startOpenAiFake();
  const anthropicFake = await startAnthropicFake();
  const evil = await startEvilServer();
  t.after(() => Promise.all([openaiFake.close(), anthropicFake.close(), evil.close()]));
  const auditFile = join(dir, 'audit.log');
  const poolKey = opts.pool ? `sk-proj-pool${'x'.repeat(40)}second` : undefined;
  const openaiKeys = opts.pool
    ? '[llm/dev/OPENAI_POOL_A, llm/dev/OPENAI_API_KEY]'
    : '[llm/dev/OPENAI_API_KEY]';
  const yaml = [
    'listen: 127.0.0.1:0',
    'log_level: debug',
    `audit: [{file: {path: ${JSON.stringify(auditFile)}}}]`,
    'gateway:',
    '  listen: 127.0.0.1:0',
    '  routes:',
    '    - provider: openai',
    `      models: ${JSON.stringify([...OPENAI_MODELS, 'gpt-*'])}`,
    `      base_url: ${opts.openaiBaseUrl ?? openaiFake.url}`,
    `      keys: ${openaiKeys}`,
    '    - provider: anthropic',
    `      models: ${JSON.stringify([...ANTHROPIC_MODELS, 'claude-*'])}`,
    `      base_url: ${opts.anthropicBaseUrl ?? anthropicFake.url}`,
    '      keys: [llm/dev/ANTHROPIC_API_KEY]',
    '  prices:',
    ...(opts.prices
      ? Object.entries(opts.prices).map(([m, p]) => `    ${JSON.stringify(m)}: ${JSON.stringify(p)}`)
      : [
          '    "gpt-*": { input: 2.5, output: 10 }',
          '    "text-embedding-*": { input: 0.02, output: 0 }',
          '    "claude-*": { input: 3, output: 15 }',
        ]),
    ...(opts.gatewayYaml ?? []).map((l) => `  ${l}`),
    '',
  ].join('\n');
  const file = join(dir, 'strongroom.yaml');
  writeFileSync(file, yaml);
  const config = loadServerConfig({ config: file, dev: true, data: join(dir, 'data') }, {}, dir);
  let logText = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  const server = await startServer(config, { logger: createLogger('debug', sink) });
  t.after(() => server.close());
  const root = server.devRootToken!;
  const api = server.address;
  const gw = server.gateway!.address;

  const vault = async <T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; json: T }> => {
    const res = await fetch(api + path, {
      method,
      headers: {
        authorization: `Bearer ${token ?? root}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, json: json as T };
  };
  const must = async (method: string, path: string, body?: unknown) => {
    const r = await vault(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json;
  };
  await must('POST', '/v1/projects', { name: 'llm' });
  await must('PUT', '/v1/secrets/llm/dev/OPENAI_API_KEY', { value: openaiFake.key });
  await must('PUT', '/v1/secrets/llm/dev/ANTHROPIC_API_KEY', { value: anthropicFake.key });
  if (poolKey) await must('PUT', '/v1/secrets/llm/dev/OPENAI_POOL_A', { value: poolKey });

  return {
    server,
    gw,
    api,
    root,
    openaiFake,
    anthropicFake,
    evil,
    dir,
    auditFile,
    ...(poolKey ? { poolKey } : {}),
    logs: () => logText,
    audit: () =>
      existsSync(auditFile)
        ? readFileSync(auditFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [],
    vault,
    async appToken(o = {}) {
      const r = await must('POST', '/v1/auth/token/create', {
        roles: ['app'],
        ttl: o.ttl ?? '1h',
        display_name: 'gateway-test-app',
        scope: o.scope ?? { providers: ['openai', 'anthropic'] },
      });
      return (r as { auth: { client_token: string } }).auth?.client_token ?? (r as { token: string }).token;
    },
    openai: (apiKey, seen, extra = {}) =>
      new OpenAI({
        baseURL: `${gw}/v1`,
        apiKey,
        maxRetries: 0,
        ...(seen ? { fetch: recordingFetch(seen) } : {}),
        ...extra,
      }),
    anthropic: (apiKey, seen) =>
      new Anthropic({
        baseURL: gw,
        apiKey,
        maxRetries: 0,
        ...(seen ? { fetch: recordingFetch(seen) } : {}),
      }),
    secrets: () => [openaiFake.key, anthropicFake.key, ...(poolKey ? [poolKey] : [])],
    upstreamRequests: () => [...openaiFake.requests, ...anthropicFake.requests],
  };
}

/** The forms of a key that must never show: as is, and base64 (standard and url-safe). */
export function keyForms(key: string): string[] {
  const b64 = Buffer.from(key).toString('base64');
  return [key, b64.replace(/=+$/, ''), Buffer.from(key).toString('base64url')];
}
