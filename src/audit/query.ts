import { type FileHandle, open } from 'node:fs/promises';
import type { AuditLine } from './entry.ts';

export interface AuditQuery {
  /** Matches actor.id, actor.accessor or actor.display_name. */
  actor?: string;
  /** An action, or a prefix ending in `*` (`secret.*`). */
  action?: string;
  request_id?: string;
  /** Epoch milliseconds, inclusive. */
  since?: number;
  /** Epoch milliseconds, exclusive. */
  until?: number;
  limit: number;
}

export interface AuditQueryResult {
  /** Matching request/response entries, oldest first. */
  entries: AuditLine[];
  /** More entries match than `limit`. */
  more: boolean;
  /** The scan stopped at the byte budget before reaching the start of the file. */
  partial: boolean;
}

export const MAX_QUERY_LIMIT = 1000;
const CHUNK = 256 * 1024;
// entries are appended roughly in time order; a scan stops once it is this far before `since`
const TIME_SLACK_MS = 5 * 60_000;

function matcher(q: AuditQuery): (e: AuditLine) => boolean {
  const prefix = q.action?.endsWith('*') ? q.action.slice(0, -1) : undefined;
  return (e) => {
    if (
      q.action !== undefined &&
      (prefix === undefined ? e.action !== q.action : !e.action?.startsWith(prefix))
    )
      return false;
    if (q.request_id !== undefined && e.request_id !== q.request_id) return false;
    if (q.actor !== undefined) {
      const a = e.actor;
      if (!a || (a.id !== q.actor && a.accessor !== q.actor && a.display_name !== q.actor)) return false;
    }
    if (q.since !== undefined || q.until !== undefined) {
      const t = Date.parse(e.time);
      if (q.since !== undefined && !(t >= q.since)) return false;
      if (q.until !== undefined && !(t < q.until)) return false;
    }
    return true;
  };
}

/** Complete lines of a file, last first (an unterminated last line is skipped). */
async function* linesBackward(
  fh: FileHandle,
  size: number,
  budget: { bytes: number; exhausted: boolean },
): AsyncGenerator<Buffer> {
  let pos = size;
  let buf = Buffer.alloc(0);
  let aligned = false;
  while (true) {
    if (pos > 0) {
      if (budget.bytes <= 0) {
        budget.exhausted = true;
        return;
      }
      const from = Math.max(0, pos - CHUNK);
      const chunk = Buffer.alloc(pos - from);
      await fh.read(chunk, 0, chunk.byteLength, from);
      budget.bytes -= chunk.byteLength;
      buf = buf.byteLength === 0 ? chunk : Buffer.concat([chunk, buf]);
      pos = from;
    }
    if (!aligned) {
      const k = buf.lastIndexOf(0x0a);
      if (k < 0) {
        if (pos === 0) return;
        continue;
      }
      buf = buf.subarray(0, k + 1);
      aligned = true;
    }
    let i = buf.byteLength - 1;
    while (i > 0) {
      const j = buf.lastIndexOf(0x0a, i - 1);
      if (j < 0) break;
      yield buf.subarray(j + 1, i);
      i = j;
    }
    if (pos === 0) {
      if (i > 0) yield buf.subarray(0, i);
      return;
    }
    buf = buf.subarray(0, i + 1);
  }
}

/**
 * Searches an audit file from its end, so recent entries are found without
 * reading the whole file; reads at most `maxScanBytes`.
 */
export async function queryAuditFile(
  path: string,
  q: AuditQuery,
  opts: { maxScanBytes?: number } = {},
): Promise<AuditQueryResult> {
  const limit = Math.min(Math.max(1, q.limit), MAX_QUERY_LIMIT);
  const matches = matcher(q);
  const budget = { bytes: opts.maxScanBytes ?? 512 * 1024 * 1024, exhausted: false };
  const found: AuditLine[] = [];
  let more = false;
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    for await (const raw of linesBackward(fh, size, budget)) {
      let e: AuditLine;
      try {
        e = JSON.parse(raw.toString('utf8'));
      } catch {
        continue;
      }
      if (e === null || typeof e !== 'object' || (e.type !== 'request' && e.type !== 'response')) continue;
      if (q.since !== undefined && Date.parse(e.time) < q.since - TIME_SLACK_MS) break;
      if (!matches(e)) continue;
      if (found.length === limit) {
        more = true;
        break;
      }
      found.push(e);
    }
  } finally {
    await fh.close();
  }
  return { entries: found.reverse(), more, partial: budget.exhausted };
}
