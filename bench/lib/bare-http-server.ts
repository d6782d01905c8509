// The baseline for bench/secret-read.ts: a bare node:http server in its own
// process that answers every GET with a small JSON body shaped like a secret
// read response (serialised per request, as a real handler would). It prints
// {"port": N} on stdout once listening, and exits on SIGTERM or when its
// parent goes away.
import { createServer } from 'node:http';

const template = JSON.parse(process.env.BENCH_BODY ?? '{}') as Record<string, unknown>;
const server = createServer((req, res) => {
  if (req.method !== 'GET') {
    res.writeHead(405).end();
    return;
  }
  const body = JSON.stringify({ ...template, name: req.url!.slice(req.url!.lastIndexOf('/') + 1) });
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('disconnect', () => process.exit(0));
