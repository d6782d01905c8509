import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AllowList, type Finding, isAllowed, MAX_FILE_BYTES, SKIP_DIRS, scanBuffer } from './scan.ts';

export interface GitScanStats {
  blobs: number;
  bytes: number;
  skipped: number;
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] }).toString(
    'utf8',
  );
}

/** blob id → the oldest commit (and path) that added it, from `git log --all --raw`. */
function blobOrigins(cwd: string): Map<string, { commit: string; path: string }> {
  const out = git(cwd, ['log', '--all', '--no-renames', '--raw', '--no-abbrev', '--format=%x00%H']);
  const origins = new Map<string, { commit: string; path: string }>();
  let commit = '';
  for (const line of out.split('\n')) {
    if (line.startsWith('\0')) commit = line.slice(1);
    else if (line.startsWith(':')) {
      // :100644 100644 <old> <new> M\tpath
      const tab = line.indexOf('\t');
      const fields = line.slice(1, tab).split(' ');
      const blob = fields[3]!;
      if (/^0+$/.test(blob) || fields[1] === '160000') continue;
      // log is newest first: the last one seen is the oldest commit with this blob
      origins.set(blob, { commit, path: line.slice(tab + 1) });
    }
  }
  return origins;
}

/** Every blob reachable from any ref, with the path it was first seen at. */
function allBlobs(cwd: string): Map<string, string> {
  const objects = git(cwd, ['rev-list', '--all', '--objects']);
  const input = objects
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean)
    .join('\n');
  const checked = execFileSync(
    'git',
    ['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize)'],
    {
      cwd,
      input: `${input}\n`,
      maxBuffer: 1 << 30,
    },
  ).toString('utf8');
  const paths = new Map<string, string>();
  for (const l of objects.split('\n')) {
    const sp = l.indexOf(' ');
    if (sp > 0) paths.set(l.slice(0, sp), l.slice(sp + 1));
  }
  const blobs = new Map<string, string>();
  for (const l of checked.split('\n')) {
    const [id, type, size] = l.split(' ');
    if (type === 'blob' && Number(size) <= MAX_FILE_BYTES) blobs.set(id!, paths.get(id!) ?? '');
  }
  return blobs;
}

/** Streams `git cat-file --batch` for `ids`, calling `onBlob` with each one's content. */
async function catBlobs(
  cwd: string,
  ids: string[],
  onBlob: (id: string, data: Buffer) => void,
): Promise<void> {
  const child = spawn('git', ['cat-file', '--batch'], { cwd, stdio: ['pipe', 'pipe', 'ignore'] });
  const chunks: Buffer[] = [];
  let have = 0;
  let header: { id: string; size: number } | null = null;
  const take = (n: number): Buffer => {
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const head = all.subarray(0, n);
    chunks.length = 0;
    if (all.length > n) chunks.push(all.subarray(n));
    have = all.length - n;
    return head;
  };
  child.stdout.on('data', (d: Buffer) => {
    chunks.push(d);
    have += d.length;
    for (;;) {
      if (!header) {
        const first = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        const nl = first.indexOf(10);
        if (nl < 0) return;
        const line = take(nl + 1)
          .toString('utf8')
          .trim();
        const [id, type, size] = line.split(' ');
        if (type === 'missing' || size === undefined) continue;
        header = { id: id!, size: Number(size) };
      }
      if (have < header.size + 1) return;
      const data = take(header.size + 1).subarray(0, header.size);
      const h = header;
      header = null;
      onBlob(h.id, data);
    }
  });
  child.stdin.end(ids.length ? `${ids.join('\n')}\n` : '');
  const [code] = (await once(child, 'close')) as [number];
  if (code !== 0) throw new Error(`git cat-file exited with ${code}`);
}

/**
 * Scans every blob in the repository's history (all refs), once per blob.
 * Each finding names the oldest commit that added the blob and its path there.
 */
export async function scanGitHistory(
  cwd: string,
  opts: { allow?: AllowList; onProgress?: (done: number, total: number) => void } = {},
): Promise<{ findings: Finding[]; stats: GitScanStats }> {
  try {
    git(cwd, ['rev-parse', '--git-dir']);
  } catch {
    throw new Error(`--git: ${cwd} is not inside a git repository`);
  }
  const origins = blobOrigins(cwd);
  const blobs = allBlobs(cwd);
  const stats: GitScanStats = { blobs: 0, bytes: 0, skipped: 0 };
  const findings: Finding[] = [];
  const ids = [...blobs.keys()].filter((id) => {
    const path = origins.get(id)?.path ?? blobs.get(id)!;
    if (path.split('/').some((p) => SKIP_DIRS.has(p))) {
      stats.skipped++;
      return false;
    }
    return true;
  });
  let done = 0;
  await catBlobs(cwd, ids, (id, data) => {
    opts.onProgress?.(++done, ids.length);
    const origin = origins.get(id);
    const path = origin?.path ?? blobs.get(id) ?? id;
    const found = scanBuffer(data, path);
    if (found === null) {
      stats.skipped++;
      return;
    }
    stats.blobs++;
    stats.bytes += data.length;
    for (const f of found) {
      const withCommit: Finding = { ...f, commit: origin?.commit ?? '' };
      if (!isAllowed(withCommit, opts.allow)) findings.push(withCommit);
    }
  });
  return { findings, stats };
}
