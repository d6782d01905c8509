// The baseline for bench/gateway.ts: a bare reverse proxy in its own process, node:http in front of
// an undici Pool to BENCH_UPSTREAM, that puts BENCH_UPSTREAM_KEY in the authorization header and
// passes the answer through; nothing else (no authentication, audit, filters or signing). It is
// what "the gateway's own cost" is measured against (issue 15). It prints {"port": N} on stdout
// once listening, and exits on SIGTERM or when its parent goes away.
import { createServer } from 'node:http';
import { Pool } from 'undici';

const upstream = process.env.BENCH_UPSTREAM ?? '';
const key = process.env.BENCH_UPSTREAM_KEY ?? '';
const pool = new Pool(upstream, { connections: 64 });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    pool
      .request({
        method: req.method === 'POST' ? 'POST' : 'GET',
        path: req.url ?? '/',
        headers: {
          'content-type': req.headers['content-type'] ?? 'application/json',
          accept: req.headers.accept ?? 'application/json',
          authorization: `Bearer ${key}`,
        },
        body: chunks.length ? Buffer.concat(chunks) : null,
      })
      .then(async (up) => {
        const ct = up.headers['content-type'];
        res.writeHead(up.statusCode, typeof ct === 'string' ? { 'content-type': ct } : {});
        for await (const c of up.body) res.write(c);
        res.end();
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('disconnect', () => process.exit(0));
