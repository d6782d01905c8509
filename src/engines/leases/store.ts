import { createHash } from 'node:crypto';
import type { BarrierReader, BarrierWriter } from '../../barrier/barrier.ts';
import type { AuditEntry } from '../../contract/audit.ts';
import type { OperationContext } from '../../contract/operation.ts';

/**
 * How leases are kept in their mount (`sys/leases/`), paged and indexed so that nothing is read into
 * memory at start and a pass reads only what is due:
 *
 *   l/<key>                          the lease record (key: the random last segment of its id)
 *   i/<lease id>                     by id (list and revoke by prefix), value: the key
 *   x/<minute>/<ms>-<key>            by expiry: a pass lists only the minutes up to now
 *   o/<holder>/<key>                 by holder token (a hash of its reference), to end them with it
 *   c/<key>                          being created: intent written, credential not yet confirmed
 *   b/<engine>                       a backend's backoff after failed revocations
 *   sweeper                          the cluster's sweeper lease and the expiry cursor
 */

export interface LeaseRecord {
  id: string;
  key: string;
  /** The backend that made the credential and revokes it ('database', 'checkout', ...). */
  engine: string;
  /** What in the engine it was issued for, e.g. `creds/rag-reader`. */
  role: string;
  issued_at: string;
  expires_at: string;
  max_expires_at: string;
  /** Seconds the lease was issued (and is renewed) for by default. */
  ttl: number;
  renewable: boolean;
  state: 'creating' | 'active' | 'revoking';
  holder: {
    /** The token's accessor, or the workload's SPIFFE ID (display and audit). */
    accessor: string;
    /** tokens.refOf() of the holder token: checked to end the lease with it. Absent for workloads. */
    ref?: string;
  };
  /** The backend's handle on the credential (a role name, a key id): never a secret. */
  data: Record<string, unknown>;
  last_renewed_at: string | null;
  /** Its expiry index entry (`x/<minute>/…`): the minute may be later than its due time (see putLease). */
  index?: string;
  revoke_attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
}

const LEASE_KEY = /^[0-9a-f]{24}$/;
const MINUTE = 60_000;
export const SWEEPER = 'sweeper';

export const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
export const iso = (ms: number) => new Date(ms).toISOString();
const pad = (n: number, w: number) => String(n).padStart(w, '0');

export const leasePath = (key: string) => `l/${key}`;
const idPath = (id: string) => `i/${id}`;
export const creatingPath = (key: string) => `c/${key}`;
export const backoffPath = (key: string) => `b/${key}`;
export const minuteOf = (ms: number) => Math.floor(ms / MINUTE);
export const minutePrefix = (minute: number) => `x/${pad(minute, 10)}/`;
const expiryPath = (ms: number, key: string) => `${minutePrefix(minuteOf(ms))}${pad(ms, 14)}-${key}`;
/** A holder's index segment: a hash of the token reference (paths are stored in clear; the reference is not). */
export const holderSegment = (l: Pick<LeaseRecord, 'holder'>) =>
  createHash('sha256')
    .update(l.holder.ref ?? `workload:${l.holder.accessor}`)
    .digest('hex')
    .slice(0, 32);
const holderPath = (l: Pick<LeaseRecord, 'holder' | 'key'>) => `o/${holderSegment(l)}/${l.key}`;

/** The key (random last segment) of a lease id, if it is well formed. */
function keyOf(id: string): string | undefined {
  const k = id.slice(id.lastIndexOf('/') + 1);
  return LEASE_KEY.test(k) ? k : undefined;
}

/** The expiry index entry's parts: when, and which lease. */
export function parseExpiry(path: string): { ms: number; key: string } | undefined {
  const m = /^x\/\d{10}\/(\d{14})-([0-9a-f]{24})$/.exec(path);
  return m ? { ms: Number(m[1]), key: m[2]! } : undefined;
}

export async function readLease(r: BarrierReader, id: string): Promise<LeaseRecord | undefined> {
  const key = keyOf(id);
  if (!key) return undefined;
  const l = await r.getJson<LeaseRecord>(leasePath(key));
  return l && l.id === id ? structuredClone(l) : undefined;
}

/** When a pass next looks at a lease: its expiry, or the next attempt of a revocation that failed. */
const dueOf = (l: Pick<LeaseRecord, 'expires_at' | 'next_attempt_at'>) =>
  Date.parse(l.next_attempt_at ?? l.expires_at);

const indexOf = (l: LeaseRecord) => l.index ?? expiryPath(dueOf(l), l.key);

/**
 * Every record of a lease, written together (its record and its indexes); `before`: the lease as stored.
 * The expiry entry goes in the minute it is due, or in the sweeper's cursor minute when that is later:
 * a server whose clock is behind the sweeper's (or a clock stepped back) would otherwise file it in a
 * minute the sweeper has already passed, and it would never end.
 */
export async function putLease(tx: BarrierWriter, l: LeaseRecord, before?: LeaseRecord): Promise<void> {
  const cursor = (await tx.getJson<{ cursor?: number }>(SWEEPER))?.cursor ?? 0;
  const due = dueOf(l);
  const index = `${minutePrefix(Math.max(minuteOf(due), cursor))}${pad(due, 14)}-${l.key}`;
  if (before && indexOf(before) !== index) await tx.delete(indexOf(before));
  l.index = index;
  await tx.put(leasePath(l.key), enc(l));
  await tx.put(idPath(l.id), enc(l.key));
  await tx.put(index, enc({ engine: l.engine }));
  await tx.put(holderPath(l), enc(1));
}

/** Removes a lease and every index entry naming it. */
export async function dropLease(tx: BarrierWriter, l: LeaseRecord): Promise<void> {
  await tx.delete(leasePath(l.key));
  await tx.delete(idPath(l.id));
  await tx.delete(indexOf(l));
  await tx.delete(holderPath(l));
  await tx.delete(creatingPath(l.key));
}

/** What makes and ends the credentials of one engine's leases. */
export interface LeaseBackend {
  readonly engine: string;
  /** Ends the lease's credential. Idempotent: a credential already gone is success. */
  revoke(lease: Readonly<LeaseRecord>): Promise<void>;
  /**
   * What fails and backs off together (a database connection): a backend that is down delays only its
   * own leases. Default: the whole engine.
   */
  backoffKey?(lease: Readonly<LeaseRecord>): string | undefined;
  /** Moves the credential's own expiry, where the backend keeps one (PostgreSQL's VALID UNTIL). */

  renew?(lease: Readonly<LeaseRecord>, expiresAt: number): Promise<void>;
  /**
   * After a crash: ends the credentials this backend made that no lease holds (named from lease keys;
   * `held(key)` says whether a lease of that key exists). Returns how many it ended.
   */
  reconcile?(held: (key: string) => Promise<boolean>): Promise<number>;
}

export interface IssueRequest {
  engine: string;
  /** What in the engine it is for, e.g. `creds/rag-reader` (the id is `<engine>/<role>/<key>`). */
  role: string;
  /** Seconds. */
  ttl: number;
  /** Seconds: the latest a renewal may reach, from issue. */
  maxTtl: number;
  renewable: boolean;
  /** The caller: the lease is held by its token (and ends with it) or by its workload identity. */
  ctx: OperationContext;
  /**
   * What the backend needs to end the credential, known before it is made (which connection, which
   * role): kept with the intent, so a lease a crash left half-made can still be revoked.
   */
  data?: Record<string, unknown>;
}

export type RevokeOutcome = 'revoked' | 'forced' | 'pending';

export interface SweepReport {
  expired: number;
  failed: number;
  holderGone: number;
  abandoned: number;
  reconciled: number;
}

export interface LeaseManager {
  register(backend: LeaseBackend): void;
  /**
   * Issues a lease: its intent is durable before `create` makes the credential (named from
   * `lease.key`), and it is active once `create` returned. A failed `create` is revoked at once; a
   * crash in between leaves an intent the sweeper ends (`abandoned`).
   */
  issue<T>(
    req: IssueRequest,
    create: (lease: Readonly<LeaseRecord>) => Promise<{ data?: Record<string, unknown>; result: T }>,
  ): Promise<{ lease: LeaseRecord; result: T }>;
  get(id: string): Promise<LeaseRecord | undefined>;
  /** Refuses (409 `in_use`) while any lease lives under `prefix`: what their revocation needs must stay. */
  refuseWhileLeased(prefix: string, what: string): Promise<void>;
  /** Whether the caller holds `lease`: the same token (by its reference), or the same workload. */
  heldBy(lease: Readonly<LeaseRecord> | undefined, ctx: OperationContext): boolean;
  renew(lease: LeaseRecord, incrementS: number | undefined): Promise<LeaseRecord>;
  revoke(
    lease: LeaseRecord,
    opts: { force?: boolean; reason: string; actor?: AuditEntry['actor'] },
  ): Promise<RevokeOutcome>;
  /** Ids under `prefix` in order, after `after`, at most `limit`. */
  ids(prefix: string, after: string | undefined, limit: number): Promise<string[]>;
  /** One pass of the cluster's sweeper (tests drive it; the timer runs it while unsealed). */
  sweep(): Promise<SweepReport>;
  /** The holder tokens were revoked somewhere: check them at the next pass. */
  holdersChanged(): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface LeaseOptions {
  /** How often the sweeper runs (ms, default 250; 0: only when called). */
  sweep_interval_ms?: number | undefined;
  /** Leases revoked per pass at most (default 200). */
  batch?: number | undefined;
  /** This server's name in the cluster's sweeper lease (default a random one). */
  holder_id?: string | undefined;
  /** Live leases one holder (a token, a workload) may hold at once (default 1,000): no caller fills the store. */
  max_per_holder?: number | undefined;
}

/** A backend that failed waits 1 s, 2 s, 4 s ... at most 5 minutes before the next attempt. */
export const backoffMs = (attempts: number) => Math.min(300_000, 1000 * 2 ** Math.min(attempts - 1, 16));

/** An error's message without anything that could be a credential, for records and audit. */
export function safeMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.replace(/[A-Za-z0-9_+/=-]{24,}/g, '[redacted]').slice(0, 300);
}
