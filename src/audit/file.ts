import { constants, statSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GENESIS_HASH, lineHash } from './entry.ts';
import type { CheckpointSigner } from './keys.ts';
import { type AuditSink, type AuditTransport, type ChainTail, createChainedSink } from './sink.ts';

export interface FileSinkOptions {
  path: string;
}

class AuditFileError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** The public key file written next to an audit file. */
export const publicKeyPath = (auditPath: string) => `${auditPath}.pub`;

/**
 * Appends are opened with O_DSYNC where the platform has it: each write(2)
 * returns once its data and the new file size are on stable storage (what
 * fdatasync after the write gives), in one system call and one trip through
 * the thread pool instead of two. Elsewhere: write, then fdatasync.
 */
const DSYNC: number = constants.O_DSYNC ?? 0;

/**
 * A JSON-lines file, appended and fsynced before a write is acknowledged,
 * created with mode 0600. Before each batch the path is checked: a file that
 * was renamed or deleted (log rotation) is reopened, one whose owner-write bit
 * was cleared is refused (even for root), and one that grew behind our back is
 * re-read so the chain continues from its real last line.
 */
function createFileTransport(opts: FileSinkOptions): AuditTransport {
  const path = opts.path;
  let fh: FileHandle | undefined;
  let regular = true;
  let ino = 0;
  let dev = 0;
  /** Bytes known durable (the end of the last acknowledged batch). */
  let size = 0;
  /** Set when a failed batch could not be cut off: that inode and where our lines end. */
  let dirty: { ino: number; dev: number; size: number } | undefined;
  let created = false;
  const published = new Set<string>();

  const unwritable = (mode: number) =>
    new AuditFileError(
      'EACCES',
      `the audit file ${path} is not writable (mode ${(mode & 0o777).toString(8).padStart(4, '0')})`,
    );

  async function closeHandle(): Promise<void> {
    const h = fh;
    fh = undefined;
    await h?.close().catch(() => {});
  }

  return {
    name: `file:${path}`,
    async open() {
      if (!created) {
        // only the first open creates the folder: a folder deleted later stays a failure until restored
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      }
      const existed = await stat(path).then(
        () => true,
        () => false,
      );
      const h = await open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | DSYNC, 0o600);
      try {
        const st = await h.stat();
        regular = st.isFile();
        if (!regular) {
          // a device or pipe (/dev/full, /dev/stdout): nothing to read back, a new chain
          fh = h;
          created = true;
          return { seq: 0, hash: GENESIS_HASH, uncovered: 0 };
        }
        if ((st.mode & 0o200) === 0) throw unwritable(st.mode);
        if ((st.mode & 0o077) !== 0) await h.chmod(0o600);
        let end = st.size;
        if (dirty && dirty.ino === st.ino && dirty.dev === st.dev && end > dirty.size) {
          await h.truncate(dirty.size);
          end = dirty.size;
        }
        dirty = undefined;
        const tail = await readTail(h, end, path);
        // a last line without its newline was never acknowledged (a crash mid-write)
        if (tail.end < end) await h.truncate(tail.end);
        if (!existed) await syncDir(dirname(path));
        fh = h;
        ino = st.ino;
        dev = st.dev;
        size = tail.end;
        created = true;
        return tail.chain;
      } catch (err) {
        await h.close().catch(() => {});
        throw err;
      }
    },
    async check() {
      if (!fh) return 'reopen';
      if (!regular) return 'ok';
      // A synchronous stat: a lookup in the kernel's inode cache for a local file (a few µs), where
      // the thread pool's round trip costs tens of µs of CPU and latency before every batch. The
      // write that follows goes through the thread pool.
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'rotated';
        throw err;
      }
      if (st.ino !== ino || st.dev !== dev) return 'rotated';
      if ((st.mode & 0o200) === 0) throw unwritable(st.mode);
      if (st.size !== size) return 'reopen';
      return 'ok';
    },
    async append(data) {
      if (!fh) throw new AuditFileError('EBADF', `the audit file ${path} is not open`);
      const buf = Buffer.from(data);
      try {
        let off = 0;
        while (off < buf.byteLength) {
          const { bytesWritten } = await fh.write(buf, off, buf.byteLength - off);
          off += bytesWritten;
        }
        // fdatasync covers the data and the new file size, which is all an append needs (O_DSYNC: done)
        if (regular && DSYNC === 0) await fh.datasync();
        size += buf.byteLength;
      } catch (err) {
        if (regular) {
          try {
            await fh.truncate(size);
          } catch {
            dirty = { ino, dev, size };
          }
        }
        throw err;
      }
    },
    async publishKey(signer: CheckpointSigner) {
      if (!regular || published.has(signer.keyId)) return;
      const pubPath = publicKeyPath(path);
      let existing = '';
      try {
        existing = await readFile(pubPath, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const pem = signer.publicKeyPem.trim();
      if (!existing.includes(pem)) {
        const tmp = `${pubPath}.${process.pid}.tmp`;
        const text = existing === '' || existing.endsWith('\n') ? existing : `${existing}\n`;
        await writeFile(tmp, `${text}${pem}\n`, { mode: 0o644 });
        await rename(tmp, pubPath);
      }
      published.add(signer.keyId);
    },
    reset: closeHandle,
    close: closeHandle,
  };
}

export function createFileSink(opts: FileSinkOptions): AuditSink {
  return createChainedSink(createFileTransport(opts));
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } catch {
    // some file systems refuse fsync on a directory; the file itself is still synced
  } finally {
    await d.close();
  }
}

/** Finds the last complete line of a file: where it ends and the chain state after it. */
async function readTail(
  h: FileHandle,
  end: number,
  path: string,
): Promise<{ end: number; chain: ChainTail }> {
  const CHUNK = 64 * 1024;
  let start = end;
  let buf = Buffer.alloc(0);
  let last = -1; // absolute offset of the last newline
  let before = -1; // absolute offset of the newline before it (-1: the line starts the file)
  while (start > 0) {
    const from = Math.max(0, start - CHUNK);
    const chunk = Buffer.alloc(start - from);
    await h.read(chunk, 0, chunk.byteLength, from);
    buf = Buffer.concat([chunk, buf]);
    start = from;
    if (last < 0) {
      const i = buf.lastIndexOf(0x0a);
      if (i >= 0) last = start + i;
    }
    if (last >= 0 && last - start > 0) {
      const j = buf.lastIndexOf(0x0a, last - start - 1);
      if (j >= 0) {
        before = start + j;
        break;
      }
    }
  }
  if (last < 0) return { end: 0, chain: { seq: 0, hash: GENESIS_HASH, uncovered: 0 } };
  const line = buf.subarray(before + 1 - start, last - start);
  let parsed: { seq?: unknown; type?: unknown };
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch {
    parsed = {};
  }
  if (!Number.isSafeInteger(parsed.seq) || (parsed.seq as number) < 1) {
    throw new AuditFileError(
      'EBADMSG',
      `the last line of the audit file ${path} is not an audit entry: check it with \`strongroom audit verify\`, then move the file aside`,
    );
  }
  return {
    end: last + 1,
    chain: {
      seq: parsed.seq as number,
      hash: lineHash(line),
      uncovered: parsed.type === 'checkpoint' ? 0 : 1,
    },
  };
}
