import { createHash, hash } from 'node:crypto';

/**
 * The audit log format (docs/audit.md). Every line of a log is one JSON object
 * that starts with `seq` and `prev`:
 *
 *   {"seq":1,"prev":"<genesis>","type":"request",...}
 *   {"seq":2,"prev":"<sha256 of line 1>","type":"response",...}
 *   {"seq":3,"prev":"<sha256 of line 2>","type":"checkpoint","chain_head":"<same as prev>",...,"signature":"..."}
 *
 * `prev` is the hex SHA-256 of the previous line's exact bytes (without its
 * newline); the first line of a file links to GENESIS_HASH. A checkpoint signs
 * (Ed25519) its own line, which holds its seq and the chain head: that
 * transitively covers every line before it.
 *
 * The CLI verifier (src/cli/audit.ts) cannot import this layer, so it carries
 * its own copy of GENESIS_HASH and checkpointMessage(); a test keeps them equal.
 */

import type { AuditEntry } from '../contract/audit.ts';

export type { AuditEntry } from '../contract/audit.ts';

/** Why a checkpoint was written. */
export type CheckpointReason = 'count' | 'interval' | 'shutdown' | 'seal' | 'rotate' | 'manual';

/** A signed checkpoint line. */
export interface CheckpointLine {
  seq: number;
  prev: string;
  type: 'checkpoint';
  /** Hash of the line before this one (equal to `prev`): what the signature covers. */
  chain_head: string;
  reason: CheckpointReason;
  signed_at: string;
  /** Hex SHA-256 (first 16 bytes) of the signing key's DER SubjectPublicKeyInfo. */
  key_id: string;
  /** Base64 Ed25519 signature of checkpointMessage(the line without this member); always the last member. */
  signature: string;
}

/** A chained entry line as stored. */
export type AuditLine = { seq: number; prev: string } & AuditEntry;

/** `prev` of the first line of every log file: SHA-256 of this fixed label. */
export const GENESIS_HASH = createHash('sha256').update('strongroom-audit-log-v1').digest('hex');

/** Hex SHA-256 of a line's exact bytes (without the newline). */
export function lineHash(line: string | Uint8Array): string {
  // the one-shot hash for the hot path (a line per entry); a Uint8Array view is hashed as its bytes
  return typeof line === 'string' || Buffer.isBuffer(line)
    ? hash('sha256', line, 'hex')
    : createHash('sha256').update(line).digest('hex');
}

/**
 * The exact bytes a checkpoint signature covers: a domain label, then the
 * checkpoint line as written minus its final `signature` member, i.e. every
 * byte of the line except the signature itself.
 */
export function checkpointMessage(unsignedJson: string): Buffer {
  return Buffer.from(`strongroom-audit-checkpoint-v1\n${unsignedJson}`);
}

/** Appends the signature as the last member of the checkpoint object. */
export function withSignature(unsignedJson: string, signature: Uint8Array): string {
  return `${unsignedJson.slice(0, -1)},"signature":"${Buffer.from(signature).toString('base64')}"}`;
}
