import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, sep } from 'node:path';
import type { ModelResource, Serialization } from '../../api/model-signing.ts';
import { createPool } from './pool.ts';

/** A model directory that cannot be signed or checked as it is: the message names the file. */
export class ModelFileError extends Error {}

const posix = (p: string) => p.split(sep).join('/');

/**
 * The model's files, as names relative to `dir` (`/`-separated), sorted, without the ignored paths
 * (a name or any folder above it). A symbolic link that leaves the directory is refused, always; one
 * inside it only when `allowSymlinks`.
 */
export async function modelFiles(dir: string, serialization: Serialization): Promise<string[]> {
  const root = await realpath(dir);
  const ignore = new Set(serialization.ignore_paths ?? []);
  const out: string[] = [];
  async function walk(abs: string): Promise<void> {
    for (const entry of await readdir(abs, { withFileTypes: true })) {
      const path = join(abs, entry.name);
      const name = posix(relative(dir, path));
      if (ignore.has(name) || ignore.has(entry.name)) continue;
      const info = await lstat(path);
      if (info.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(path);
        } catch {
          throw new ModelFileError(`${name} is a symbolic link to nothing`);
        }
        if (target !== root && !target.startsWith(root + sep)) {
          throw new ModelFileError(
            `${name} is a symbolic link that leaves the model directory (to ${target})`,
          );
        }
        if (!serialization.allow_symlinks) {
          throw new ModelFileError(
            `${name} is a symbolic link, and the signature does not allow symbolic links`,
          );
        }
        if ((await stat(path)).isDirectory()) await walk(path);
        else out.push(name);
      } else if (info.isDirectory()) await walk(path);
      else if (info.isFile()) out.push(name);
      else throw new ModelFileError(`${name} is neither a file nor a directory`);
    }
  }
  await walk(dir);
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Every file's SHA-256, hashed on every core at once. */
export async function hashModel(
  dir: string,
  serialization: Serialization,
  parallel = availableParallelism(),
): Promise<ModelResource[]> {
  const names = await modelFiles(dir, serialization);
  const pool = createPool<{ path: string }, string>(
    new URL('./hash-worker.ts', import.meta.url),
    Math.min(names.length || 1, parallel),
  );
  try {
    return await Promise.all(
      names.map(async (name) => ({
        name,
        algorithm: 'sha256' as const,
        digest: await pool.run({ path: join(dir, name) }),
      })),
    );
  } finally {
    await pool.close();
  }
}

/**
 * The first way `actual` differs from what was signed, or undefined: a changed file (the first by
 * name), a file renamed (same content, other name), removed or added.
 */
export function firstDifference(
  signed: readonly ModelResource[],
  actual: readonly ModelResource[],
): string | undefined {
  const want = new Map(signed.map((r) => [r.name, r.digest]));
  const have = new Map(actual.map((r) => [r.name, r.digest]));
  const removed = signed.filter((r) => !have.has(r.name));
  const added = actual.filter((r) => !want.has(r.name));
  const changed = actual.filter((r) => want.has(r.name) && want.get(r.name) !== r.digest);
  const problems: Array<[string, string]> = [];
  for (const r of changed)
    problems.push([
      r.name,
      `${r.name} differs from the signed file (sha256 ${r.digest.slice(0, 12)}…, signed ${want.get(r.name)!.slice(0, 12)}…)`,
    ]);
  for (const r of removed) {
    const renamed = added.find((a) => a.digest === r.digest);
    problems.push([
      r.name,
      renamed ? `${r.name} was renamed to ${renamed.name}` : `${r.name} is signed but missing (removed)`,
    ]);
  }
  for (const a of added) {
    if (!removed.some((r) => r.digest === a.digest))
      problems.push([a.name, `${a.name} was added: it is not in the signature`]);
  }
  problems.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return problems[0]?.[1];
}
