// What an mTLS hop (src/spiffe/mtls.ts) costs, against plain HTTP and TLS
// without client certificates, all in this process and in the same run.
//
// Three servers answer every request with "ok": bare node:http, node:https
// (TLS 1.3, no client certificate), and createMtlsServer (TLS 1.3, client
// SVID verified by the SPIFFE rules, authorize() called per request). The
// clients are undici: an Agent for http, an Agent for https (no verification),
// and mtlsAgent (presents its SVID, verifies the server's SVID and ID).
//
// Part 1, warm hops: sequential `undici.request` calls over one kept-alive
// connection; µs/request is the whole round trip (client + server CPU, both in
// this process). Part 2, new connections: each request with `reset: true`, so
// every request opens (and closes) a connection: full handshakes (session
// resumption off) and, for mTLS, resumed ones (TLS 1.3 tickets); printed as
// connections/s. (undici's own session cache resumed 1 connection in 50 here,
// so plain TLS is shown with full handshakes only.)
//
// Each figure is the median of BENCH_RUNS (5) runs of BENCH_N requests (2000;
// 300 for new connections), the variants interleaved in rotating order after a
// warm-up; ratios are medians of per-run ratios (time over time: 1.00x = no
// overhead, higher is slower).
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher, request } from 'undici';
import { createMtlsServer, mtlsAgent } from '../src/spiffe/mtls.ts';
import { staticSvidSource } from '../src/spiffe/svid-source.ts';
import { createTestCa } from '../test/fixtures/mtls-ca.ts';
import { fmt, table, watchdog } from './lib/proc.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const N = Number(process.env.BENCH_N ?? 2000);
const N_CONNECT = Math.max(20, Math.round(N / 7));
watchdog(300_000, 'mtls');

const ca = await createTestCa('bench.test');
const serverSvid = await ca.issue('spiffe://bench.test/ns/prod/sa/api');
const clientSvid = await ca.issue('spiffe://bench.test/ns/prod/sa/web');
const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.setHeader('content-type', 'text/plain');
  res.end('ok');
};

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return String((server.address() as AddressInfo).port);
}

const plain = http.createServer({ keepAliveTimeout: 60_000 }, handler);
const tlsOnly = https.createServer(
  { cert: serverSvid.chain, key: serverSvid.privateKey, minVersion: 'TLSv1.3', keepAliveTimeout: 60_000 },
  handler,
);
const mtls = createMtlsServer(
  {
    source: staticSvidSource(serverSvid),
    authorize: (peer) => peer.spiffeId === 'spiffe://bench.test/ns/prod/sa/web',
    serverOptions: { keepAliveTimeout: 60_000 },
  },
  handler,
);
const urls = {
  http: `http://127.0.0.1:${await listen(plain)}/`,
  tls: `https://127.0.0.1:${await listen(tlsOnly)}/`,
  mtls: `https://127.0.0.1:${await listen(mtls)}/`,
};
const clientSource = staticSvidSource(clientSvid);
const expect = 'spiffe://bench.test/ns/prod/sa/api';

interface Variant {
  name: string;
  url: string;
  dispatcher: Dispatcher;
  reset?: boolean;
}

const warm: Variant[] = [
  { name: 'http (node:http, baseline)', url: urls.http, dispatcher: new Agent({ keepAliveTimeout: 60_000 }) },
  {
    name: 'TLS 1.3, no client cert',
    url: urls.tls,
    dispatcher: new Agent({ keepAliveTimeout: 60_000, connect: { rejectUnauthorized: false } }),
  },
  {
    name: 'mTLS (SPIFFE, per-request authorize)',
    url: urls.mtls,
    dispatcher: mtlsAgent({ source: clientSource, expect, agent: { keepAliveTimeout: 60_000 } }),
  },
];
const fresh: Variant[] = [
  {
    name: 'TCP connect (http, baseline)',
    url: urls.http,
    dispatcher: new Agent(),
    reset: true,
  },
  {
    name: 'TLS 1.3 full handshake',
    url: urls.tls,
    dispatcher: new Agent({ connect: { rejectUnauthorized: false, maxCachedSessions: 0 } }),
    reset: true,
  },
  {
    name: 'mTLS full handshake',
    url: urls.mtls,
    dispatcher: mtlsAgent({ source: clientSource, expect, sessionResumption: false }),
    reset: true,
  },
  {
    name: 'mTLS resumed',
    url: urls.mtls,
    dispatcher: mtlsAgent({ source: clientSource, expect }),
    reset: true,
  },
];

/** µs per request over `n` sequential requests. */
async function timed(v: Variant, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const res = await request(v.url, { dispatcher: v.dispatcher, ...(v.reset ? { reset: true } : {}) });
    if (res.statusCode !== 200) throw new Error(`${v.name}: status ${res.statusCode}`);
    await res.body.dump();
  }
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function measure(variants: Variant[], n: number): Promise<{ us: number[][]; ratios: number[][][] }> {
  for (const v of variants) await timed(v, Math.min(n, 200)); // warm-up (JIT, connections, tickets)
  const us: number[][] = variants.map(() => []);
  // ratios[i][b]: variant i over baseline b, per run
  const ratios: number[][][] = variants.map(() => variants.map(() => []));
  for (let run = 0; run < RUNS; run++) {
    const perRun: number[] = new Array(variants.length);
    for (let k = 0; k < variants.length; k++) {
      const i = (k + run) % variants.length;
      perRun[i] = await timed(variants[i]!, n);
    }
    perRun.forEach((x, i) => {
      us[i]!.push(x);
      perRun.forEach((b, j) => {
        ratios[i]![j]!.push(x / b);
      });
    });
  }
  return { us, ratios };
}

const w = await measure(warm, N);
process.stdout.write(`warm hop (one kept-alive connection, sequential requests, ${RUNS} runs of ${N})\n`);
process.stdout.write(
  `${table(
    ['variant', 'µs/request', 'requests/s', 'vs http', 'vs TLS', 'µs over http'],
    warm.map((v, i) => {
      const us = median(w.us[i]!);
      return [
        v.name,
        fmt(us, 1),
        fmt(1e6 / us),
        `${median(w.ratios[i]![0]!).toFixed(2)}x`,
        `${median(w.ratios[i]![1]!).toFixed(2)}x`,
        i === 0 ? '-' : `+${fmt(us - median(w.us[0]!), 1)}`,
      ];
    }),
  )}\n\n`,
);

const f = await measure(fresh, N_CONNECT);
process.stdout.write(`new connection per request (reset: true; ${RUNS} runs of ${N_CONNECT})\n`);
process.stdout.write(
  `${table(
    ['variant', 'µs/connection+request', 'connections/s', 'vs TCP connect', 'vs TLS full'],
    fresh.map((v, i) => {
      const us = median(f.us[i]!);
      return [
        v.name,
        fmt(us, 1),
        fmt(1e6 / us),
        `${median(f.ratios[i]![0]!).toFixed(2)}x`,
        `${median(f.ratios[i]![1]!).toFixed(2)}x`,
      ];
    }),
  )}\n`,
);

await Promise.all([...warm, ...fresh].map((v) => v.dispatcher.destroy()));
for (const s of [plain, tlsOnly, mtls]) {
  s.closeAllConnections();
  s.close();
}
process.exit(0);
