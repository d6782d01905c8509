import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type AuditLogEntry, auditHash, auditQuery } from '../sdk/audit.ts';
import { type CliIO, clientFor, formatOf, parsePositiveInt, timeBoundOption, UsageError } from './context.ts';
import { readSecretInput } from './input.ts';
import { kv, print, table } from './output.ts';

// The audit log format (docs/audit.md). This verifier is written against the
// documented format: the CLI may not import the audit layer, so the genesis
// hash and the checkpoint message are restated here, and
// src/audit/verify.test.ts checks that both sides agree.
export const GENESIS_HASH = createHash('sha256').update('strongroom-audit-log-v1').digest('hex');

/** What a checkpoint's signature covers: a label, then the line without its final `signature` member. */
export function checkpointMessage(unsignedJson: string): Buffer {
  return Buffer.from(`strongroom-audit-checkpoint-v1\n${unsignedJson}`);
}

const SIGNATURE_MEMBER = /,"signature":"([A-Za-z0-9+/]+={0,2})"\}$/;
const CHECKPOINT_KEYS = 'seq,prev,type,chain_head,reason,signed_at,key_id,signature';

export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 32);
}

export type VerifyProblemKind =
  | 'malformed'
  | 'edited'
  | 'removed'
  | 'reordered'
  | 'truncated'
  | 'bad_signature'
  | 'no_public_key'
  | 'uncovered';

export interface VerifyProblem {
  /** 1-based line number of the first bad entry. */
  line: number;
  /** Its seq, when it has one. */
  seq: number | null;
  kind: VerifyProblemKind;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  file: string;
  lines: number;
  entries: number;
  checkpoints: number;
  last_checkpoint: { line: number; seq: number; signed_at: string; reason: string } | null;
  /** Entries after the last checkpoint: not covered by any signature. */
  uncovered: number;
  /** Keys that signed the checkpoints. */
  key_ids: string[];
  problem: VerifyProblem | null;
  warnings: string[];
}

export interface VerifyOptions {
  /** PEM text with one or more public keys (default: FILE.pub next to the log). */
  publicKeys?: string;
  /**
   * The log is still being written: entries after the last checkpoint and a
   * half-written last line are reported as warnings, not failures.
   */
  live?: boolean;
}

/** Parses every `PUBLIC KEY` PEM block, by key id. */
function parsePublicKeys(pem: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const m of pem.matchAll(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g)) {
    const k = createPublicKey(m[0]);
    keys.set(keyIdOf(k), k);
  }
  return keys;
}

interface Line {
  bytes: Buffer;
  /** Ended by a newline. */
  terminated: boolean;
}

/** The lines of a file with their exact bytes, streamed. */
async function* readLines(path: string): AsyncGenerator<Line> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    let buf = rest.byteLength === 0 ? (chunk as Buffer) : Buffer.concat([rest, chunk as Buffer]);
    let i = buf.indexOf(0x0a);
    while (i >= 0) {
      yield { bytes: buf.subarray(0, i), terminated: true };
      buf = buf.subarray(i + 1);
      i = buf.indexOf(0x0a);
    }
    rest = Buffer.from(buf);
  }
  if (rest.byteLength > 0) yield { bytes: rest, terminated: false };
}

const HEX64 = /^[0-9a-f]{64}$/;
const LOOKAHEAD = 1000;

function seqOf(line: Line): number | undefined {
  try {
    const s = (JSON.parse(line.bytes.toString('utf8')) as { seq?: unknown }).seq;
    return Number.isSafeInteger(s) ? (s as number) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies an audit log: seq continuity, every `prev` link, every checkpoint
 * signature and that the end of the file is covered by a checkpoint. Stops at
 * the first bad entry and says what is wrong with it.
 */
// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one pass over the file: every check shares the running chain state (seq, previous hash, checkpoint coverage)
export async function verifyAuditFile(path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  let pem = opts.publicKeys;
  if (pem === undefined) {
    try {
      pem = await readFile(`${path}.pub`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  const keys = pem === undefined ? new Map<string, KeyObject>() : parsePublicKeys(pem);
  const report: VerifyReport = {
    ok: false,
    file: path,
    lines: 0,
    entries: 0,
    checkpoints: 0,
    last_checkpoint: null,
    uncovered: 0,
    key_ids: [],
    problem: null,
    warnings: [],
  };
  const fail = (line: number, seq: number | null, kind: VerifyProblemKind, message: string) => {
    report.problem = { line, seq, kind, message };
    return report;
  };

  const source = readLines(path)[Symbol.asyncIterator]();
  const ahead: Line[] = [];
  const fill = async (n: number) => {
    while (ahead.length < n) {
      const r = await source.next();
      if (r.done) return;
      ahead.push(r.value);
    }
  };

  let prevHash = GENESIS_HASH;
  let prevSeq = 0;
  let firstUncovered: { line: number; seq: number } | undefined;
  let n = 0;
  while (true) {
    await fill(1);
    const cur = ahead.shift();
    if (!cur) break;
    n += 1;
    if (!cur.terminated) {
      if (opts.live) {
        report.warnings.push(`line ${n} is still being written (no newline yet); it was not checked`);
        break;
      }
      return fail(
        n,
        seqOf(cur) ?? null,
        'truncated',
        `line ${n} is incomplete (no newline at its end): the file was cut off in the middle of a line`,
      );
    }
    report.lines = n;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(cur.bytes.toString('utf8'));
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new TypeError('not an object');
    } catch {
      return fail(n, null, 'malformed', `line ${n} is not a JSON object: it was edited or corrupted`);
    }
    const seq = e.seq;
    const prev = e.prev;
    if (!Number.isSafeInteger(seq) || (seq as number) < 1 || typeof prev !== 'string' || !HEX64.test(prev)) {
      return fail(n, null, 'malformed', `line ${n} has no valid seq and prev: it was edited or corrupted`);
    }
    const s = seq as number;
    const expected = prevSeq + 1;
    if (s !== expected) {
      if (prev === prevHash) {
        return fail(
          n,
          s,
          'edited',
          `line ${n} has seq ${s} where ${expected} was expected, yet it links to the line before it: its seq was edited`,
        );
      }
      if (s > expected) {
        await fill(LOOKAHEAD);
        const later = ahead.findIndex((l) => seqOf(l) === expected);
        if (later >= 0) {
          return fail(
            n,
            s,
            'reordered',
            `line ${n} has seq ${s}, but seq ${expected} comes after it (line ${n + later + 1}): entries were reordered`,
          );
        }
        const missing = s - expected === 1 ? `seq ${expected} is` : `seq ${expected} to ${s - 1} are`;
        return fail(
          n,
          s,
          'removed',
          expected === 1
            ? `the file starts at seq ${s}: the first ${s - 1} entries were removed`
            : `entry ${missing} missing before line ${n} (seq ${s}): entries were removed`,
        );
      }
      return fail(
        n,
        s,
        'reordered',
        `line ${n} has seq ${s} after seq ${prevSeq}: entries were reordered or a line was copied`,
      );
    }
    if (prev !== prevHash) {
      if (n === 1) {
        return fail(
          1,
          s,
          'edited',
          'line 1 does not link to the start of the chain: it was edited, or the start of the file was replaced',
        );
      }
      return fail(
        n - 1,
        prevSeq,
        'edited',
        `line ${n - 1} (seq ${prevSeq}) was changed after it was written: its hash no longer matches the prev recorded in line ${n} (or that prev was edited)`,
      );
    }
    if (e.type === 'checkpoint') {
      const { chain_head, signed_at, key_id, reason } = e;
      const text = cur.bytes.toString('utf8');
      const sig = SIGNATURE_MEMBER.exec(text);
      if (
        !sig ||
        Object.keys(e).join(',') !== CHECKPOINT_KEYS ||
        chain_head !== prev ||
        typeof signed_at !== 'string' ||
        typeof key_id !== 'string' ||
        typeof reason !== 'string'
      ) {
        return fail(
          n,
          s,
          'edited',
          `line ${n} (checkpoint seq ${s}) is malformed or does not name the chain head before it: it was edited`,
        );
      }
      if (keys.size === 0) {
        return fail(
          n,
          s,
          'no_public_key',
          `line ${n} is a signed checkpoint, but there is no public key to check it: pass --public-key FILE (or keep ${path}.pub)`,
        );
      }
      const key = keys.get(key_id);
      if (!key) {
        return fail(
          n,
          s,
          'bad_signature',
          `line ${n} (checkpoint seq ${s}) is signed by key ${key_id}, which is not among the public keys given: the checkpoint or the key file was replaced`,
        );
      }
      let good = false;
      try {
        const unsigned = `${text.slice(0, sig.index)}}`;
        good = verify(null, checkpointMessage(unsigned), key, Buffer.from(sig[1]!, 'base64'));
      } catch {
        good = false;
      }
      if (!good) {
        return fail(
          n,
          s,
          'bad_signature',
          `line ${n} (checkpoint seq ${s}): the signature does not verify: the checkpoint was edited`,
        );
      }
      report.checkpoints += 1;
      if (!report.key_ids.includes(key_id)) report.key_ids.push(key_id);
      report.last_checkpoint = { line: n, seq: s, signed_at, reason };
      report.uncovered = 0;
      firstUncovered = undefined;
    } else {
      report.entries += 1;
      report.uncovered += 1;
      firstUncovered ??= { line: n, seq: s };
    }
    prevHash = createHash('sha256').update(cur.bytes).digest('hex');
    prevSeq = s;
  }

  if (report.uncovered > 0 && firstUncovered) {
    const where = report.last_checkpoint
      ? `after the last checkpoint (line ${report.last_checkpoint.line}, seq ${report.last_checkpoint.seq})`
      : 'in the file (it has no checkpoint)';
    const message = `${report.uncovered} ${report.uncovered === 1 ? 'entry' : 'entries'} ${where} ${report.uncovered === 1 ? 'is' : 'are'} not covered by a signature`;
    if (opts.live) {
      report.warnings.push(`${message}: a checkpoint will cover them`);
    } else {
      return fail(
        firstUncovered.line,
        firstUncovered.seq,
        'uncovered',
        `${message}: the end of the file may have been truncated, or the server did not shut down cleanly (use --live for a log still being written)`,
      );
    }
  }
  if (report.lines === 0) report.warnings.push('the file is empty');
  report.ok = true;
  return report;
}

function outcome(e: AuditLogEntry): string {
  if (e.type === 'request') {
    if (!e.decision) return '';
    return e.decision.allowed ? 'allowed' : `denied (${e.decision.reason})`;
  }
  return e.status === 'error' ? `error ${e.error_code ?? ''}`.trim() : (e.status ?? '');
}

export function auditCommands(program: Command, io: CliIO): void {
  const a = program
    .command('audit')
    .description('verify the tamper-evident audit log, search it, and hash values to search for');

  a.command('verify')
    .argument('<file>', 'an audit log file (JSON lines)')
    .option('--public-key <pem-file>', 'the checkpoint verification key (default: FILE.pub)')
    .option('--live', 'the log is still being written: entries after the last checkpoint are only a warning')
    .description(
      'check the hash chain and the signed checkpoints of an audit file (offline: no server needed); exits 1 at the first bad entry',
    )
    .action(async (file: string, o: { publicKey?: string; live?: boolean }, cmd: Command) => {
      const format = formatOf(cmd);
      const publicKeys = o.publicKey === undefined ? undefined : await readFile(o.publicKey, 'utf8');
      if (publicKeys !== undefined && parsePublicKeys(publicKeys).size === 0)
        throw new UsageError(`${o.publicKey} holds no PEM public key`);
      const r = await verifyAuditFile(file, {
        ...(publicKeys === undefined ? {} : { publicKeys }),
        ...(o.live ? { live: true } : {}),
      });
      if (format === 'json') {
        io.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else if (r.problem) {
        const p = r.problem;
        io.stdout.write(
          `FAILED  ${file}\n${table([
            ['First bad entry', `line ${p.line}${p.seq === null ? '' : ` (seq ${p.seq})`}`],
            ['Problem', p.kind],
            ['Detail', p.message],
          ])}`,
        );
      } else {
        const lc = r.last_checkpoint;
        io.stdout.write(
          `OK  ${file}\n${table(
            kv({
              Lines: `${r.lines} (${r.entries} entries, ${r.checkpoints} checkpoints)`,
              Chain: r.lines === 0 ? 'empty' : `intact, seq 1 to ${r.lines}`,
              Signatures: `${r.checkpoints} valid${r.key_ids.length ? ` (key ${r.key_ids.join(', ')})` : ''}`,
              'Last checkpoint': lc
                ? `line ${lc.line}, seq ${lc.seq}, ${lc.signed_at} (${lc.reason})`
                : 'none',
              Uncovered: `${r.uncovered} entries after the last checkpoint`,
            }),
          )}`,
        );
        for (const w of r.warnings) io.stderr.write(`warning: ${w}\n`);
      }
      if (r.problem) {
        throw new Error(
          `the audit log failed verification at line ${r.problem.line}: ${r.problem.kind.replace('_', ' ')}`,
        );
      }
    });

  a.command('query')
    .option('--actor <who>', 'user id, app client id, token accessor or display name')
    .option('--action <action>', 'an action (secret.read) or a prefix (secret.*)')
    .option('--request-id <id>', 'the entries of one request')
    .option('--since <when>', 'a duration before now (15m, 1h, 7d) or an ISO time')
    .option('--until <when>', 'a duration before now or an ISO time')
    .option('--limit <n>', 'at most this many entries, the newest (default 100, at most 1000)')
    .description("search the server's audit log (needs the audit.read permission, e.g. the auditor role)")
    .action(
      async (
        o: {
          actor?: string;
          action?: string;
          requestId?: string;
          since?: string;
          until?: string;
          limit?: string;
        },
        cmd: Command,
      ) => {
        const limit = o.limit === undefined ? undefined : parsePositiveInt('--limit', o.limit);
        if (limit !== undefined && limit > 1000) throw new UsageError('--limit is at most 1000');
        const since = timeBoundOption('--since', o.since);
        const until = timeBoundOption('--until', o.until);
        const r = await auditQuery(clientFor(io, cmd).request, {
          ...(o.actor === undefined ? {} : { actor: o.actor }),
          ...(o.action === undefined ? {} : { action: o.action }),
          ...(o.requestId === undefined ? {} : { request_id: o.requestId }),
          ...(since === undefined ? {} : { since }),
          ...(until === undefined ? {} : { until }),
          ...(limit === undefined ? {} : { limit }),
        });
        print(io.stdout, formatOf(cmd), r, () => [
          ['TIME', 'TYPE', 'ACTOR', 'ACTION', 'RESOURCE', 'RESULT', 'REQUEST'],
          ...r.entries.map((e) => [
            e.time,
            e.type,
            e.actor ? (e.actor.display_name ?? e.actor.id ?? e.actor.accessor) : '-',
            e.action,
            e.resource,
            outcome(e),
            e.request_id,
          ]),
        ]);
        if (formatOf(cmd) === 'table' && r.more)
          io.stderr.write('(more entries match: narrow the search or raise --limit)\n');
      },
    );

  a.command('hash')
    .description(
      'print the HMAC that audit entries carry for a value (read from stdin or a hidden prompt), to search the log for it',
    )
    .action(async (_o, cmd: Command) => {
      const value = await readSecretInput(io, 'Value to hash');
      const r = await auditHash(clientFor(io, cmd).request, value);
      print(io.stdout, formatOf(cmd), r, () => [[r.hash]]);
    });
}
