import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the provider fakes share: a real HTTP server on 127.0.0.1:0 that
 * records every request and whose failures can be switched on.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/** 'outage': 503 (with a body that echoes the credential, as careless upstreams do); 'reset': the connection is dropped; 'unauthorized': 401 for every admin call; 'slow': answers after `slowMs`. */
export type FakeFailure = 'none' | 'outage' | 'reset' | 'unauthorized' | 'slow';

export interface FakeServerControls {
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[];
  failure: FakeFailure;
  slowMs: number;
  close(): Promise<void>;
}

export type FakeHandler = (
  req: { method: string; path: string; query: URLSearchParams; bearer: string | undefined; body: unknown },
  res: { json(status: number, body: unknown): void },
) => void;

export async function startFakeServer(
  handle: FakeHandler,
  failFor: (path: string) => boolean,
): Promise<FakeServerControls & { port: number }> {
  const controls = {
    requests: [] as RecordedRequest[],
    failure: 'none' as FakeFailure,
    slowMs: 2000,
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      const path = (req.url ?? '/').split('?')[0]!;
      const authorization = req.headers.authorization;
      controls.requests.push({ method: req.method ?? 'GET', path, authorization, body });
      const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
      const json = (status: number, b: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(b));
      };
      const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
      const run = () => handle({ method: req.method ?? 'GET', path, query, bearer, body }, { json });
      if (failFor(path)) {
        if (controls.failure === 'reset') {
          req.socket.destroy();
          return;
        }
        if (controls.failure === 'outage') {
          json(503, {
            error: {
              message: `Service unavailable; request was authorized with ${authorization ?? 'nothing'}`,
              type: 'server_error',
            },
          });
          return;
        }
        if (controls.failure === 'unauthorized') {
          json(401, {
            error: { message: `Incorrect API key provided: ${bearer ?? ''}`, code: 'invalid_api_key' },
          });
          return;
        }
        if (controls.failure === 'slow') {
          setTimeout(run, controls.slowMs).unref();
          return;
        }
      }
      run();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(controls, {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
