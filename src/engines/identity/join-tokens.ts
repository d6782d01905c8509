import * as api from '../../api/identity.ts';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import { implement } from '../../contract/operation.ts';
import { randomKey } from '../../crypto/random.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { identityResource, isoTime, ownSpiffeId, sha, ttlOf } from './inputs.ts';

/**
 * Join tokens: an admin's grant of one X.509-SVID to a new workload that has
 * no other credential yet. Only a digest is stored (`join/<sha256>`); a token
 * is consumed by the issuance it pays for (x509-svids.ts).
 */

export interface JoinRecord {
  spiffe_id: string;
  expires_at: string;
  created_by: string;
}

const PREFIX = 'join/';

const invalidJoinToken = () =>
  new StrongroomError('invalid_join_token', 'the join token is unknown, used or expired: ask for a new one');

/** Where a join token's record is kept; a malformed token is refused as unknown. */
export function joinTokenPath(token: string): string {
  if (!/^srj_[A-Za-z0-9_-]{43}$/.test(token)) throw invalidJoinToken();
  return `${PREFIX}${sha(token)}`;
}

/** The record of an unused, unexpired join token, else refused as unknown. */
export async function liveJoinToken(store: BarrierStore, clock: Clock, path: string): Promise<JoinRecord> {
  const rec = await store.getJson<JoinRecord>(path);
  if (!rec || Date.parse(rec.expires_at) <= clock.now()) throw invalidJoinToken();
  return rec;
}

/** Consumes a join token in one transaction: of two concurrent uses, exactly one succeeds. */
export async function consumeJoinToken(store: BarrierStore, path: string): Promise<void> {
  const consumed = await store.transaction(async (tx: BarrierWriter) => {
    if (!(await tx.get(path))) return false;
    await tx.delete(path);
    return true;
  });
  if (!consumed) throw invalidJoinToken();
}

/** Paths of every stored join token (listed before a transaction that may delete some). */
export const joinTokenPaths = (store: BarrierStore) => store.list(PREFIX);

/** Deletes, within `tx`, the join tokens among `paths` that are for `spiffeId`. */
export async function deleteJoinTokensFor(
  tx: BarrierWriter,
  paths: string[],
  spiffeId: string,
): Promise<void> {
  for (const p of paths) {
    const j = await tx.getJson<JoinRecord>(p);
    if (j?.spiffe_id === spiffeId) await tx.delete(p);
  }
}

/** `identity.join-token.create`: a token shown once, for one SVID of an ID of this trust domain. */
export function joinTokenOperation(deps: { store: BarrierStore; clock: Clock; trustDomain: string }) {
  const { store, clock, trustDomain } = deps;
  const joinToken = implement(api.IdentityJoinTokenCreate, {
    action: 'identity.register',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id),
    async handle(ctx, i) {
      const id = ownSpiffeId(i.spiffe_id, trustDomain);
      const ttl = ttlOf(i.ttl, 600, 7 * 86400, 'ttl');
      const token = `srj_${randomKey(32).toString('base64url')}`;
      const rec: JoinRecord = {
        spiffe_id: id.toString(),
        expires_at: isoTime(clock.now() + ttl * 1000),
        created_by: ctx.identity?.display_name ?? 'unknown',
      };
      // only a digest is stored: the token is shown once, here
      await store.put(`${PREFIX}${sha(token)}`, Buffer.from(JSON.stringify(rec)));
      return { join_token: token, spiffe_id: rec.spiffe_id, expires_at: rec.expires_at };
    },
  });
  return { joinToken };
}
