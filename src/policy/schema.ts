/**
 * The Cedar schema: who (principals), what (actions) and on what (resources).
 * Every core operation's action must be listed here; the core refuses to
 * start otherwise.
 */
export const NAMESPACE = 'Strongroom';

/** Actions and the resource types they apply to. */
export const ACTIONS: Record<string, readonly string[]> = {
  'sys.status': ['System'],
  'sys.seal': ['System'],
  'sys.rotate': ['System'],
  'project.create': ['Project'],
  'project.list': ['System'],
  'project.read': ['Project'],
  'environment.create': ['Environment'],
  'secret.read': ['Secret'],
  'secret.write': ['Secret'],
  'secret.list': ['Environment'],
  'secret.history': ['Secret'],
  'secret.rollback': ['Secret'],
  'secret.delete': ['Secret'],
  'secret.destroy': ['Secret'],
  'secret.restore': ['Secret'],
  'secret.rotate': ['Secret'],
  'secret.import': ['Environment'],
  'secret.export': ['Environment'],
  'secret.report': ['System', 'Project', 'Environment', 'Secret'],
  'usage.read': ['System', 'Project', 'Environment', 'Secret'],
  'sys.metrics': ['System'],
  'token.create': ['Token'],
  'token.self': ['Token'],
  'token.read': ['Token'],
  'token.revoke': ['Token'],
  'policy.read': ['System'],
  'policy.write': ['System'],
  'policy.test': ['System'],
  'user.create': ['User'],
  'user.read': ['User', 'System'],
  'user.update': ['User'],
  'user.delete': ['User'],
  'user.self': ['User'],
  'app.create': ['App'],
  'app.read': ['App', 'System'],
  'app.update': ['App'],
  'app.delete': ['App'],
  'audit.read': ['System'],
  'audit.hash': ['System'],
  // workload identity (issue 6): issuing SVIDs for a SPIFFE ID, registering who may obtain one
  'identity.issue': ['Identity'],
  'identity.register': ['Identity'],
  'identity.read': ['System', 'Identity'],
  'identity.validate': ['System'],
  'identity.ca': ['System'],
  'identity.federate': ['System'],
  // AI gateway (issue 7): virtual keys (System::"gateway-keys": one's own keys; "gateway-keys/all": everyone's)
  'gateway.key.manage': ['System'],
  'gateway.key.read': ['System'],
  // minting a key that outlives its creator token (issue 12 item 8; as Vault asks a right of orphan tokens)
  'gateway.key.orphan': ['System'],
  'gateway.invoke': ['Model'],
  // a gateway running apart from the vault (docs/gateway-remote.md): authenticates its callers, asks for
  // decisions, reserves budgets and appends its call records through System::"gateway"
  'gateway.vault': ['System'],
  // leases (issue 16; docs/leases.md): one's own (Token::"leases"), everyone's (System::"leases")
  'lease.self': ['Token'],
  'lease.manage': ['System'],
  // dynamic database credentials (docs/database.md): connections and roles (System::"database"),
  // credentials of one role (System::"database/creds/<role>", authorized by Cedar alone: scopes narrow secrets)
  'database.manage': ['System'],
  'database.read': ['System'],
  'database.creds': ['System'],
  // response wrapping (docs/wrapping.md): wrapping a read's answer is the caller's own business
  'wrapping.wrap': ['Token'],
  // per-lease provider keys (docs/provider-keys.md): roles (System::"provider-keys"), and a key of one
  // role (System::"provider-keys/creds/<role>", authorized by Cedar alone, as database roles are)
  'provider-key.manage': ['System'],
  'provider-key.read': ['System'],
  'provider-key.creds': ['System'],
  // per-tool credentials (docs/tools.md): the registry (System::"tools"), and a credential for one tool
  // (Tool::"<name>", the operation in context.operation)
  'tool.manage': ['System'],
  'tool.read': ['System'],
  'tool.credential': ['Tool'],
  // check-out / check-in of a static secret under a lease (docs/checkout.md)
  'secret.checkout': ['Secret'],
  // the transit engine (docs/transit.md): managing keys, reading their metadata and public keys (the list:
  // System::"transit"), and each use of a key (TransitKey::"<name>") its own action, so a policy can let
  // a service encrypt without decrypting, or verify without signing; random bytes and hashes touch no key
  'transit.manage': ['TransitKey'],
  'transit.read': ['System', 'TransitKey'],
  'transit.export': ['TransitKey'],
  'transit.encrypt': ['TransitKey'],
  'transit.decrypt': ['TransitKey'],
  'transit.rewrap': ['TransitKey'],
  'transit.datakey': ['TransitKey'],
  'transit.sign': ['TransitKey'],
  'transit.verify': ['TransitKey'],
  'transit.hmac': ['TransitKey'],
  'transit.random': ['System'],
  // models (docs/models.md): policies (System::"models"), and a release of one model's data keys
  // (System::"models/<name>", authorized by Cedar alone: a scoped token needs models/<name> in credentials)
  'model.manage': ['System'],
  'model.read': ['System'],
  'model.release': ['System'],
};

/** Actions that never need authorization (they run before a token exists, or are public). */
export const PUBLIC_ACTIONS = new Set([
  'sys.status',
  'sys.init',
  'sys.unseal',
  // key holders' shares are the credential of a root token generation (docs/seal.md)
  'sys.generate-root',
  'auth.login',
  // a join token is its own credential (checked and consumed by the handler)
  'identity.join',
  // trust bundles, JWKS and the OpenID configuration are public keys
  'identity.bundle',
  // a wrapping token is its own credential, spent once by the handler (docs/wrapping.md)
  'wrapping.unwrap',
]);

/**
 * Actions a token's scope does not restrict: they touch no vault path and reveal nothing a scope
 * protects, so a scoped principal (every app is scoped) may perform them whenever Cedar allows.
 * Every other action stays bound by the scope (deny by default). Issue 13 item 2: a relying party
 * validating a JWT-SVID (`identity.validate`) learns only what the token it holds already says.
 */
export const UNSCOPED_ACTIONS: ReadonlySet<string> = new Set(['identity.validate', 'transit.random']);

export function schemaText(): string {
  const actions = Object.entries(ACTIONS)
    .map(
      ([name, resources]) =>
        `  action "${name}" appliesTo { principal: [Token], resource: [${resources.join(', ')}], context: RequestContext };`,
    )
    .join('\n');
  return `namespace ${NAMESPACE} {
  entity Role;
  entity User { name: String };
  entity App { name: String };
  entity Workload { spiffe_id: String, trust_domain: String };
  entity Token in [Role, User, App, Workload] { kind: String, name: String, mfa: Bool };
  entity Identity { spiffe_id: String, trust_domain: String, path: String };
  entity Model { provider: String, model: String, route: String };
  entity System;
  entity Tool { name: String };
  entity TransitKey { name: String };
  entity Project { name: String };
  entity Environment in [Project] { project: String, name: String, production: Bool };
  entity Secret in [Environment] {
    project: String, environment: String, name: String, production: Bool, provider: String, tags: Set<String>
  };
  type RequestContext = {
    mfa: Bool, client_ip: ipaddr, now: Long,
    classification?: String, estimated_tokens?: Long, environment?: String, operation?: String, tenant?: String
  };
${actions}
}`;
}

const list = (names: string[]) => `[${names.map((n) => `${NAMESPACE}::Action::"${n}"`).join(', ')}]`;
const role = (r: string) => `${NAMESPACE}::Role::"${r}"`;

const SECRET_WORK = [
  'secret.read',
  'secret.checkout',
  'secret.write',
  'secret.history',
  'secret.rollback',
  'secret.delete',
  'secret.restore',
  'secret.rotate',
  'secret.import',
  'secret.export',
];
// usage.read: who read which secret and when (counts, never values) is metadata too (issue 4 item 6)
const METADATA = [
  'project.list',
  'project.read',
  'secret.list',
  'secret.history',
  'secret.report',
  'sys.status',
  'usage.read',
  'identity.read',
  'transit.read',
];
const SELF = ['token.self', 'user.self', 'lease.self', 'wrapping.wrap'];

/**
 * Built-in roles (issue 3): admin does everything; developer reads and writes
 * secrets outside production and reads metadata everywhere; auditor reads the
 * audit log and metadata and never a secret value; app reads the secrets in
 * its scope and calls models through the gateway. Every authenticated
 * principal may manage its own token and create narrower child tokens.
 * Gateway virtual keys (issue 7; docs/gateway-keys.md): admin manages every
 * key, the auditor reads every key's metadata, a developer mints and manages
 * its own; developers, apps and virtual keys may invoke models. Only admin
 * (and root, which no policy binds) may mint orphan keys (`gateway.key.orphan`):
 * everyone else's keys end with the token that minted them.
 */
export const BUILTIN_POLICIES: Record<string, string> = {
  'builtin.admin': `permit (principal in ${role('admin')}, action, resource);`,
  'builtin.developer.secrets': `permit (principal in ${role('developer')}, action in ${list([...SECRET_WORK, 'secret.list', 'environment.create'])}, resource)
  when { resource has production && !resource.production };`,
  'builtin.developer.metadata': `permit (principal in ${role('developer')}, action in ${list([...METADATA, 'project.create'])}, resource);`,
  'builtin.auditor': `permit (principal in ${role('auditor')}, action in ${list([...METADATA, 'audit.read', 'audit.hash', 'policy.read', 'user.read', 'app.read', 'token.read', 'sys.metrics', 'gateway.key.read'])}, resource);`,
  'builtin.auditor.never-values': `forbid (principal in ${role('auditor')}, action in ${list(['secret.read', 'secret.checkout', 'secret.write', 'secret.rollback', 'secret.delete', 'secret.destroy', 'secret.restore', 'secret.rotate', 'secret.import', 'secret.export'])}, resource);`,
  'builtin.app': `permit (principal in ${role('app')}, action in ${list(['secret.read', 'secret.checkout', 'secret.list', 'gateway.invoke'])}, resource);`,
  // developers call models through the gateway, and mint and manage virtual keys of their own
  // (System::"gateway-keys"; the engine confines them to the keys they minted)
  'builtin.developer.gateway': `permit (principal in ${role('developer')}, action == ${NAMESPACE}::Action::"gateway.invoke", resource);`,
  'builtin.developer.gateway-keys': `permit (principal in ${role('developer')}, action in ${list(['gateway.key.manage', 'gateway.key.read'])}, resource == ${NAMESPACE}::System::"gateway-keys");`,
  // a virtual key (src/engines/gateway/virtual-keys.ts keyIdentity) may call models; its scope is checked by the gateway
  'builtin.virtual-key': `permit (principal in ${role('virtual-key')}, action == ${NAMESPACE}::Action::"gateway.invoke", resource);`,
  // a gateway workload in front of this vault (docs/gateway-remote.md): the gateway service, and the
  // provider keys it injects (its registration's scope narrows secret.read to the keys' environments)
  'builtin.gateway': `permit (principal in ${role('gateway')}, action in ${list(['gateway.vault', 'secret.read'])}, resource);`,
  // Issuing an SVID also needs a registration that entitles the caller to that SPIFFE ID (checked by
  // the identity engine); validating a JWT-SVID reveals nothing.
  'builtin.self': `permit (principal, action in ${list([...SELF, 'token.create', 'identity.issue', 'identity.validate'])}, resource);`,
};
