/**
 * One valid request per operation, used by suites that walk every route
 * (sealed answers, authentication and authorization coverage). A route with
 * no sample fails those suites, so new routes must add one here.
 */
export const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';

/** A CSR (P-256) asking for spiffe://strongroom.local/sample, made with openssl for the samples. */
export const SAMPLE_CSR = `-----BEGIN CERTIFICATE REQUEST-----
MIIBCjCBsQIBADARMQ8wDQYDVQQDDAZzYW1wbGUwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQlQ3cmvNDV7KuiGK9pLgr0Ed3IGHO7dl4c+d+t8uPCqZb6hGsGFozu
NJX6GtrU22fcFIx5zWCk1RcU/QiWgD+hoD4wPAYJKoZIhvcNAQkOMS8wLTArBgNV
HREEJDAihiBzcGlmZmU6Ly9zdHJvbmdyb29tLmxvY2FsL3NhbXBsZTAKBggqhkjO
PQQDAgNIADBFAiBkqv/rhjMfL17AsDzxi/cpCt61QbuahZi8XztMQAt7IgIhAINs
KtDz7EMPyqPaevnZ4cwOyU4nnSt7I1SKMjy9I0Qr
-----END CERTIFICATE REQUEST-----`;

export const SAMPLE: Record<string, { url: string; body?: unknown }> = {
  'sys.seal-status': { url: '/v1/sys/seal-status' },
  'sys.init': { url: '/v1/sys/init', body: {} },
  'sys.unseal': { url: '/v1/sys/unseal', body: { reset: true } },
  'sys.seal': { url: '/v1/sys/seal' },
  'sys.generate-root.read': { url: '/v1/sys/generate-root/attempt' },
  'sys.generate-root.start': { url: '/v1/sys/generate-root/attempt', body: {} },
  'sys.generate-root.cancel': { url: '/v1/sys/generate-root/attempt' },
  'sys.generate-root.update': {
    url: '/v1/sys/generate-root/update',
    body: { key: 'not-a-share', nonce: 'not-a-nonce' },
  },
  'sys.rotate': { url: '/v1/sys/rotate' },
  'sys.key-status': { url: '/v1/sys/key-status' },
  'project.create': { url: '/v1/projects', body: { name: 'another' } },
  'project.list': { url: '/v1/projects' },
  'project.read': { url: '/v1/projects/llm' },
  'environment.create': { url: '/v1/projects/llm/environments', body: { name: 'qa' } },
  'secret.list': { url: '/v1/secrets/llm/dev' },
  'secret.write': { url: SECRET, body: { value: 'x' } },
  'secret.read': { url: SECRET },
  'secret.versions': { url: `${SECRET}/versions` },
  'secret.rollback': { url: `${SECRET}/rollback`, body: { version: 1 } },
  'secret.delete': { url: SECRET },
  'secret.restore': { url: `${SECRET}/restore` },
  'secret.destroy': { url: `${SECRET}?destroy=true` },
  // --- rotation (src/server/routes/v1/rotation.ts) ---
  'secret.rotate': { url: `${SECRET}/rotate`, body: { value: 'sample-rotated-value', force: true } },
  'secret.rotation-status': { url: `${SECRET}/rotation` },
  // --- bulk import/export (src/server/routes/v1/bulk.ts) ---
  'secret.import': {
    url: '/v1/secrets/llm/dev/import',
    body: { secrets: [{ name: 'IMPORTED', value: 'x' }], on_conflict: 'skip' },
  },
  'secret.export-metadata': { url: '/v1/secrets/llm/dev/export' },
  'secret.export': { url: '/v1/secrets/llm/dev/export?values=true' },
  'token.create': { url: '/v1/auth/token/create', body: { ttl: '10m' } },
  'token.lookup-self': { url: '/v1/auth/token/lookup-self' },
  'token.renew-self': { url: '/v1/auth/token/renew-self', body: {} },
  'token.revoke-self': { url: '/v1/auth/token/revoke-self' },
  'token.revoke': { url: '/v1/auth/token/revoke', body: { token: 'srt_x' } },
  'token.revoke-accessor': { url: '/v1/auth/token/revoke-accessor', body: { accessor: 'nope' } },
  'token.lookup-accessor': { url: '/v1/auth/token/lookup-accessor', body: { accessor: 'nope' } },
  'policy.list': { url: '/v1/sys/policies' },
  'policy.put': {
    url: '/v1/sys/policies/sample',
    body: { policy: 'permit (principal, action == Strongroom::Action::"project.list", resource);' },
  },
  'policy.get': { url: '/v1/sys/policies/sample' },
  'policy.delete': { url: '/v1/sys/policies/sample' },
  'policy.test': {
    url: '/v1/sys/policy-test',
    body: { principal: { roles: ['developer'] }, action: 'secret.read', resource: 'llm/dev/OPENAI_API_KEY' },
  },

  // --- workload identity (src/server/routes/v1/identity.ts) ---
  'identity.x509-svid': { url: '/v1/identity/x509-svid', body: { csr: SAMPLE_CSR } },
  'identity.x509-svid.join': {
    url: '/v1/identity/x509-svid',
    body: { csr: SAMPLE_CSR, join_token: 'srj_x' },
  },
  'identity.jwt-svid': {
    url: '/v1/identity/jwt-svid',
    body: { audience: ['sample'], spiffe_id: 'spiffe://strongroom.local/sample' },
  },
  'identity.jwt-svid.validate': {
    url: '/v1/identity/jwt-svid/validate',
    body: { token: 'x.y.z', audience: 'a' },
  },
  'identity.bundle': { url: '/v1/identity/bundle' },
  'identity.jwks': { url: '/v1/identity/jwks' },
  'identity.openid-configuration': { url: '/.well-known/openid-configuration' },
  'identity.registration.create': {
    url: '/v1/identity/registrations',
    body: { spiffe_id: 'spiffe://strongroom.local/sample', selectors: ['app:sample'] },
  },
  'identity.registration.list': { url: '/v1/identity/registrations' },
  'identity.registration.delete': {
    url: `/v1/identity/registrations/${encodeURIComponent('spiffe://strongroom.local/sample')}`,
  },
  'identity.join-token.create': {
    url: '/v1/identity/join-tokens',
    body: { spiffe_id: 'spiffe://strongroom.local/sample', ttl: '10m' },
  },
  'identity.ca.read': { url: '/v1/identity/ca' },
  'identity.ca.rotate': { url: '/v1/identity/ca/rotate' },
  'identity.federation.put': {
    url: '/v1/identity/federation/other.example',
    body: { bundle: '{"keys":[]}' },
  },
  'identity.federation.list': { url: '/v1/identity/federation' },
  'identity.federation.delete': { url: '/v1/identity/federation/other.example' },

  // --- gateway virtual keys (src/server/routes/v1/gateway.ts) ---
  'gateway.key.create': {
    url: '/v1/gateway/keys',
    body: {
      name: 'sample',
      scope: { providers: ['openai'] },
      limits: { requests_per_minute: 10 },
      ttl: '10m',
    },
  },
  'gateway.key.list': { url: '/v1/gateway/keys' },
  'gateway.key.read': { url: '/v1/gateway/keys/vk_000000000000000000000001' },
  'gateway.key.update': {
    url: '/v1/gateway/keys/vk_000000000000000000000001',
    body: { limits: { requests_per_minute: 5 } },
  },
  'gateway.key.revoke': { url: '/v1/gateway/keys/vk_000000000000000000000001' },
  // the vault service of remote gateways (src/gateway/vault-service.ts)
  'gateway.vault.authenticate': {
    url: '/v1/gateway/vault/authenticate',
    body: { credential: 'srv_sample', client_address: '127.0.0.1' },
  },
  'gateway.vault.authorize': {
    url: '/v1/gateway/vault/authorize',
    body: {
      session: 'st1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      resources: [{ provider: 'openai', model: 'gpt-4o', route: 'chat.completions' }],
      context: { client_address: '127.0.0.1', classification: 'internal', estimated_tokens: 10 },
    },
  },
  'gateway.vault.admit': {
    url: '/v1/gateway/vault/admit',
    body: {
      session: 'st1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      request_id: 'sample',
      operation: 'gateway.invoke',
      resource: 'Model::openai/gpt-4o',
      actor: null,
      client_address: '127.0.0.1',
      decision: { allowed: true, reason: 'permitted' },
      request: { route: 'chat.completions' },
      reserve: { defaults: {}, estimate: { tokens: 1, cost_usd: 0 } },
    },
  },
  'gateway.vault.settle': {
    url: '/v1/gateway/vault/budgets/settle',
    body: { reservation: 'AAAAAAAAAAAAAAAAAAAAAAAA' },
  },
  'gateway.vault.audit': {
    url: '/v1/gateway/vault/audit',
    body: {
      request_id: 'sample',
      operation: 'gateway.invoke',
      resource: 'Model::openai/gpt-4o',
      actor: null,
      client_address: '127.0.0.1',
      decision: { allowed: true, reason: 'permitted' },
      request: { route: 'chat.completions' },
      status: 'ok',
    },
  },
  'gateway.vault.revoke': {
    url: '/v1/gateway/vault/revoke',
    body: { session: 'st1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', reason: 'anomaly:burst' },
  },
  'gateway.vault.holds': {
    url: '/v1/gateway/vault/fingerprints',
    body: { session: 'st1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', candidates: ['sample-candidate'] },
  },
  'gateway.vault.live': {
    url: '/v1/gateway/vault/live',
    body: { sessions: ['st1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'] },
  },

  // --- audit (src/server/routes/v1/audit.ts) ---
  'audit.hash': { url: '/v1/sys/audit-hash', body: { input: 'sample' } },
  'audit.query': { url: '/v1/audit?limit=10' },

  // --- usage analytics (src/server/routes/v1/usage.ts) ---
  'usage.query': { url: '/v1/usage/llm/dev?since=7d&by=actor' },
  'usage.secret': { url: '/v1/usage/llm/dev/OPENAI_API_KEY?by=hour' },
  'usage.unused': { url: '/v1/usage/llm/dev/unused?days=30' },

  // --- users and apps (src/server/routes/v1/auth.ts) ---
  'auth.login': { url: '/v1/auth/login', body: { username: 'sample', password: 'not-the-password' } },
  'auth.app-login': { url: '/v1/auth/app/login', body: { client_id: 'nope', client_secret: 'nope' } },
  'user.create': {
    url: '/v1/auth/users',
    body: { username: 'sample', password: 'a long sample password', roles: ['developer'] },
  },
  'user.list': { url: '/v1/auth/users' },
  'user.read': { url: '/v1/auth/users/sample' },
  'user.delete': { url: '/v1/auth/users/sample' },
  'user.set-password': { url: '/v1/auth/users/sample/password', body: { password: 'another long password' } },
  'user.set-roles': { url: '/v1/auth/users/sample/roles', body: { roles: ['auditor'] } },
  'user.reset-mfa': { url: '/v1/auth/users/sample/mfa' },
  'user.read-self': { url: '/v1/auth/user/self' },
  'user.change-own-password': {
    url: '/v1/auth/user/password',
    body: { current_password: 'not-the-password', new_password: 'a brand new password' },
  },
  'mfa.totp-enroll': { url: '/v1/auth/mfa/totp/enroll' },
  'mfa.totp-confirm': { url: '/v1/auth/mfa/totp/confirm', body: { code: '123456' } },
  'mfa.required-roles.read': { url: '/v1/auth/mfa/required-roles' },
  'mfa.required-roles.write': { url: '/v1/auth/mfa/required-roles', body: { roles: [] } },
  'app.create': {
    url: '/v1/auth/apps',
    body: { name: 'sample-app', roles: ['app'], scope: { paths: ['llm/dev'] } },
  },
  'app.list': { url: '/v1/auth/apps' },
  'app.read': { url: '/v1/auth/apps/sample-app' },
  'app.rotate-secret': { url: '/v1/auth/apps/sample-app/rotate-secret', body: {} },
  'app.delete': { url: '/v1/auth/apps/sample-app' },

  // --- watch and hygiene (src/server/routes/v1/watch.ts, hygiene.ts) ---
  'secret.watch': { url: '/v1/secrets/llm/dev/watch' },
  'secret.stale': { url: '/v1/reports/stale?project=llm&env=dev&within=7d' },
  'sys.metrics': { url: '/v1/sys/metrics' },

  // --- leases, database credentials, wrapping (src/server/routes/v1/leases.ts) ---
  'lease.lookup': {
    url: '/v1/sys/leases/lookup',
    body: { lease_id: 'database/creds/sample/000000000000000000000000' },
  },
  'lease.renew': {
    url: '/v1/sys/leases/renew',
    body: { lease_id: 'database/creds/sample/000000000000000000000000' },
  },
  'lease.revoke': {
    url: '/v1/sys/leases/revoke',
    body: { lease_id: 'database/creds/sample/000000000000000000000000' },
  },
  'lease.revoke-prefix': { url: '/v1/sys/leases/revoke-prefix', body: { prefix: 'database/creds/sample/' } },
  'lease.list': { url: '/v1/sys/leases?prefix=database/' },
  'database.config.write': {
    url: '/v1/database/config/sample',
    body: {
      plugin: 'postgresql',
      connection_url: 'postgres://127.0.0.1:1/none',
      username: 'admin',
      password: 'sample-password',
      allowed_roles: ['*'],
      verify_connection: false,
    },
  },
  'database.config.read': { url: '/v1/database/config/sample' },
  'database.config.list': { url: '/v1/database/config' },
  'database.config.delete': { url: '/v1/database/config/sample' },
  'database.rotate-root': { url: '/v1/database/rotate-root/sample' },
  'database.role.write': {
    url: '/v1/database/roles/sample',
    body: { db_name: 'sample', creation_statements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}}'] },
  },
  'database.role.read': { url: '/v1/database/roles/sample' },
  'database.role.list': { url: '/v1/database/roles' },
  'database.role.delete': { url: '/v1/database/roles/sample' },
  'database.creds': { url: '/v1/database/creds/sample', body: {} },
  'secret.checkout': { url: `${SECRET}/checkout`, body: { ttl: '5m' } },
  'secret.holder': { url: `${SECRET}/checkout` },
  'secret.checkin': {
    url: `${SECRET}/checkin`,
    body: { lease_id: 'checkout/llm/dev/OPENAI_API_KEY/000000000000000000000000' },
  },
  'provider-key.role.write': {
    url: '/v1/provider-keys/roles/sample',
    body: { provider: 'openrouter', admin_secret: 'llm/dev/OPENROUTER_PROVISIONING_KEY', limit: 5 },
  },
  'provider-key.role.read': { url: '/v1/provider-keys/roles/sample' },
  'provider-key.role.list': { url: '/v1/provider-keys/roles' },
  'provider-key.role.delete': { url: '/v1/provider-keys/roles/sample' },
  'provider-key.creds': { url: '/v1/provider-keys/creds/sample', body: {} },
  'tool.write': {
    url: '/v1/tools/sample',
    body: { operations: { search: { engine: 'database', role: 'sample' } } },
  },
  'tool.read': { url: '/v1/tools/sample' },
  'tool.list': { url: '/v1/tools' },
  'tool.delete': { url: '/v1/tools/sample' },
  'tool.credential': { url: '/v1/tools/sample/credentials', body: { operation: 'search' } },
  'wrapping.unwrap': { url: '/v1/sys/wrapping/unwrap', body: { token: 'not-a-wrapping-token' } },
  'wrapping.lookup': { url: '/v1/sys/wrapping/lookup', body: { token: 'not-a-wrapping-token' } },
  // --- transit (src/server/routes/v1/transit.ts); `OPERATION URL` keys reach a second route of an operation ---
  'transit.key.create': { url: '/v1/transit/keys/sample', body: {} },
  'transit.key.read': { url: '/v1/transit/keys/sample' },
  'transit.key.list': { url: '/v1/transit/keys' },
  'transit.key.delete': { url: '/v1/transit/keys/sample' },
  'transit.key.config': { url: '/v1/transit/keys/sample/config', body: { deletion_allowed: false } },
  'transit.key.rotate': { url: '/v1/transit/keys/sample/rotate' },
  'transit.key.trim': { url: '/v1/transit/keys/sample/trim', body: { min_available_version: 1 } },
  'transit.key.export': { url: '/v1/transit/export/public-key/sample' },
  'transit.key.export /v1/transit/export/:key_type/:name/:version': {
    url: '/v1/transit/export/public-key/sample/latest',
  },
  'transit.encrypt': { url: '/v1/transit/encrypt/sample', body: { plaintext: 'c2FtcGxl' } },
  'transit.decrypt': { url: '/v1/transit/decrypt/sample', body: { ciphertext: 'vault:v1:AAAA' } },
  'transit.rewrap': { url: '/v1/transit/rewrap/sample', body: { ciphertext: 'vault:v1:AAAA' } },
  'transit.datakey': { url: '/v1/transit/datakey/plaintext/sample', body: {} },
  'transit.sign': { url: '/v1/transit/sign/sample', body: { input: 'c2FtcGxl' } },
  'transit.sign /v1/transit/sign/:name/:hash_algorithm': {
    url: '/v1/transit/sign/sample/sha2-256',
    body: { input: 'c2FtcGxl' },
  },
  'transit.verify': {
    url: '/v1/transit/verify/sample',
    body: { input: 'c2FtcGxl', signature: 'vault:v1:AAAA' },
  },
  'transit.verify /v1/transit/verify/:name/:hash_algorithm': {
    url: '/v1/transit/verify/sample/sha2-256',
    body: { input: 'c2FtcGxl', signature: 'vault:v1:AAAA' },
  },
  'transit.hmac': { url: '/v1/transit/hmac/sample', body: { input: 'c2FtcGxl' } },
  'transit.hmac /v1/transit/hmac/:name/:hash_algorithm': {
    url: '/v1/transit/hmac/sample/sha2-256',
    body: { input: 'c2FtcGxl' },
  },
  'transit.random': { url: '/v1/transit/random', body: {} },
  'transit.random /v1/transit/random/:bytes': { url: '/v1/transit/random/16', body: {} },
  'transit.hash': { url: '/v1/transit/hash', body: { input: 'c2FtcGxl' } },
  // --- models (src/server/routes/v1/models.ts) ---
  'model.policy.write': {
    url: '/v1/models/sample',
    body: {
      key: 'sample',
      signers: [
        '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJUN3JrzQ1eyrohivaS4K9BHdyBhzu3ZeHPnfrfLjwqmW+oRrBhaM7jSV+hra1Ntn3BSMec1gpNUXFP0Ilg/oaA==\n-----END PUBLIC KEY-----\n',
      ],
    },
  },
  'model.policy.read': { url: '/v1/models/sample' },
  'model.advisories.load': {
    url: '/v1/models/advisories',
    body: { advisories: [{ id: 'GHSA-sample', affected: [] }] },
  },
  'model.policy.list': { url: '/v1/models' },
  'model.policy.delete': { url: '/v1/models/sample' },
  'model.release': {
    url: '/v1/models/sample/release',
    body: {
      signature: {
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: { publicKey: { hint: '0'.repeat(64) } },
        dsseEnvelope: {
          payload: 'e30=',
          payloadType: 'application/vnd.in-toto+json',
          signatures: [{ sig: 'AA==' }],
        },
      },
      files: [
        {
          path: 'model.safetensors',
          sha256: '0'.repeat(64),
          enc_sha256: '1'.repeat(64),
          size: 1,
          wrapped_key: 'vault:v1:AAAA',
        },
      ],
    },
  },
};
