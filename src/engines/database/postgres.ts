import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { StrongroomError } from '../../errors/errors.ts';

/**
 * The PostgreSQL side of dynamic credentials: connections as the configured admin role, roles made
 * and ended from SQL templates. Role names come from lease keys (`sr_<24 hex>`), so a crash can be
 * reconciled from the database alone: a role of that form no lease holds is dropped.
 */

export interface Connection {
  connection_url: string;
  username: string;
  password: string;
  max_open_connections: number;
}

/**
 * A connection's own prefix for the roles it makes (`sr_<8 hex>_`), fixed when it is first written:
 * two vaults (or two connections) on one PostgreSQL server never take each other's roles for theirs.
 */
export const newRolePrefix = () => `sr_${randomBytes(4).toString('hex')}_`;
const PREFIX_RE = /^sr_[0-9a-f]{8}_$/;
export const roleNameOf = (prefix: string, leaseKey: string) => `${prefix}${leaseKey}`;
export const leaseKeyOf = (prefix: string, role: string) =>
  role.startsWith(prefix) && /^[0-9a-f]{24}$/.test(role.slice(prefix.length))
    ? role.slice(prefix.length)
    : undefined;

/**
 * A password of letters and digits only: no quote, backslash, dash or slash can reach the SQL, so even
 * a template whose quoting the renderer misreads (a comment, a dollar quote) cannot be broken out of.
 */
export const newPassword = () => randomBytes(24).toString('hex');

/** `2026-12-07 19:00:00+00`: PostgreSQL's timestamptz input. */
export const pgTime = (ms: number) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}+00`;

/**
 * Ending a role starts with what cannot be undone by what the role did: no more logins, committed on
 * its own, then its sessions ended. Only then the revocation statements (default: drop what it owns
 * here, drop it) run in one transaction: if they fail (the role made objects elsewhere that depend on
 * it, say), the role is still unable to log in, and the lease stays `revoking` to be retried.
 */
const DISABLE_ROLE = [
  'ALTER ROLE {{name}} NOLOGIN',
  'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {{username}}',
];
export const DEFAULT_REVOCATION = ['DROP OWNED BY {{name}}', 'DROP ROLE IF EXISTS {{name}}'];
export const DEFAULT_RENEW = ['ALTER ROLE {{name}} VALID UNTIL {{expiration}}'];

const ANY_PLACEHOLDER = /\{\{\s*([^}]*)\s*\}\}/g;

/** Placeholders a statement uses that the engine does not know (checked when a role is written). */
export function unknownPlaceholders(statement: string): string[] {
  const out: string[] = [];
  for (const m of statement.matchAll(ANY_PLACEHOLDER)) {
    if (!/^(name|username|password|expiration|tenant)$/.test(m[1]!.trim())) out.push(m[1]!.trim());
  }
  return out;
}

/**
 * Puts the values into a template. Where a placeholder stands bare, `{{name}}` goes in as a quoted
 * identifier and the others as quoted literals; inside the template's own quotes ('{{password}}',
 * "t_{{tenant}}") the value goes in as it is, which is safe because no value may hold a quote, a
 * backslash or NUL (generated values never do; a tenant is checked).
 */
export function render(statement: string, v: Record<string, string | undefined>): string {
  let out = '';
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < statement.length; ) {
    const ch = statement[i]!;
    if (ch === '{' && statement[i + 1] === '{') {
      const end = statement.indexOf('}}', i + 2);
      const key = end < 0 ? '' : statement.slice(i + 2, end).trim();
      if (/^(name|username|password|expiration|tenant)$/.test(key)) {
        const value = v[key];
        if (value === undefined) {
          throw new StrongroomError(
            'invalid_value',
            `the statement uses {{${key}}}, which has no value here`,
          );
        }
        if (/['"\\\0]/.test(value)) {
          throw new StrongroomError('invalid_value', `the value of {{${key}}} may not hold quotes`);
        }
        out += quote ? value : key === 'name' ? pg.escapeIdentifier(value) : pg.escapeLiteral(value);
        i = end + 2;
        continue;
      }
    }
    if (quote === undefined && (ch === "'" || ch === '"')) quote = ch;
    else if (ch === quote) quote = undefined; // a doubled quote closes and reopens: the same state after both
    out += ch;
    i++;
  }
  return out;
}

/** A failure that another try may not meet: concurrent catalog updates, deadlocks, serialization. */
function transient(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e.code === '40001' ||
    e.code === '40P01' ||
    e.code === '55P03' ||
    (e.code === 'XX000' && /tuple concurrently (updated|deleted)/.test(e.message ?? ''))
  );
}

/** A message from the database with the values that must never leave it taken out. */
function sanitize(err: unknown, secrets: readonly string[]): string {
  let m = err instanceof Error ? err.message : String(err);
  for (const s of secrets) if (s) m = m.split(s).join('[redacted]');
  return m.slice(0, 300);
}

export interface PostgresPlugin {
  /** Runs statements in one transaction as the admin role. */
  run(statements: readonly string[], secrets: readonly string[]): Promise<void>;
  /** Ends a role: login off and sessions ended (each committed on its own), then `statements` in one transaction. */
  endRole(name: string, statements: readonly string[]): Promise<void>;
  /** The leased roles of `prefix` that exist. */
  leasedRoles(prefix: string): Promise<string[]>;
  /** Checks the connection (SELECT 1). */
  verify(): Promise<void>;
  close(): Promise<void>;
}

export function postgresPlugin(c: Connection): PostgresPlugin {
  const pool = new pg.Pool({
    connectionString: c.connection_url,
    user: c.username,
    password: c.password,
    max: c.max_open_connections,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
  });
  // an idle client that loses its server must not take the process down
  pool.on('error', () => {});
  const unavailable = (err: unknown, secrets: readonly string[]) =>
    new StrongroomError(
      'backend_unavailable',
      `the database refused: ${sanitize(err, [c.password, ...secrets])}`,
    );

  /** One attempt: the statements in one transaction, rolled back on any error. */
  async function once(statements: readonly string[], secrets: readonly string[]): Promise<unknown> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw unavailable(err, secrets);
    }
    try {
      await client.query('BEGIN');
      for (const s of statements) await client.query(s);
      await client.query('COMMIT');
      return undefined;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      return err;
    } finally {
      client.release();
    }
  }

  return {
    async run(statements, secrets) {
      // roles made and dropped at once race on the same catalog rows (a tenant role's members): PostgreSQL
      // answers `tuple concurrently updated`, a deadlock or a serialization failure, and the transaction
      // (rolled back whole) is simply run again
      for (let attempt = 1; ; attempt++) {
        const err = await once(statements, secrets);
        if (err === undefined) return;
        if (attempt >= 6 || !transient(err)) throw unavailable(err, secrets);
        await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20 * attempt));
      }
    },
    async endRole(name, statements) {
      for (const s of DISABLE_ROLE) await this.run([render(s, { name, username: name })], []);
      await this.run(
        statements.map((x) => render(x, { name, username: name })),
        [],
      );
    },
    async leasedRoles(prefix) {
      if (!PREFIX_RE.test(prefix)) throw new TypeError('not a role prefix');
      try {
        const r = await pool.query<{ rolname: string }>(
          'SELECT rolname FROM pg_roles WHERE rolname ~ $1 ORDER BY rolname',
          [`^${prefix}[0-9a-f]{24}$`],
        );
        return r.rows.map((x) => x.rolname);
      } catch (err) {
        throw unavailable(err, []);
      }
    },
    async verify() {
      try {
        await pool.query('SELECT 1');
      } catch (err) {
        throw unavailable(err, []);
      }
    },
    close: () => pool.end().catch(() => {}),
  };
}
