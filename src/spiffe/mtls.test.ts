import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, type TestContext, test } from 'node:test';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { request } from 'undici';
import { createTestCa, type TestCa, type TestSvid } from '../../test/fixtures/mtls-ca.ts';
import { SpiffeError } from './errors.ts';
import {
  createMtlsServer,
  type MtlsAuthorize,
  type MtlsPeer,
  type MtlsRefusal,
  type MtlsServerOptions,
  mtlsAgent,
  mtlsHttpsAgent,
  peerOf,
} from './mtls.ts';
import {
  fileSvidSource,
  type SvidSource,
  staticSvidSource,
  toSvidMaterial,
  workloadApiSvidSource,
} from './svid-source.ts';

const TD = 'example.org';
const SERVER_ID = 'spiffe://example.org/ns/prod/sa/api';
const CLIENT_ID = 'spiffe://example.org/ns/prod/sa/web';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let ca: TestCa;
let otherCa: TestCa;
let serverSvid: TestSvid;
let clientSvid: TestSvid;

before(async () => {
  ca = await createTestCa(TD);
  otherCa = await createTestCa('other.test');
  serverSvid = await ca.issue(SERVER_ID);
  clientSvid = await ca.issue(CLIENT_ID);
});

interface Served {
  url: string;
  port: number;
  server: https.Server;
  refusals: MtlsRefusal[];
  /** Each new TLS connection the server accepted. */
  connections: tls.TLSSocket[];
  /** The peer serials the handler saw, per request. */
  serials: string[];
}

async function serve(
  t: TestContext,
  opts: Partial<MtlsServerOptions> & { authorize?: MtlsAuthorize } = {},
): Promise<Served> {
  const refusals: MtlsRefusal[] = [];
  const serials: string[] = [];
  const server = createMtlsServer(
    {
      source: opts.source ?? staticSvidSource(serverSvid),
      authorize: opts.authorize ?? ((peer) => peer.spiffeId === CLIENT_ID),
      onRefused: (r) => refusals.push(r),
      ...(opts.now ? { now: opts.now } : {}),
    },
    (req, res) => {
      const peer = peerOf(req)!;
      serials.push(peer.serialNumber);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ spiffeId: peer.spiffeId, serial: peer.serialNumber }));
    },
  );
  const connections: tls.TLSSocket[] = [];
  server.on('secureConnection', (s) => connections.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const c of connections) c.destroy();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { url: `https://127.0.0.1:${port}/`, port, server, refusals, connections, serials };
}

/** A keep-alive node:https agent with one socket and a fixed certificate (or none), verifying nothing. */
function rawAgent(t: TestContext, svid?: TestSvid): https.Agent {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    rejectUnauthorized: false,
    ...(svid ? { cert: svid.chain, key: svid.privateKey } : {}),
  });
  t.after(() => agent.destroy());
  return agent;
}

function get(
  url: string,
  agent: https.Agent,
): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

function client(
  t: TestContext,
  source: SvidSource,
  expect: Parameters<typeof mtlsAgent>[0]['expect'] = SERVER_ID,
) {
  const agent = mtlsAgent({ source, expect });
  t.after(() => agent.destroy());
  return agent;
}

describe('createMtlsServer + mtlsAgent', () => {
  test('a client with a valid SVID gets through, and the handler sees its SPIFFE ID', async (t) => {
    const s = await serve(t);
    const agent = client(t, staticSvidSource(clientSvid));
    const res = await request(s.url, { dispatcher: agent });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(await res.body.json(), { spiffeId: CLIENT_ID, serial: clientSvid.serialNumber });
    // the global fetch takes the same dispatcher
    const f = await fetch(s.url, { dispatcher: agent } as RequestInit);
    assert.equal(f.status, 200);
    assert.equal(((await f.json()) as { spiffeId: string }).spiffeId, CLIENT_ID);
    assert.deepEqual(s.refusals, []);
  });

  test('connections are kept alive and TLS sessions resumed', async (t) => {
    const s = await serve(t);
    const agent = client(t, staticSvidSource(clientSvid));
    for (let i = 0; i < 20; i++) {
      const res = await request(s.url, { dispatcher: agent });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    assert.ok(s.connections.length <= 2, `${s.connections.length} connections for 20 sequential requests`);
    // 10 parallel requests open new connections; those resume the session of an earlier one
    await Promise.all(
      Array.from({ length: 10 }, async () => (await request(s.url, { dispatcher: agent })).body.dump()),
    );
    assert.ok(s.connections.some((c) => c.isSessionReused()));
    // a resumed connection still identifies the client
    assert.deepEqual(new Set(s.serials), new Set([clientSvid.serialNumber]));
  });

  test('a client without a certificate is refused with 401', async (t) => {
    const s = await serve(t);
    const res = await get(s.url, rawAgent(t));
    assert.equal(res.status, 401);
    assert.equal(res.headers.connection, 'close');
    const body = JSON.parse(res.body);
    assert.equal(body.error.code, 'unauthenticated');
    assert.match(body.error.message, /no certificate was presented/);
    assert.equal(s.refusals[0]?.reason, 'invalid_svid');
  });

  test('a client whose SVID another trust domain signed is refused, whatever ID it claims', async (t) => {
    const s = await serve(t, { authorize: () => true });
    const foreign = await otherCa.issue('spiffe://other.test/ns/prod/sa/web');
    // a CA of other.test issuing an ID of example.org: the CA of another trust domain never vouches
    const impostor = await (await createTestCa(TD)).issue(CLIENT_ID);
    for (const svid of [foreign, impostor]) {
      const res = await get(s.url, rawAgent(t, svid));
      assert.equal(res.status, 401);
      assert.equal(JSON.parse(res.body).error.code, 'unauthenticated');
    }
    assert.deepEqual(
      s.refusals.map((r) => r.reason),
      ['untrusted', 'untrusted'],
    );
    assert.deepEqual(s.serials, []);
  });

  test('a federated trust domain in the bundles is trusted, and authorize decides on its IDs', async (t) => {
    const trusting = staticSvidSource({ ...serverSvid, bundles: ca.pem + otherCa.pem });
    const s = await serve(t, { source: trusting, authorize: (p) => p.trustDomain === 'other.test' });
    const foreign = await otherCa.issue('spiffe://other.test/ns/prod/sa/web');
    assert.equal((await get(s.url, rawAgent(t, foreign))).status, 200);
    assert.equal((await get(s.url, rawAgent(t, clientSvid))).status, 403);
  });

  test('an expired client SVID is refused with 401', async (t) => {
    const s = await serve(t);
    const old = await ca.issue(CLIENT_ID, { ttlSeconds: 60, now: Date.now() - 3600_000 });
    const res = await request(s.url, { dispatcher: client(t, staticSvidSource(old)) });
    assert.equal(res.statusCode, 401);
    assert.match(((await res.body.json()) as { error: { message: string } }).error.message, /has expired/);
    assert.equal(s.refusals[0]?.reason, 'expired');
  });

  test('a client whose ID authorize refuses gets 403; a throwing or async authorize is honoured', async (t) => {
    let verdict: () => boolean | Promise<boolean> = () => false;
    const s = await serve(t, { authorize: () => verdict() });
    const agent = client(t, staticSvidSource(clientSvid));
    const statusWith = async (v: () => boolean | Promise<boolean>) => {
      verdict = v;
      const res = await request(s.url, { dispatcher: agent });
      await res.body.dump();
      return res.statusCode;
    };
    assert.equal(await statusWith(() => false), 403);
    assert.equal(
      await statusWith(() => {
        throw new Error('policy engine down');
      }),
      403,
    );
    assert.equal(await statusWith(async () => false), 403);
    assert.equal(await statusWith(() => Promise.reject(new Error('down'))), 403);
    assert.equal(await statusWith(async () => true), 200);
    assert.equal(await statusWith(() => true), 200);
    assert.deepEqual(
      s.refusals.map((r) => [r.status, r.reason, r.spiffeId]),
      Array(4).fill([403, 'not_authorized', CLIENT_ID]),
    );
  });

  test('the client checks the server: an unexpected ID or an untrusted server fails the request', async (t) => {
    const s = await serve(t);
    const source = staticSvidSource(clientSvid);
    await assert.rejects(
      request(s.url, { dispatcher: client(t, source, 'spiffe://example.org/ns/prod/sa/db') }),
      (e) => {
        assert.ok(e instanceof SpiffeError);
        assert.equal(e.code, 'not_allowed');
        assert.match(
          e.message,
          /is "spiffe:\/\/example\.org\/ns\/prod\/sa\/api", not "spiffe:\/\/example\.org\/ns\/prod\/sa\/db"/,
        );
        return true;
      },
    );
    await assert.rejects(
      fetch(s.url, { dispatcher: client(t, source, () => false) } as RequestInit),
      (e: Error) => e.cause instanceof SpiffeError && e.cause.code === 'not_allowed',
    );
    // a list and a predicate that accept it
    for (const expect of [[SERVER_ID, 'spiffe://example.org/x'], (id: string) => id === SERVER_ID]) {
      const res = await request(s.url, { dispatcher: client(t, source, expect) });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
    }
    // a server whose SVID the client's bundles do not vouch for
    const rogue = await serve(t, {
      source: staticSvidSource(await otherCa.issue('spiffe://other.test/ns/prod/sa/api')),
    });
    await assert.rejects(request(rogue.url, { dispatcher: client(t, source, () => true) }), (e) => {
      assert.ok(e instanceof SpiffeError);
      assert.equal(e.code, 'untrusted');
      assert.match(e.message, /^the server at https:\/\/127\.0\.0\.1:\d+ has no valid X\.509-SVID/);
      return true;
    });
    // no request reached the servers that failed the check
    assert.deepEqual(rogue.serials, []);
  });

  test('TLS 1.2 is refused', async (t) => {
    const s = await serve(t);
    const sock = tls.connect({
      host: '127.0.0.1',
      port: s.port,
      maxVersion: 'TLSv1.2',
      rejectUnauthorized: false,
      cert: clientSvid.chain,
      key: clientSvid.privateKey,
    });
    const err = await new Promise<Error>((resolve) => sock.once('error', resolve));
    assert.match(err.message, /protocol version|alert/i);
  });

  test('an identity that expires on an open connection is refused on its next request over that connection', async (t) => {
    let skew = 0;
    const s = await serve(t, { now: () => Date.now() + skew });
    const agent = rawAgent(t, clientSvid);
    assert.equal((await get(s.url, agent)).status, 200);
    skew = clientSvid.notAfter.getTime() - Date.now() + 1000; // one second past its notAfter
    const res = await get(s.url, agent);
    assert.equal(res.status, 401);
    assert.match(JSON.parse(res.body).error.message, /has expired/);
    assert.equal(s.connections.length, 1, 'the refused request came over the first connection');
    assert.equal(res.headers.connection, 'close');
    await sleep(50);
    assert.ok(s.connections[0]!.destroyed, 'the server closed the connection');
  });

  test('an identity revoked while its connection is open is refused on its next request over that connection', async (t) => {
    const revoked = new Set<string>();
    const s = await serve(t, { authorize: (p) => !revoked.has(p.spiffeId) });
    const agent = rawAgent(t, clientSvid);
    assert.equal((await get(s.url, agent)).status, 200);
    assert.equal((await get(s.url, agent)).status, 200);
    revoked.add(CLIENT_ID);
    const res = await get(s.url, agent);
    assert.equal(res.status, 403);
    assert.equal(JSON.parse(res.body).error.code, 'permission_denied');
    assert.equal(s.connections.length, 1);
    await sleep(50);
    assert.ok(s.connections[0]!.destroyed);
  });

  test('a bundle change re-verifies open connections: a trust domain dropped from the bundles is refused', async (t) => {
    const foreign = await otherCa.issue('spiffe://other.test/ns/prod/sa/web');
    const source = staticSvidSource({ ...serverSvid, bundles: ca.pem + otherCa.pem });
    const s = await serve(t, { source, authorize: () => true });
    const agent = rawAgent(t, foreign);
    assert.equal((await get(s.url, agent)).status, 200);
    source.set(serverSvid); // bundles: example.org only
    assert.equal((await get(s.url, agent)).status, 401);
    assert.equal(s.connections.length, 1);
  });

  test('rotating the server SVID keeps open connections; new ones get the new SVID', async (t) => {
    const source = staticSvidSource(serverSvid);
    const s = await serve(t, { source });
    const agent = rawAgent(t, clientSvid);
    assert.equal((await get(s.url, agent)).status, 200);
    const first = s.connections[0]!;
    const next = source.set(await ca.issue(SERVER_ID));
    assert.equal((await get(s.url, agent)).status, 200);
    assert.equal(s.connections.length, 1, 'the open connection was kept');
    assert.equal(
      new X509Certificate((first.getCertificate() as tls.PeerCertificate).raw).serialNumber,
      serverSvid.serialNumber,
    );
    const fresh = tls.connect({
      host: '127.0.0.1',
      port: s.port,
      rejectUnauthorized: false,
      cert: clientSvid.chain,
      key: clientSvid.privateKey,
    });
    await new Promise((r) => fresh.once('secureConnect', r));
    const presented = fresh.getPeerX509Certificate()!.serialNumber;
    fresh.destroy();
    assert.equal(presented, next.serialNumber);
  });

  test('rotation under load: SVIDs of 3 s renewed every 1.5 s, 8 s of keep-alive requests, none fails', {
    timeout: 30_000,
  }, async (t) => {
    const serverSource = staticSvidSource(await ca.issue(SERVER_ID, { ttlSeconds: 3 }));
    const clientSource = staticSvidSource(await ca.issue(CLIENT_ID, { ttlSeconds: 3 }));
    const rotate = setInterval(async () => {
      serverSource.set(await ca.issue(SERVER_ID, { ttlSeconds: 3 }));
      clientSource.set(await ca.issue(CLIENT_ID, { ttlSeconds: 3 }));
    }, 1500);
    t.after(() => clearInterval(rotate));
    const s = await serve(t, { source: serverSource });
    const serverSerials = new Set<string>();
    const agent = mtlsAgent({
      source: clientSource,
      expect: SERVER_ID,
      onConnect: (peer: MtlsPeer) => serverSerials.add(peer.serialNumber),
    });
    t.after(() => agent.destroy());
    let ok = 0;
    const failures: string[] = [];
    const end = Date.now() + 8000;
    const loop = async () => {
      while (Date.now() < end) {
        try {
          const res = await request(s.url, { dispatcher: agent });
          const body = await res.body.text();
          if (res.statusCode === 200) ok++;
          else failures.push(`${res.statusCode} ${body}`);
        } catch (err) {
          failures.push(String((err as Error).message));
        }
      }
    };
    await Promise.all([loop(), loop(), loop()]);
    clearInterval(rotate);
    t.diagnostic(
      `${ok} requests over ${s.connections.length} connections; ${new Set(s.serials).size} client and ${serverSerials.size} server SVIDs seen`,
    );
    assert.deepEqual(failures, []);
    assert.ok(ok > 100, `only ${ok} requests`);
    const clientSerials = new Set(s.serials);
    assert.ok(clientSerials.size >= 4, `the server saw ${clientSerials.size} client SVIDs`);
    assert.ok(serverSerials.size >= 4, `the client saw ${serverSerials.size} server SVIDs`);
    assert.ok(s.connections.length < ok / 5, `${s.connections.length} connections for ${ok} requests`);
  });
});

describe('mtlsHttpsAgent', () => {
  test('node:https requests present the SVID and check the server', async (t) => {
    const s = await serve(t);
    const source = staticSvidSource(clientSvid);
    const agent = mtlsHttpsAgent({ source, expect: SERVER_ID });
    t.after(() => agent.destroy());
    for (let i = 0; i < 3; i++) assert.equal((await get(s.url, agent)).status, 200);
    assert.equal(s.connections.length, 1);
    // a rotation retires the idle socket
    source.set(await ca.issue(CLIENT_ID));
    assert.equal((await get(s.url, agent)).status, 200);
    assert.equal(s.connections.length, 2);
    assert.deepEqual(new Set(s.serials).size, 2);
    const wrong = mtlsHttpsAgent({ source, expect: 'spiffe://example.org/nope' });
    t.after(() => wrong.destroy());
    await assert.rejects(get(s.url, wrong), (e) => e instanceof SpiffeError && e.code === 'not_allowed');
  });
});

describe('SVID sources', () => {
  test('a snapshot refuses a key that is not the SVID’s, without printing either', async () => {
    const other = await ca.issue(CLIENT_ID);
    assert.throws(
      () => toSvidMaterial({ chain: clientSvid.chain, privateKey: other.privateKey, bundles: ca.pem }),
      (e) => {
        assert.ok(e instanceof SpiffeError);
        assert.equal(e.code, 'invalid_key');
        assert.match(
          e.message,
          /does not belong to the SVID of "spiffe:\/\/example\.org\/ns\/prod\/sa\/web"/,
        );
        const keyBody = other.privateKey.split('\n')[1]!;
        assert.ok(!e.message.includes(keyBody) && !e.message.includes('PRIVATE KEY'));
        return true;
      },
    );
    assert.throws(
      () => toSvidMaterial({ chain: clientSvid.chain, privateKey: 'not a key', bundles: ca.pem }),
      (e) => e instanceof SpiffeError && e.code === 'invalid_key' && !e.message.includes('not a key'),
    );
    const m = toSvidMaterial(clientSvid);
    assert.equal(m.spiffeId, CLIENT_ID);
    assert.deepEqual([...m.bundles.keys()], [TD]);
    assert.ok(!JSON.stringify(m).includes('PRIVATE'));
  });

  test('fileSvidSource follows atomic rewrites and waits until cert and key agree', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-mtls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, `.${name}.tmp`), text);
      renameSync(join(dir, `.${name}.tmp`), join(dir, name));
    };
    write('svid.pem', clientSvid.chain);
    write('svid_key.pem', clientSvid.privateKey);
    write('bundle.pem', ca.pem);
    const errors: Error[] = [];
    const source = await fileSvidSource({ dir, pollMs: 20, onError: (e) => errors.push(e) });
    t.after(() => source.close());
    assert.equal(source.current().serialNumber, clientSvid.serialNumber);
    const updates: string[] = [];
    source.onUpdate((svid) => updates.push(svid.serialNumber));
    const next = await ca.issue(CLIENT_ID);
    write('svid.pem', next.chain); // the key is not there yet
    await sleep(150);
    assert.equal(source.current().serialNumber, clientSvid.serialNumber);
    assert.ok(errors.some((e) => /does not belong/.test(e.message)));
    write('svid_key.pem', next.privateKey);
    await sleep(150);
    assert.equal(source.current().serialNumber, next.serialNumber);
    assert.deepEqual(updates, [next.serialNumber]);
    assert.ok(errors.every((e) => !e.message.includes('PRIVATE KEY')));
    await assert.rejects(fileSvidSource({ dir: join(dir, 'missing') }), /does not exist/);
  });

  test('workloadApiSvidSource follows a FetchX509SVID stream and sends the security header', async (t) => {
    const proto = join(import.meta.dirname, '../../proto/spiffe/workload/workload.proto');
    if (!existsSync(proto)) {
      t.skip('proto/spiffe/workload/workload.proto is not vendored');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'strongroom-mtls-wl-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const socket = join(dir, 'agent.sock');
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true, defaults: true }));
    const service = (def.SpiffeWorkloadAPI as grpc.ServiceClientConstructor).service;
    const streams: grpc.ServerWritableStream<unknown, unknown>[] = [];
    const headers: unknown[] = [];
    const message = (svid: TestSvid) => ({
      svids: [
        {
          spiffe_id: CLIENT_ID,
          x509_svid: new X509Certificate(svid.chain).raw,
          x509_svid_key: createPrivateKey(svid.privateKey).export({ format: 'der', type: 'pkcs8' }),
          bundle: ca.certificate.raw,
        },
      ],
      federated_bundles: { 'spiffe://other.test': otherCa.certificate.raw },
    });
    const server = new grpc.Server();
    server.addService(service, {
      FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
        headers.push(call.metadata.get('workload.spiffe.io')[0]);
        streams.push(call);
        call.write(message(clientSvid));
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    t.after(() => server.forceShutdown());
    const source = await workloadApiSvidSource({ socketPath: socket, timeoutMs: 5000 });
    t.after(() => source.close());
    assert.deepEqual(headers, ['true']);
    assert.equal(source.current().serialNumber, clientSvid.serialNumber);
    assert.deepEqual([...source.current().bundles.keys()].sort(), ['example.org', 'other.test']);
    const updated = new Promise<string>((r) => source.onUpdate((s) => r(s.serialNumber)));
    const next = await ca.issue(CLIENT_ID);
    streams[0]!.write(message(next));
    assert.equal(await updated, next.serialNumber);
    // it serves mTLS straight away
    const s = await serve(t);
    const res = await request(s.url, { dispatcher: client(t, source) });
    assert.equal(res.statusCode, 200);
    assert.equal(((await res.body.json()) as { serial: string }).serial, next.serialNumber);
    await assert.rejects(
      workloadApiSvidSource({ socketPath: join(dir, 'nobody.sock'), timeoutMs: 300 }),
      /no X\.509-SVID from the Workload API at .*nobody\.sock within 300 ms/,
    );
  });
});
