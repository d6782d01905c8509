import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { createTestCa, type TestSvid } from '../../test/fixtures/mtls-ca.ts';
import { GOOD_LEAF, type OpensslCa, opensslCa } from '../../test/fixtures/openssl-svid.ts';
import { createMtlsServer, type MtlsRefusal } from './mtls.ts';
import { staticSvidSource } from './svid-source.ts';

/**
 * createMtlsServer against client leaves built by openssl
 * (test/fixtures/openssl-svid.ts) over real TLS handshakes: a leaf that breaks
 * an X.509-SVID rule is refused with 401; the client is told only that its
 * certificate was refused, the server's onRefused (its log) which rule.
 */
const ID = 'spiffe://partner.test/ns/billing/sa/api';
let dir: string;
let partner: OpensslCa;
let serverSvid: TestSvid;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strongroom-mtls-rules-'));
  partner = opensslCa(dir, 'partner.test');
  const ca = await createTestCa('example.org');
  serverSvid = await ca.issue('spiffe://example.org/ns/prod/sa/api');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
});

async function call(leaf: { cert: string; key: string }) {
  const refusals: MtlsRefusal[] = [];
  const server = createMtlsServer(
    {
      // the server trusts its own trust domain and partner.test
      source: staticSvidSource({ ...serverSvid, bundles: serverSvid.bundles + partner.certPem }),
      authorize: (peer) => peer.spiffeId === ID,
      onRefused: (r) => refusals.push(r),
    },
    (_req, res) => res.end('served'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get(
          `https://127.0.0.1:${port}/`,
          { agent: false, rejectUnauthorized: false, cert: leaf.cert, key: leaf.key },
          (r) => {
            let body = '';
            r.on('data', (d) => (body += d));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          },
        )
        .on('error', reject);
    });
    return { ...res, refusals };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const without = (prefix: string, ...add: string[]) => [
  ...GOOD_LEAF.filter((l) => !l.startsWith(prefix)),
  ...add,
];

test('the openssl-built leaves are well formed: a good one gets through', async () => {
  assert.equal((await call(partner.issue(ID, { ext: GOOD_LEAF }))).status, 200);
  const emptySubject = partner.issue(ID, {
    subject: '/',
    ext: without('subjectAltName', 'subjectAltName = critical, URI:$ID'),
  });
  assert.equal((await call(emptySubject)).status, 200);
});

for (const c of [
  {
    name: 'a leaf whose keyUsage is not critical',
    ext: without('keyUsage', 'keyUsage = digitalSignature'),
    log: /keyUsage extension is not marked critical/,
  },
  {
    name: 'a leaf with an empty subject whose subjectAltName is not critical',
    subject: '/',
    ext: GOOD_LEAF,
    log: /empty subject and a subjectAltName extension not marked critical/,
  },
  {
    name: 'a leaf that is a CA',
    ext: without('basicConstraints', 'basicConstraints = critical, CA:TRUE'),
    log: /the leaf is a CA certificate/,
  },
  { name: 'a leaf without keyUsage', ext: without('keyUsage'), log: /no keyUsage extension/ },
  {
    name: 'a leaf whose keyUsage lacks digitalSignature',
    ext: without('keyUsage', 'keyUsage = critical, keyEncipherment'),
    log: /lacks digitalSignature/,
  },
]) {
  test(`${c.name} is refused: the reason goes to the server log, the client learns only that it was refused`, async () => {
    const r = await call(partner.issue(ID, { ext: c.ext, ...(c.subject ? { subject: c.subject } : {}) }));
    assert.equal(r.status, 401, r.body);
    const { error } = JSON.parse(r.body) as { error: { code: string; message: string } };
    assert.equal(error.code, 'unauthenticated');
    assert.equal(
      error.message,
      'a valid X.509-SVID of a trusted trust domain is required: the client certificate was refused',
    );
    assert.equal(r.refusals.length, 1);
    assert.equal(r.refusals[0]!.reason, 'invalid_svid');
    assert.match(r.refusals[0]!.message, c.log);
  });
}
