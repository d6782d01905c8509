import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent } from 'undici';
import { GOOD_LEAF, opensslCa } from '../fixtures/openssl-svid.ts';
import { tempDir } from '../helpers/app.ts';
import { startTlsVault } from '../helpers/tls.ts';

/**
 * The vault's certificate authentication against leaves built by openssl
 * (test/fixtures/openssl-svid.ts), signed by the CA of a trust domain the
 * vault federates with, over real TLS handshakes with a `strongroom server`
 * process. The workload is allowed to read a secret, so a leaf the vault
 * wrongly accepts reads it (200); a refused one gets 401 invalid_svid.
 */
const TD = 'strongroom.test';
const PARTNER = 'partner.test';
const ID = `spiffe://${PARTNER}/ns/billing/sa/api`;
const SECRET = '/v1/secrets/demo/dev/DB_PASSWORD';

const without = (prefix: string, ...add: string[]) => [
  ...GOOD_LEAF.filter((l) => !l.startsWith(prefix)),
  ...add,
];

const CASES: { name: string; subject?: string; ext: string[]; status: number }[] = [
  { name: 'a well-formed leaf', ext: GOOD_LEAF, status: 200 },
  {
    name: 'an empty subject with a critical subjectAltName',
    subject: '/',
    ext: without('subjectAltName', 'subjectAltName = critical, URI:$ID'),
    status: 200,
  },
  // X509-SVID.md §4.3: keyUsage MUST be marked critical
  {
    name: 'keyUsage not marked critical',
    ext: without('keyUsage', 'keyUsage = digitalSignature'),
    status: 401,
  },
  // RFC 5280 §4.2.1.6: an empty subject needs a critical subjectAltName
  { name: 'an empty subject with a non-critical subjectAltName', subject: '/', ext: GOOD_LEAF, status: 401 },
  {
    name: 'a leaf that is a CA (cA true)',
    ext: without('basicConstraints', 'basicConstraints = critical, CA:TRUE'),
    status: 401,
  },
  { name: 'keyUsage missing', ext: without('keyUsage'), status: 401 },
  {
    name: 'keyUsage without digitalSignature',
    ext: without('keyUsage', 'keyUsage = critical, keyEncipherment'),
    status: 401,
  },
];

test('the vault refuses client certificates that break the X.509-SVID rules, over real TLS', {
  timeout: 90_000,
}, async (t) => {
  const dir = tempDir(t);
  const v = await startTlsVault(t, dir, TD);
  const partner = opensslCa(dir, PARTNER);
  await v.admin('PUT', `/v1/identity/federation/${PARTNER}`, { bundle: JSON.stringify(partner.bundle) });
  await v.admin('POST', '/v1/projects', { name: 'demo' });
  await v.admin('PUT', SECRET, { value: 'canary' });
  await v.admin('PUT', '/v1/sys/policies/partner-reads', {
    policy: `permit (principal in Strongroom::Workload::"${ID}", action == Strongroom::Action::"secret.read", resource);`,
  });

  for (const c of CASES) {
    await t.test(`${c.name}: ${c.status}`, async () => {
      const leaf = partner.issue(ID, { ext: c.ext, ...(c.subject ? { subject: c.subject } : {}) });
      const agent = new Agent({ connect: { ca: v.ca, cert: leaf.cert, key: leaf.key } });
      try {
        const r = await v.call('GET', SECRET, undefined, { dispatcher: agent });
        assert.equal(r.status, c.status, JSON.stringify(r.json));
        if (c.status === 200) assert.equal(r.json.value, 'canary');
        else {
          // the client hears only that its certificate was refused; the server log says which rule it broke
          const error = r.json.error as { code: string; message: string; request_id: string };
          assert.equal(error.code, 'invalid_svid');
          assert.equal(error.message, 'the client certificate was refused');
          // the log line travels through the server's stdout pipe: it may arrive just after the response
          const find = () =>
            v.server
              .output()
              .split('\n')
              .find((l) => l.includes(error.request_id) && l.includes('request refused'));
          let line = find();
          for (let i = 0; !line && i < 50; i++) {
            await new Promise((r) => setTimeout(r, 50));
            line = find();
          }
          assert.ok(line, 'a log line for the refusal');
          const reason = (JSON.parse(line) as { reason?: string }).reason ?? '';
          assert.ok(reason.length > 10 && reason !== error.message, `a specific reason in the log: ${line}`);
        }
      } finally {
        await agent.close();
      }
    });
  }
});
