import { type KeyObject, randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { AppInfo } from '../api/auth.ts';
import type { BarrierStore, BarrierWriter } from '../barrier/barrier.ts';
import { loadOrCreateKey } from '../barrier/stored-keys.ts';
import { type Scope, scopeProblem } from '../contract/scope.ts';
import { constantTimeEqual, hmacSha256 } from '../crypto/random.ts';
import { generateToken, TOKEN_PREFIXES } from '../crypto/token.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { checkRoles } from './users.ts';

/**
 * Applications (machine identities): a `client_id` (public) and a
 * `client_secret` (256 random bits with the scanner-friendly `srs_` prefix,
 * shown once). Only an HMAC-SHA256 of each secret is stored, keyed by a key in
 * the barrier: for a uniformly random 256-bit secret a keyed hash is as strong
 * as a password KDF and costs microseconds instead of tens of milliseconds.
 *
 * Layout in its view:
 *   hmac-key          the HMAC key
 *   app/<client_id>   the app record
 *   name/<name>       -> client_id
 */
export interface AppSecret {
  /** hex HMAC-SHA256 of the secret */
  hash: string;
  created_at: string;
  /** null for the current secret; the end of the grace period for a rotated-out one */
  expires_at: string | null;
}

export interface AppRecord {
  client_id: string;
  name: string;
  roles: string[];
  scope: Scope;
  allowed_cidrs: string[];
  /** seconds */
  token_ttl: number;
  created_at: string;
  updated_at: string;
  secrets: AppSecret[];
}

/** What clients see of an app (the wire shape, src/api/auth.ts). */
export type PublicApp = AppInfo;

export interface AppCreateOptions {
  name: string;
  roles: string[];
  scope: Scope;
  allowed_cidrs?: string[];
  token_ttl: number;
}

export interface AppStore {
  create(opts: AppCreateOptions): Promise<{ app: AppRecord; client_secret: string }>;
  get(name: string): Promise<AppRecord | undefined>;
  list(): Promise<AppRecord[]>;
  /** Issues a new secret; the current one stays valid for `graceSeconds` (0: revoked at once). */
  rotateSecret(name: string, graceSeconds: number): Promise<{ app: AppRecord; client_secret: string }>;
  delete(name: string): Promise<AppRecord>;
  /**
   * Checks an app login. An unknown client id and a wrong secret fail alike
   * (`invalid_credentials`); an address outside `allowed_cidrs` is refused
   * before the secret is looked at, so a stolen secret cannot be tested from
   * outside the allowed ranges.
   */
  authenticate(clientId: string, secret: string, address: string): Promise<AppRecord>;
}

const APP_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const CLIENT_ID_RE = /^app_[0-9a-f]{24}$/;
/** At most this many secrets (current plus those in their grace period) per app. */
const MAX_SECRETS = 3;

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const dec = <T>(b: Buffer) => JSON.parse(b.toString('utf8')) as T;

/** `10.0.0.0/8`, `2001:db8::/32` or a single address → its canonical `addr/prefix`; throws `validation_failed`. */
export function parseCidr(input: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [addr = '', bits, extra] = input.trim().split('/');
  const version = isIP(addr);
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
  if (version === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
    throw new StrongroomError(
      'validation_failed',
      `invalid address range ${JSON.stringify(input.slice(0, 60))}: use CIDR notation like 10.0.0.0/8 or 2001:db8::/32`,
    );
  }
  return { address: addr, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** The address as a BlockList checks it: IPv4-mapped IPv6 (`::ffff:10.1.2.3`) becomes IPv4. */
function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const v4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  const a = v4 ? v4[1]! : address;
  const version = isIP(a);
  return version === 0 ? undefined : { address: a, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function addressAllowed(cidrs: readonly string[], address: string): boolean {
  if (cidrs.length === 0) return true;
  const a = plainAddress(address);
  if (!a) return false;
  const list = new BlockList();
  for (const c of cidrs) {
    const r = parseCidr(c);
    list.addSubnet(r.address, r.prefix, r.family);
  }
  return list.check(a.address, a.family);
}

export function publicApp(a: AppRecord, now: number): PublicApp {
  const live = a.secrets.filter((s) => s.expires_at === null || Date.parse(s.expires_at) > now);
  return {
    client_id: a.client_id,
    name: a.name,
    roles: a.roles,
    scope: a.scope,
    allowed_cidrs: a.allowed_cidrs,
    token_ttl: a.token_ttl,
    created_at: a.created_at,
    updated_at: a.updated_at,
    secret_created_at: a.secrets.find((s) => s.expires_at === null)?.created_at ?? a.created_at,
    previous_secrets: live
      .filter((s) => s.expires_at !== null)
      .map((s) => ({ created_at: s.created_at, expires_at: s.expires_at! })),
  };
}

function checkName(name: string): void {
  if (!APP_NAME_RE.test(name))
    throw new StrongroomError(
      'invalid_name',
      `invalid app name ${JSON.stringify(name.slice(0, 64))}: use 1-63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
}

const noApp = (name: string) =>
  new StrongroomError('not_found', `no app named ${JSON.stringify(name)}: see \`strongroom app list\``);
const badLogin = () => new StrongroomError('invalid_credentials', 'invalid client id or client secret');

export function createAppStore(store: BarrierStore, clock: Clock): AppStore {
  const iso = (ms = clock.now()) => new Date(ms).toISOString();

  // read from the barrier on each use (a cached read), so no key outlives a seal
  const key = (): Promise<KeyObject> => loadOrCreateKey(store, 'hmac-key');
  const secretHash = (k: KeyObject, secret: string) => hmacSha256(k, secret).toString('hex');

  async function readApp(r: Pick<BarrierWriter, 'get'>, clientId: string): Promise<AppRecord | undefined> {
    const raw = await r.get(`app/${clientId}`);
    return raw ? dec<AppRecord>(raw) : undefined;
  }
  async function byName(r: Pick<BarrierWriter, 'get'>, name: string): Promise<AppRecord | undefined> {
    checkName(name);
    const id = await r.get(`name/${name}`);
    return id ? readApp(r, id.toString('utf8')) : undefined;
  }

  return {
    async create(opts) {
      checkName(opts.name);
      const roles = checkRoles(opts.roles);
      if (roles.length === 0)
        throw new StrongroomError('validation_failed', 'an app needs at least one role');
      if (!opts.scope.paths?.length && !opts.scope.providers?.length && !opts.scope.credentials?.length)
        throw new StrongroomError(
          'validation_failed',
          'an app needs a scope (paths like PROJECT/ENV, providers, or credentials like database/creds/ROLE): machine identities reach only what they are given',
        );
      const problem = scopeProblem(opts.scope);
      if (problem) throw new StrongroomError('validation_failed', problem);
      const cidrs = (opts.allowed_cidrs ?? []).map((c) => {
        const r = parseCidr(c);
        return `${r.address}/${r.prefix}`;
      });
      const k = await key();
      const client_secret = generateToken(TOKEN_PREFIXES.service);
      const now = iso();
      const app: AppRecord = {
        client_id: `app_${randomBytes(12).toString('hex')}`,
        name: opts.name,
        roles,
        scope: {
          ...(opts.scope.paths ? { paths: [...opts.scope.paths] } : {}),
          ...(opts.scope.providers ? { providers: [...opts.scope.providers] } : {}),
          ...(opts.scope.credentials ? { credentials: [...opts.scope.credentials] } : {}),
        },
        allowed_cidrs: [...new Set(cidrs)],
        token_ttl: opts.token_ttl,
        created_at: now,
        updated_at: now,
        secrets: [{ hash: secretHash(k, client_secret), created_at: now, expires_at: null }],
      };
      await store.transaction(async (tx) => {
        if (await tx.get(`name/${app.name}`))
          throw new StrongroomError(
            'already_exists',
            `an app named ${JSON.stringify(app.name)} already exists`,
          );
        await tx.put(`app/${app.client_id}`, enc(app));
        await tx.put(`name/${app.name}`, Buffer.from(app.client_id));
      });
      return { app, client_secret };
    },

    get: (name) => byName(store, name),

    async list() {
      const out: AppRecord[] = [];
      for (const path of await store.list('app/')) {
        const a = await readApp(store, path.slice('app/'.length));
        if (a) out.push(a);
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    async rotateSecret(name, graceSeconds) {
      const k = await key();
      const client_secret = generateToken(TOKEN_PREFIXES.service);
      const hash = secretHash(k, client_secret);
      const app = await store.transaction(async (tx) => {
        const a = await byName(tx, name);
        if (!a) throw noApp(name);
        const now = clock.now();
        const kept = a.secrets
          .map((s) =>
            s.expires_at === null
              ? { ...s, expires_at: graceSeconds > 0 ? iso(now + graceSeconds * 1000) : iso(now) }
              : s,
          )
          .filter((s) => Date.parse(s.expires_at!) > now);
        const next: AppRecord = {
          ...a,
          updated_at: iso(now),
          secrets: [{ hash, created_at: iso(now), expires_at: null }, ...kept].slice(0, MAX_SECRETS),
        };
        await tx.put(`app/${a.client_id}`, enc(next));
        return next;
      });
      return { app, client_secret };
    },

    async delete(name) {
      return store.transaction(async (tx) => {
        const a = await byName(tx, name);
        if (!a) throw noApp(name);
        await tx.delete(`app/${a.client_id}`);
        await tx.delete(`name/${a.name}`);
        return a;
      });
    },

    async authenticate(clientId, secret, address) {
      const k = await key();
      const presented = secretHash(k, secret);
      const app = CLIENT_ID_RE.test(clientId) ? await readApp(store, clientId) : undefined;
      if (app && !addressAllowed(app.allowed_cidrs, address)) {
        throw new StrongroomError(
          'permission_denied',
          `this app may not log in from ${address}: its allowed address ranges do not include it`,
        );
      }
      const now = clock.now();
      let ok = false;
      for (const s of app?.secrets ?? []) {
        const live = s.expires_at === null || Date.parse(s.expires_at) > now;
        if (constantTimeEqual(s.hash, presented) && live) ok = true;
      }
      if (!app || !ok) throw badLogin();
      return app;
    },
  };
}
