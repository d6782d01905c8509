// Child-process helpers shared by the benches: every child is tracked and
// killed when the bench exits, whatever way it exits.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = resolve(ROOT, 'bin/strongroom.js');
/** The Node 24 running this bench (under npm: the project's pinned one). */
const NODE = process.execPath;

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups = new Set<() => Promise<void>>();

process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}, stopping children and cleaning up\n`);
    for (const c of live) c.kill('SIGKILL');
    const pending = Promise.allSettled([...cleanups].map((fn) => fn()));
    const timer = setTimeout(() => process.exit(code), 5000);
    void pending.then(() => {
      clearTimeout(timer);
      process.exit(code);
    });
  });
}

/** A fresh temp folder, removed when the bench exits however it exits (or earlier with `removeTempDir`). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

/** Registers async cleanup (e.g. dropping a database table) that also runs when the bench is interrupted; returns the unregister function. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

export interface Child {
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnChild(args: string[], opts: SpawnOptions = {}): Child {
  const child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  live.add(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = once(child, 'exit').catch(() => undefined);
  child.on('exit', () => live.delete(child));
  return {
    child,
    output: () => out,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Polls `probe` until it resolves true; rejects after `timeoutMs` or when the child exits. */
export async function waitFor(
  c: Child,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) {
      throw new Error(
        `${what} exited (${c.child.exitCode ?? c.child.signalCode}) before it was ready:\n${c.output()}`,
      );
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} was not ready after ${timeoutMs} ms:\n${c.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kills the whole bench if it runs past `ms` (a bench must always end by itself). */
export function watchdog(ms: number, name: string): void {
  setTimeout(() => {
    process.stderr.write(`${name}: still running after ${Math.round(ms / 1000)} s, giving up\n`);
    process.exit(3);
  }, ms).unref();
}

/** Formats rows as a plain-text table with right-aligned numbers. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) =>
        i === 0 || Number.isNaN(Number(c.replace(/[,x%]/g, '')))
          ? c.padEnd(widths[i]!)
          : c.padStart(widths[i]!),
      )
      .join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join(
    '\n',
  );
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A JSON call to a server under test (setup, not measured): throws on a non-2xx answer. */
export async function http<T>(
  base: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}
