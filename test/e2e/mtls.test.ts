import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createSvidManager } from '../../src/agent/svid.ts';
import { startWorkloadApi } from '../../src/agent/workload-api.ts';
import { createStubSvidSource } from '../fakes/svid-issuer.ts';
import { createTestCa, type TestCa } from '../fixtures/mtls-ca.ts';

/**
 * Two processes talking mTLS (src/spiffe/mtls.ts), each reading its SVID from
 * files (fileSvidSource) that this process, standing in for the sidecar
 * agent, rewrites atomically while they talk.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const PEER = join(ROOT, 'test/fixtures/mtls-peer.ts');
const SERVER_ID = 'spiffe://example.org/ns/prod/sa/api';
const CLIENT_ID = 'spiffe://example.org/ns/prod/sa/web';

function start(t: TestContext, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(NODE, [PEER, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => out };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Report {
  ok: number;
  failed: number;
  failures: string[];
  clientSerials: string[];
  serverSerials: string[];
}

function report(output: string): Report {
  return JSON.parse(output.trim().split('\n').at(-1)!) as Report;
}

/** Writes the agent's three files, each atomically (temp file + rename). */
async function writeSvid(ca: TestCa, dir: string, id: string, ttlSeconds: number): Promise<void> {
  const svid = await ca.issue(id, { ttlSeconds });
  for (const [name, text] of [
    ['svid.pem', svid.chain],
    ['svid_key.pem', svid.privateKey],
    ['bundle.pem', svid.bundles],
  ] as const) {
    writeFileSync(join(dir, `.${name}.tmp`), text, { mode: 0o600 });
    renameSync(join(dir, `.${name}.tmp`), join(dir, name));
  }
}

test('two processes keep talking mTLS while a third rewrites their SVID files', {
  timeout: 60_000,
}, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'strongroom-mtls-e2e-'));
  const serverDir = join(root, 'server');
  const clientDir = join(root, 'client');
  mkdirSync(serverDir);
  mkdirSync(clientDir);
  const ca = await createTestCa('example.org');
  // SVIDs of 3 s, renewed every 1.5 s: a peer that missed a rotation would fail within seconds
  await writeSvid(ca, serverDir, SERVER_ID, 3);
  await writeSvid(ca, clientDir, CLIENT_ID, 3);
  let rotations = 0;
  // one rotation at a time; the cleanup waits for the one in flight before the folder goes away
  let inflight: Promise<void> = Promise.resolve();
  const rotator = setInterval(() => {
    inflight = inflight.then(async () => {
      await writeSvid(ca, serverDir, SERVER_ID, 3);
      await writeSvid(ca, clientDir, CLIENT_ID, 3);
      rotations++;
    });
  }, 1500);
  t.after(async () => {
    clearInterval(rotator);
    await inflight.catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  const server = start(t, ['server', serverDir, CLIENT_ID]);
  const port = await until('the server to listen', () => /LISTENING (\d+)/.exec(server.output())?.[1]);
  const client = start(t, ['client', clientDir, `https://127.0.0.1:${port}/`, SERVER_ID, '8000']);
  const [code] = await once(client.child, 'exit');
  // the rotator keeps running until the end: the server's 3 s SVIDs must stay fresh for the stranger check
  const rotationsDuringRun = rotations;
  assert.equal(code, 0, client.output());
  const r = report(client.output());
  t.diagnostic(
    `${r.ok} requests, ${rotationsDuringRun} rotations, ${r.clientSerials.length} client and ${r.serverSerials.length} server SVIDs seen`,
  );
  assert.deepEqual(r.failures, []);
  assert.equal(r.failed, 0);
  assert.ok(r.ok > 50, `only ${r.ok} requests`);
  assert.ok(r.clientSerials.length >= 3, `the server saw ${r.clientSerials.length} client SVIDs`);
  assert.ok(r.serverSerials.length >= 3, `the client saw ${r.serverSerials.length} server SVIDs`);

  // a client whose files hold an ID the server does not accept is refused
  const strangerDir = join(root, 'stranger');
  mkdirSync(strangerDir);
  await writeSvid(ca, strangerDir, 'spiffe://example.org/ns/prod/sa/stranger', 60);
  const stranger = start(t, ['client', strangerDir, `https://127.0.0.1:${port}/`, SERVER_ID, '300']);
  await once(stranger.child, 'exit');
  const refused = JSON.parse(stranger.output().trim().split('\n').at(-1)!) as {
    ok: number;
    failures: string[];
  };
  clearInterval(rotator);
  assert.equal(refused.ok, 0);
  assert.match(refused.failures[0]!, /^403 .*permission_denied/);
});

test("two processes keep talking mTLS with SVIDs from the agent's Workload API, renewed at half-life", {
  timeout: 60_000,
}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strongroom-mtls-wl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const td = 'strongroom.test';
  const serverId = `spiffe://${td}/ns/prod/sa/api`;
  const clientId = `spiffe://${td}/ns/prod/sa/web`;
  const issuer = await createStubSvidSource({ trustDomain: td, allowed: [serverId, clientId] });
  // one agent per workload, each with its own Workload API socket; SVIDs of 3 s, renewed every 1.5 s
  const sockets: string[] = [];
  for (const id of [serverId, clientId]) {
    const manager = createSvidManager({
      spiffeId: id,
      source: issuer,
      ttlSeconds: 3,
      retryMinMs: 20,
      retryMaxMs: 100,
    });
    await manager.ready;
    const socket = join(dir, `${sockets.length}.sock`);
    const api = await startWorkloadApi({ socket, mode: 0o600, identity: manager });
    t.after(async () => {
      manager.stop();
      await api.close();
    });
    sockets.push(socket);
  }
  const server = start(t, ['server', dir, clientId, `workload:${sockets[0]}`]);
  const port = await until('the server to listen', () => /LISTENING (\d+)/.exec(server.output())?.[1]);
  const client = start(t, [
    'client',
    dir,
    `https://127.0.0.1:${port}/`,
    serverId,
    '8000',
    `workload:${sockets[1]}`,
  ]);
  const [code] = await once(client.child, 'exit');
  assert.equal(code, 0, client.output());
  const r = report(client.output());
  t.diagnostic(
    `${r.ok} requests, ${r.clientSerials.length} client and ${r.serverSerials.length} server SVIDs seen`,
  );
  assert.deepEqual(r.failures, []);
  assert.ok(r.ok > 50, `only ${r.ok} requests`);
  assert.ok(r.clientSerials.length >= 3, `the server saw ${r.clientSerials.length} client SVIDs`);
  assert.ok(r.serverSerials.length >= 3, `the client saw ${r.serverSerials.length} server SVIDs`);
});
