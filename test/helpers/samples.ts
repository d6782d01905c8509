/**
 * One valid request per operation, used by suites that walk every route
 * (sealed answers, authentication and authorization coverage). A route with
 * no sample fails those suites, so new routes must add one here.
 */
export const SECRET = '/v1/secrets/llm/dev/OPENAI_API_KEY';

export const SAMPLE: Record<string, { url: string; body?: unknown }> = {
  'sys.seal-status': { url: '/v1/sys/seal-status' },
  'sys.init': { url: '/v1/sys/init', body: {} },
  'sys.unseal': { url: '/v1/sys/unseal', body: { reset: true } },
  'sys.seal': { url: '/v1/sys/seal' },
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
};
