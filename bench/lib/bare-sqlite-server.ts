// The baseline for bench/secret-write.ts: a bare node:http server in its own process that stores
// each PUT's value durably in node:sqlite (WAL, synchronous=FULL, as Strongroom's SQLite storage)
// before answering. BENCH_COMMIT=each: one commit per request (the ceiling issue 15 compares
// against); BENCH_COMMIT=turn: the requests that arrive in one event-loop turn share one commit.
// BENCH_DB is the database file. It prints {"port": N} on stdout once listening, and exits on
// SIGTERM or when its parent goes away.
import { createServer, type ServerResponse } from 'node:http';
import { DatabaseSync } from 'node:sqlite';

const db = new DatabaseSync(process.env.BENCH_DB ?? ':memory:');
db.exec('PRAGMA journal_mode=WAL');
db.exec('PRAGMA synchronous=FULL');
db.exec(
  'CREATE TABLE IF NOT EXISTS kv (path TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (path, version))',
);
const nextVersion = db.prepare('SELECT COALESCE(MAX(version), 0) + 1 AS v FROM kv WHERE path = ?');
const insert = db.prepare('INSERT INTO kv (path, version, value, created_at) VALUES (?, ?, ?, ?)');
const perTurn = process.env.BENCH_COMMIT === 'turn';

interface Job {
  name: string;
  path: string;
  value: string;
  res: ServerResponse;
}

function store(j: Job): string {
  const version = Number((nextVersion.get(j.path) as { v: number }).v);
  const created_at = new Date().toISOString();
  insert.run(j.path, version, j.value, created_at);
  return JSON.stringify({ name: j.name, version, created_at });
}

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

let queue: Job[] = [];
function commitTurn(): void {
  const jobs = queue;
  queue = [];
  db.exec('BEGIN IMMEDIATE');
  const bodies = jobs.map(store);
  db.exec('COMMIT');
  for (const [i, j] of jobs.entries()) answer(j.res, 200, bodies[i]!);
}

const server = createServer((req, res) => {
  if (req.method !== 'PUT') {
    answer(res, 405, '{}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let value: unknown;
    try {
      value = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { value?: unknown }).value;
    } catch {}
    if (typeof value !== 'string') {
      answer(res, 400, '{"error":"value"}');
      return;
    }
    const path = req.url!;
    const job = { name: path.slice(path.lastIndexOf('/') + 1), path, value, res };
    if (perTurn) {
      if (queue.length === 0) setImmediate(commitTurn);
      queue.push(job);
      return;
    }
    db.exec('BEGIN IMMEDIATE');
    const body = store(job);
    db.exec('COMMIT');
    answer(res, 200, body);
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
process.on('disconnect', () => process.exit(0));
