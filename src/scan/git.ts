import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { type AllowList, type Finding, isAllowed, MAX_FILE_BYTES, SKIP_DIRS, scanBuffer } from './scan.ts';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Variables that make git use another repository than the one its working folder is in (a git hook
 * sets some of them): dropped, so the repository scanned is always the one that holds the PATH.
 */
const REPOSITORY_VARIABLES = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

/** The environment git runs with: the caller's (when given) without the variables above. */
function gitEnv(env: Env | undefined): NodeJS.ProcessEnv | undefined {
  if (env === undefined) return undefined;
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env))
    if (v !== undefined && !REPOSITORY_VARIABLES.includes(k)) out[k] = v;
  return out;
}

export interface GitScanStats {
  blobs: number;
  bytes: number;
  skipped: number;
}

function git(cwd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  return execFileSync('git', args, {
    cwd,
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env ? { env } : {}),
  }).toString('utf8');
}

/**
 * The top folder of the git work tree that holds `path` (a folder, or a file: its folder), or
 * undefined when it is in none. Asked with git's working folder set to that folder, never the
 * process's own (issue 13 item 9).
 */
export function gitRepositoryOf(path: string, env?: Env): string | undefined {
  let dir = path;
  try {
    if (!statSync(path).isDirectory()) dir = dirname(path);
  } catch {
    return undefined;
  }
  try {
    const top = git(dir, ['rev-parse', '--show-toplevel'], gitEnv(env)).trim();
    return top === '' ? undefined : resolve(top);
  } catch {
    return undefined;
  }
}

/** blob id → the oldest commit (and path) that added it, from `git log --all --raw`. */
function blobOrigins(
  cwd: string,
  env: NodeJS.ProcessEnv | undefined,
): Map<string, { commit: string; path: string }> {
  const out = git(cwd, ['log', '--all', '--no-renames', '--raw', '--no-abbrev', '--format=%x00%H'], env);
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
function allBlobs(cwd: string, env: NodeJS.ProcessEnv | undefined): Map<string, string> {
  const objects = git(cwd, ['rev-list', '--all', '--objects'], env);
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
      ...(env ? { env } : {}),
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
  env: NodeJS.ProcessEnv | undefined,
  ids: string[],
  onBlob: (id: string, data: Buffer) => void,
): Promise<void> {
  const child = spawn('git', ['cat-file', '--batch'], {
    cwd,
    stdio: ['pipe', 'pipe', 'ignore'],
    ...(env ? { env } : {}),
  });
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
 * Scans every blob in the history (all refs) of the repository whose top folder is `repo` (see
 * `gitRepositoryOf`), once per blob. Each finding names the oldest commit that added the blob and its
 * path there: relative to `relativeTo` when given (the folder the scan runs in, as working-tree
 * findings are), else to the repository's top folder.
 */
export async function scanGitHistory(
  repo: string,
  opts: {
    allow?: AllowList;
    onProgress?: (done: number, total: number) => void;
    /** The environment git runs with (the variables that point git at another repository are dropped). */
    env?: Env;
    relativeTo?: string;
  } = {},
): Promise<{ findings: Finding[]; stats: GitScanStats }> {
  const env = gitEnv(opts.env);
  try {
    git(repo, ['rev-parse', '--git-dir'], env);
  } catch {
    throw new Error(`--git: ${repo} is not inside a git repository`);
  }
  const shown = (path: string) =>
    opts.relativeTo === undefined ? path : relative(opts.relativeTo, join(repo, path)) || path;
  const origins = blobOrigins(repo, env);
  const blobs = allBlobs(repo, env);
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
  await catBlobs(repo, env, ids, (id, data) => {
    opts.onProgress?.(++done, ids.length);
    const origin = origins.get(id);
    const path = origin?.path ?? blobs.get(id) ?? id;
    const found = scanBuffer(data, shown(path));
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
