import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { StrongroomError } from '../errors/errors.ts';

/**
 * An advisory lock file holding the owner's pid, so that two servers never
 * use one SQLite database at once (each server caches what it reads, which is
 * only correct when it is the only writer). A lock left by a process that no
 * longer exists (after kill -9 or a crash) is taken over.
 */
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireLock(path: string): () => void {
  if (heldHere.has(path)) {
    throw new StrongroomError(
      'storage_unavailable',
      `the database is already open in this process (lock ${path})`,
    );
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      heldHere.add(path);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        heldHere.delete(path);
        try {
          unlinkSync(path);
        } catch {}
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {}
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
      throw new StrongroomError(
        'storage_unavailable',
        `another Strongroom server (pid ${owner}) is using this database; stop it first (or, if no server is running, delete ${path})`,
      );
    }
    // stale: its owner is gone
    try {
      unlinkSync(path);
    } catch {}
  }
  throw new StrongroomError('storage_unavailable', `cannot take the database lock ${path}`);
}
