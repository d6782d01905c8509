import type { KeyObject } from 'node:crypto';
import type { BarrierStore, BarrierWriter } from '../barrier/barrier.ts';
import { loadOrCreateKey } from '../barrier/stored-keys.ts';
import type { OperationContext } from '../contract/operation.ts';
import { constantTimeEqual, hmacSha256, randomId } from '../crypto/random.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import {
  dummyHash,
  hashPassword,
  needsRehash,
  type PasswordHash,
  passwordProblem,
  verifyPassword,
} from './password.ts';
import { createLockout, type Lockout, type LockoutPolicy } from './ratelimit.ts';
import {
  newRecoveryCode,
  newTotpSecret,
  normalizeRecoveryCode,
  RECOVERY_CODES,
  totpUri,
  verifyTotp,
} from './totp.ts';

/**
 * Users: people who log in with a username, a password and (when enrolled) a
 * TOTP code. Everything lives in the barrier (encrypted, path-bound):
 *
 *   hmac-key              key for the name index, lockout keys and recovery-code hashes
 *   user/<id>             the user record (password hash, roles, TOTP secret, recovery-code hashes)
 *   name/<hmac(name)>     -> id (names are personal data: storage paths are clear text, so only HMACs)
 *   lockout/<hmac(name)>  failed-attempt counter and lock (see ratelimit.ts)
 *   settings/mfa          roles that require MFA
 *
 * A username is normalised one way everywhere (`normalizeUsername`), so
 * `Alice`, ` alice ` and `ＡＬＩＣＥ` are one user with one lockout counter.
 */
export interface UserRecord {
  id: string;
  /** The normalised name. */
  name: string;
  roles: string[];
  password: PasswordHash;
  created_at: string;
  updated_at: string;
  password_changed_at: string;
  totp: { secret: string; confirmed_at: string; last_step: number } | null;
  totp_pending: { secret: string; created_at: string } | null;
  /** hex HMAC-SHA256 of each unused recovery code */
  recovery_codes: string[];
}

export interface PublicUser {
  id: string;
  name: string;
  roles: string[];
  created_at: string;
  updated_at: string;
  password_changed_at: string;
  mfa: { totp: boolean; enrolled_at: string | null; recovery_codes_left: number };
}

const USERNAME_MAX_CHARS = 64;
const PENDING_TOTP_MS = 15 * 60 * 1000;
const ROLE_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * The one normalisation of usernames: Unicode NFKC (fullwidth and other
 * compatibility forms fold to their plain letters), trim, collapse inner
 * whitespace to one space, lower-case, and NFKC again (lower-casing can
 * un-normalise a few characters). Control, format (zero-width), private-use
 * and unassigned characters are refused: they would let two names look alike.
 * Throws `invalid_name` with a message safe to show.
 */
export function normalizeUsername(input: string): string {
  const name = input.normalize('NFKC').trim().replace(/\s+/gu, ' ').toLowerCase().normalize('NFKC');
  if (/\p{C}/u.test(name))
    throw new StrongroomError(
      'invalid_name',
      'a username cannot contain control, format (zero-width) or unassigned characters',
    );
  const chars = [...name].length;
  if (chars < 1 || chars > USERNAME_MAX_CHARS)
    throw new StrongroomError('invalid_name', `a username has 1 to ${USERNAME_MAX_CHARS} characters`);
  return name;
}

/** Refuses role lists a user or app may not hold. */
export function checkRoles(roles: readonly string[]): string[] {
  const out = [...new Set(roles)].sort();
  for (const r of out) {
    if (!ROLE_RE.test(r))
      throw new StrongroomError('validation_failed', `invalid role name ${JSON.stringify(r.slice(0, 64))}`);
    if (r === 'root')
      throw new StrongroomError(
        'validation_failed',
        'the root policy belongs to root tokens only; give a role such as admin',
      );
  }
  return out;
}

/**
 * Refuses to grant roles the caller does not hold, unless the caller is root
 * or admin: a principal allowed to manage users or apps through a custom
 * policy must not be able to mint itself an admin (as tokens cannot, see
 * tokens.ts).
 */
export function checkGrantable(ctx: OperationContext, roles: readonly string[]): void {
  const held = ctx.identity?.policies ?? [];
  if (held.includes('root') || held.includes('admin')) return;
  const extra = roles.filter((r) => !held.includes(r));
  if (extra.length > 0)
    throw new StrongroomError(
      'permission_denied',
      `you cannot grant roles you do not hold yourself: ${[...new Set(extra)].join(', ')}`,
    );
}

export function publicUser(u: UserRecord): PublicUser {
  return {
    id: u.id,
    name: u.name,
    roles: u.roles,
    created_at: u.created_at,
    updated_at: u.updated_at,
    password_changed_at: u.password_changed_at,
    mfa: {
      totp: u.totp !== null,
      enrolled_at: u.totp?.confirmed_at ?? null,
      recovery_codes_left: u.totp ? u.recovery_codes.length : 0,
    },
  };
}

/** What a successful password (and second-factor) check yields. */
export interface Authenticated {
  user: UserRecord;
  /** Whether a TOTP or recovery code was verified. */
  mfa: boolean;
  /** Set when the user may only enrol MFA (a role requires it and none is enrolled). */
  enrollment_only: boolean;
}

export interface LoginInput {
  username: string;
  password: string;
  totp?: string | undefined;
  recovery_code?: string | undefined;
  /** Ask for an enrolment-only login when a role requires MFA and none is enrolled. */
  mfa_enrollment?: boolean | undefined;
}

export interface UserStore {
  create(name: string, password: string, roles: string[]): Promise<UserRecord>;
  /** The user by (raw or normalised) name, or undefined. */
  get(name: string): Promise<UserRecord | undefined>;
  getById(id: string): Promise<UserRecord | undefined>;
  list(): Promise<UserRecord[]>;
  delete(name: string): Promise<UserRecord>;
  setPassword(name: string, password: string): Promise<UserRecord>;
  setRoles(name: string, roles: string[]): Promise<{ user: UserRecord; removed: string[] }>;
  /** Removes a user's TOTP enrolment and recovery codes (an admin's reset for a lost device). */
  resetMfa(name: string): Promise<UserRecord>;
  /**
   * Checks a login. An unknown user and a wrong password fail identically
   * (`invalid_credentials`, one argon2 run each); attempts count towards the
   * name's lockout whether or not the user exists.
   */
  authenticate(input: LoginInput): Promise<Authenticated>;
  /** A user changing their own password: the current one must be right (and counts towards lockout). */
  changeOwnPassword(id: string, current: string, next: string): Promise<UserRecord>;
  /** Starts (or restarts) TOTP enrolment; returns the secret and its otpauth URI. */
  enrollTotp(id: string): Promise<{ secret: string; otpauth_uri: string; expires_at: string }>;
  /** Confirms enrolment with a code from the app; returns the recovery codes (shown once). */
  confirmTotp(id: string, code: string): Promise<string[]>;
  requiredMfaRoles(): Promise<string[]>;
  setRequiredMfaRoles(roles: string[]): Promise<string[]>;
}

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const dec = <T>(b: Buffer) => JSON.parse(b.toString('utf8')) as T;

const BAD_LOGIN = 'invalid username or password';
const badLogin = () => new StrongroomError('invalid_credentials', BAD_LOGIN);
const noUser = (name: string) =>
  new StrongroomError('not_found', `no user named ${JSON.stringify(name)}: see \`strongroom user list\``);

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: a closure over the user store's barrier view, lockout policy and hashing settings; each method is short and they share that state
export function createUserStore(store: BarrierStore, clock: Clock, lockoutPolicy: LockoutPolicy): UserStore {
  const lockout: Lockout = createLockout(store.view('lockout/'), clock, lockoutPolicy);
  const iso = () => new Date(clock.now()).toISOString();

  // read from the barrier on each use (cheap next to argon2), so no key outlives a seal
  const key = (): Promise<KeyObject> => loadOrCreateKey(store, 'hmac-key');

  const nameKey = (k: KeyObject, name: string) => hmacSha256(k, `name\0${name}`).toString('hex');
  const codeHash = (k: KeyObject, id: string, code: string) =>
    hmacSha256(k, `recovery\0${id}\0${normalizeRecoveryCode(code)}`).toString('hex');

  async function readUser(r: Pick<BarrierWriter, 'get'>, id: string): Promise<UserRecord | undefined> {
    const raw = await r.get(`user/${id}`);
    return raw ? dec<UserRecord>(raw) : undefined;
  }

  async function findByName(r: Pick<BarrierWriter, 'get'>, k: KeyObject, name: string) {
    const id = await r.get(`name/${nameKey(k, name)}`);
    return id ? readUser(r, id.toString('utf8')) : undefined;
  }

  /** Applies `fn` to the stored user in one transaction; `fn` returns the new record. */
  async function update(
    id: string,
    fn: (u: UserRecord) => UserRecord | Promise<UserRecord>,
  ): Promise<UserRecord> {
    return store.transaction(async (tx) => {
      const u = await readUser(tx, id);
      if (!u) throw new StrongroomError('not_found', 'the user no longer exists');
      const next = await fn(u);
      await tx.put(`user/${id}`, enc(next));
      return next;
    });
  }

  async function byName(name: string): Promise<UserRecord> {
    const n = normalizeUsername(name);
    const u = await findByName(store, await key(), n);
    if (!u) throw noUser(n);
    return u;
  }

  async function requiredRoles(): Promise<string[]> {
    const raw = await store.get('settings/mfa');
    return raw ? dec<{ required_roles: string[] }>(raw).required_roles : [];
  }

  /** Verifies a TOTP or recovery code and consumes it, atomically (a code works once). */
  async function useSecondFactor(u: UserRecord, input: LoginInput, k: KeyObject): Promise<boolean> {
    if (input.totp !== undefined) {
      const totp = u.totp;
      if (!totp) return false;
      const step = await verifyTotp(totp.secret, input.totp, clock.now(), totp.last_step);
      if (step === undefined) return false;
      return store.transaction(async (tx) => {
        const cur = await readUser(tx, u.id);
        // a concurrent login may have used this step (or a later one) first
        if (!cur?.totp || cur.totp.last_step >= step) return false;
        await tx.put(`user/${u.id}`, enc({ ...cur, totp: { ...cur.totp, last_step: step } }));
        return true;
      });
    }
    if (input.recovery_code !== undefined) {
      const h = codeHash(k, u.id, input.recovery_code);
      return store.transaction(async (tx) => {
        const cur = await readUser(tx, u.id);
        if (!cur?.totp) return false;
        let found = -1;
        // compare against every code, so the position of a match does not show in the timing
        for (const [i, c] of cur.recovery_codes.entries())
          if (constantTimeEqual(c, h) && found < 0) found = i;
        if (found < 0) return false;
        const rest = cur.recovery_codes.filter((_, i) => i !== found);
        await tx.put(`user/${u.id}`, enc({ ...cur, recovery_codes: rest }));
        return true;
      });
    }
    return false;
  }

  const self: UserStore = {
    async create(name, password, roles) {
      const n = normalizeUsername(name);
      const problem = passwordProblem(password, n);
      if (problem) throw new StrongroomError('validation_failed', problem);
      const checked = checkRoles(roles);
      const k = await key();
      const hash = await hashPassword(password);
      const now = iso();
      const user: UserRecord = {
        id: randomId(),
        name: n,
        roles: checked,
        password: hash,
        created_at: now,
        updated_at: now,
        password_changed_at: now,
        totp: null,
        totp_pending: null,
        recovery_codes: [],
      };
      await store.transaction(async (tx) => {
        const idx = `name/${nameKey(k, n)}`;
        if (await tx.get(idx))
          throw new StrongroomError('already_exists', `a user named ${JSON.stringify(n)} already exists`);
        await tx.put(`user/${user.id}`, enc(user));
        await tx.put(idx, Buffer.from(user.id));
      });
      return user;
    },

    async get(name) {
      return findByName(store, await key(), normalizeUsername(name));
    },

    getById: (id) => readUser(store, id),

    async list() {
      const out: UserRecord[] = [];
      for (const path of await store.list('user/')) {
        const u = await readUser(store, path.slice('user/'.length));
        if (u) out.push(u);
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    },

    async delete(name) {
      const n = normalizeUsername(name);
      const k = await key();
      return store.transaction(async (tx) => {
        const u = await findByName(tx, k, n);
        if (!u) throw noUser(n);
        await tx.delete(`user/${u.id}`);
        await tx.delete(`name/${nameKey(k, n)}`);
        return u;
      });
    },

    async setPassword(name, password) {
      const u = await byName(name);
      const problem = passwordProblem(password, u.name);
      if (problem) throw new StrongroomError('validation_failed', problem);
      const hash = await hashPassword(password);
      const next = await update(u.id, (cur) => ({
        ...cur,
        password: hash,
        password_changed_at: iso(),
        updated_at: iso(),
      }));
      // an admin setting a password is also how a locked-out user gets back in
      await lockout.clear(nameKey(await key(), u.name));
      return next;
    },

    async setRoles(name, roles) {
      const u = await byName(name);
      const checked = checkRoles(roles);
      let removed: string[] = [];
      const user = await update(u.id, (cur) => {
        removed = cur.roles.filter((r) => !checked.includes(r));
        return { ...cur, roles: checked, updated_at: iso() };
      });
      return { user, removed };
    },

    async resetMfa(name) {
      const u = await byName(name);
      return update(u.id, (cur) => ({
        ...cur,
        totp: null,
        totp_pending: null,
        recovery_codes: [],
        updated_at: iso(),
      }));
    },

    async authenticate(input) {
      let name: string | undefined;
      try {
        name = normalizeUsername(input.username);
      } catch {
        name = undefined;
      }
      const k = await key();
      const lockKey = name === undefined ? undefined : nameKey(k, name);
      // counted before the check; throws account_locked while locked (known and unknown names alike)
      const attempt = lockKey ? await lockout.begin(lockKey) : undefined;
      const user = name === undefined ? undefined : await findByName(store, k, name);
      // one argon2 run whether or not the user exists: same answer, same time
      const ok = await verifyPassword(input.password, user?.password ?? (await dummyHash()));
      if (!user || !ok) throw badLogin();

      let mfa = false;
      let enrollmentOnly = false;
      if (user.totp) {
        if (input.totp === undefined && input.recovery_code === undefined) {
          if (lockKey && attempt) await lockout.forgive(lockKey, attempt);
          throw new StrongroomError(
            'mfa_required',
            'this account uses two-factor authentication: send the 6-digit code from your authenticator app as "totp" (or a recovery code as "recovery_code")',
          );
        }
        if (!(await useSecondFactor(user, input, k))) {
          throw new StrongroomError(
            'invalid_credentials',
            'the one-time code is wrong, expired or was already used',
          );
        }
        mfa = true;
      } else {
        const required = (await requiredRoles()).filter((r) => user.roles.includes(r));
        if (required.length > 0) {
          if (!input.mfa_enrollment) {
            if (lockKey && attempt) await lockout.forgive(lockKey, attempt);
            throw new StrongroomError(
              'mfa_required',
              `the role ${required.join(', ')} requires two-factor authentication and this account has none enrolled: enrol a TOTP authenticator first (\`strongroom login --enroll-mfa\`, then \`strongroom user mfa enroll\`)`,
            );
          }
          enrollmentOnly = true;
        }
      }
      if (lockKey) await lockout.succeeded(lockKey);
      if (needsRehash(user.password)) {
        const fresh = await hashPassword(input.password);
        await update(user.id, (cur) => ({ ...cur, password: fresh }));
      }
      return { user, mfa, enrollment_only: enrollmentOnly };
    },

    async changeOwnPassword(id, current, next) {
      const u = await readUser(store, id);
      if (!u) throw new StrongroomError('not_found', 'the user no longer exists');
      const lockKey = nameKey(await key(), u.name);
      await lockout.begin(lockKey);
      if (!(await verifyPassword(current, u.password)))
        throw new StrongroomError('invalid_credentials', 'the current password is wrong');
      await lockout.succeeded(lockKey);
      const problem = passwordProblem(next, u.name);
      if (problem) throw new StrongroomError('validation_failed', problem);
      const hash = await hashPassword(next);
      return update(id, (cur) => ({ ...cur, password: hash, password_changed_at: iso(), updated_at: iso() }));
    },

    async enrollTotp(id) {
      const secret = newTotpSecret();
      const created = clock.now();
      const u = await update(id, (cur) => {
        if (cur.totp)
          throw new StrongroomError(
            'already_exists',
            'a TOTP authenticator is already enrolled; an admin can reset it with `strongroom user mfa reset NAME`',
          );
        return { ...cur, totp_pending: { secret, created_at: new Date(created).toISOString() } };
      });
      return {
        secret,
        otpauth_uri: totpUri(secret, u.name),
        expires_at: new Date(created + PENDING_TOTP_MS).toISOString(),
      };
    },

    async confirmTotp(id, code) {
      const u = await readUser(store, id);
      if (!u) throw new StrongroomError('not_found', 'the user no longer exists');
      if (u.totp) throw new StrongroomError('already_exists', 'a TOTP authenticator is already enrolled');
      const pending = u.totp_pending;
      if (!pending || Date.parse(pending.created_at) + PENDING_TOTP_MS < clock.now())
        throw new StrongroomError(
          'bad_request',
          'no TOTP enrolment is in progress (or it expired after 15 minutes): start one with `strongroom user mfa enroll`',
        );
      const step = await verifyTotp(pending.secret, code, clock.now());
      if (step === undefined)
        throw new StrongroomError(
          'invalid_credentials',
          'the code does not match: check the clock of the device running the authenticator app, and enter the current code',
        );
      const k = await key();
      const codes = Array.from({ length: RECOVERY_CODES }, newRecoveryCode);
      const now = iso();
      await update(id, (cur) => {
        if (cur.totp || cur.totp_pending?.secret !== pending.secret)
          throw new StrongroomError('cas_mismatch', 'the enrolment changed meanwhile: start again');
        return {
          ...cur,
          totp: { secret: pending.secret, confirmed_at: now, last_step: step },
          totp_pending: null,
          recovery_codes: codes.map((c) => codeHash(k, id, c)),
          updated_at: now,
        };
      });
      return codes;
    },

    requiredMfaRoles: requiredRoles,

    async setRequiredMfaRoles(roles) {
      const checked = checkRoles(roles);
      await store.put('settings/mfa', enc({ required_roles: checked }));
      return checked;
    },
  };
  return self;
}
