import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { detect, fingerprint, redact } from './rules.ts';

/** One hard-coded credential. Holds only a redacted preview and a fingerprint, never the key. */
export interface Finding {
  file: string;
  line: number;
  column: number;
  ruleId: string;
  provider: string;
  preview: string;
  fingerprint: string;
  /** With `--git`: the commit that introduced the blob. */
  commit?: string;
}

export interface ScanStats {
  files: number;
  bytes: number;
  skipped: number;
}

export const MAX_FILE_BYTES = 5 * 1024 * 1024;
export const SKIP_DIRS = new Set(['node_modules', 'vendor', '.git', 'dist', 'build']);

/** True when the buffer looks binary: a NUL byte in the first 8 KiB. */
export function isBinary(buf: Uint8Array): boolean {
  return buf.subarray(0, 8192).includes(0);
}

/** Finds credentials in one text; `file` is only carried into the findings. */
export function scanText(text: string, file: string): Finding[] {
  const matches = detect(text);
  if (matches.length === 0) return [];
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  return matches.map((m) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= m.index) lo = mid;
      else hi = mid - 1;
    }
    return {
      file,
      line: lo + 1,
      column: m.index - lineStarts[lo]! + 1,
      ruleId: m.ruleId,
      provider: m.provider,
      preview: redact(m.secret),
      fingerprint: fingerprint(m.secret),
    };
  });
}

/** Scans a buffer unless it is binary or too large; null when skipped. */
export function scanBuffer(buf: Buffer, file: string): Finding[] | null {
  if (buf.length > MAX_FILE_BYTES || isBinary(buf)) return null;
  return scanText(buf.toString('utf8'), file);
}

function hasVendoredPart(rel: string): boolean {
  return rel.split(/[\\/]/).some((p) => SKIP_DIRS.has(p));
}

function gitFiles(dir: string): string[] | null {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 1 << 30,
    });
    return out
      .toString('utf8')
      .split('\0')
      .filter((p) => p !== '')
      .map((p) => join(dir, p));
  } catch {
    return null; // not inside a git work tree (or no git)
  }
}

function walk(dir: string, out: string[]): void {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) walk(p, out);
    } else if (e.isFile()) out.push(p);
  }
}

/**
 * The files to scan under `paths`: inside a git work tree, what git would see
 * (tracked and untracked, `.gitignore` respected); elsewhere every file.
 * Vendored folders (node_modules, vendor, .git, dist, build) are always skipped.
 */
export function listFiles(paths: string[], cwd: string): string[] {
  const files = new Set<string>();
  for (const p of paths) {
    const abs = resolve(cwd, p);
    const st = statSync(abs);
    if (st.isFile()) {
      files.add(abs);
      continue;
    }
    const listed = gitFiles(abs) ?? [];
    if (listed.length === 0) walk(abs, listed);
    for (const f of listed) if (!hasVendoredPart(relative(abs, f))) files.add(f);
  }
  return [...files].sort();
}

/** An allow-list: fingerprints (hex), `rule:ID`, or path globs (relative to the scan's cwd; `*`, `**`). */
export interface AllowList {
  fingerprints: Set<string>;
  rules: Set<string>;
  paths: RegExp[];
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // a folder name matches everything under it
  return new RegExp(`^${re.replace(/^\//, '')}(?:/.*)?$`);
}

export function parseAllowList(text: string): AllowList {
  const allow: AllowList = { fingerprints: new Set(), rules: new Set(), paths: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    if (/^(?:fingerprint:)?[0-9a-f]{20}$/.test(line))
      allow.fingerprints.add(line.replace('fingerprint:', ''));
    else if (line.startsWith('rule:')) allow.rules.add(line.slice(5).trim());
    else allow.paths.push(globToRegExp(line.replace(/^path:/, '')));
  }
  return allow;
}

export function isAllowed(f: Finding, allow: AllowList | undefined): boolean {
  if (!allow) return false;
  const path = f.file.split(sep).join('/');
  return (
    allow.fingerprints.has(f.fingerprint) ||
    allow.rules.has(f.ruleId) ||
    allow.paths.some((r) => r.test(path))
  );
}

export interface ScanOptions {
  cwd: string;
  allow?: AllowList;
  onProgress?: (done: number, total: number) => void;
}

/** Scans the working tree under `paths`; file names in findings are relative to `cwd`. */
export function scanPaths(paths: string[], opts: ScanOptions): { findings: Finding[]; stats: ScanStats } {
  const files = listFiles(paths.length ? paths : ['.'], opts.cwd);
  const stats: ScanStats = { files: 0, bytes: 0, skipped: 0 };
  const findings: Finding[] = [];
  for (const [i, abs] of files.entries()) {
    opts.onProgress?.(i, files.length);
    let buf: Buffer;
    try {
      const st = lstatSync(abs);
      if (!st.isFile() || st.size > MAX_FILE_BYTES) {
        stats.skipped++;
        continue;
      }
      buf = readFileSync(abs);
    } catch {
      stats.skipped++;
      continue;
    }
    const rel = relative(opts.cwd, abs) || abs;
    const found = scanBuffer(buf, rel);
    if (found === null) {
      stats.skipped++;
      continue;
    }
    stats.files++;
    stats.bytes += buf.length;
    for (const f of found) if (!isAllowed(f, opts.allow)) findings.push(f);
  }
  opts.onProgress?.(files.length, files.length);
  return { findings, stats };
}

export function readAllowList(file: string, cwd: string): AllowList {
  const abs = resolve(cwd, file);
  if (!existsSync(abs)) throw new Error(`allow-list file not found: ${file}`);
  return parseAllowList(readFileSync(abs, 'utf8'));
}
