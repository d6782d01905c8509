import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import type { TestContext } from 'node:test';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = resolve(ROOT, 'bin/strongroom.js');
/** The Node 24 that runs this test (the project's pinned one under npm). */
export const NODE = process.execPath;

export interface ServerProcess {
  child: ChildProcess;
  address: string;
  /** stdout and stderr so far. */
  output(): string;
  /** Sends SIGKILL and waits for exit. */
  kill9(): Promise<void>;
  /** Sends SIGTERM and waits for exit. */
  stop(): Promise<void>;
}

/**
 * Starts `strongroom server ARGS` (or `gateway`) as a real process and waits until it logs
 * that it is listening (use `--listen 127.0.0.1:0` to get a free port).
 */
export async function startServerProcess(
  t: TestContext | undefined,
  args: string[],
  env: Record<string, string> = {},
  command: 'server' | 'gateway' = 'server',
): Promise<ServerProcess> {
  const child = spawn(NODE, [BIN, command, ...args], {
    cwd: ROOT,
    env: { ...process.env, STRONGROOM_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = once(child, 'exit');
  const address = await new Promise<string>((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 15s:\n${out}`)), 15_000);
    const onData = () => {
      const m = /"address":"(https?:\/\/[^"]+)"/.exec(out) ?? /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveAddr(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });
  const proc: ServerProcess = {
    child,
    address,
    output: () => out,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  t?.after(() => proc.kill9());
  return proc;
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; input?: string; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(NODE, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(opts.input ?? '');
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr };
}

/**
 * `strongroom server --dev` on a free port with its data in `dataDir`, and the
 * root token it printed (dev mode mints a fresh one at every start).
 */
export async function startDevServer(
  t: TestContext | undefined,
  dataDir: string,
  args: string[] = [],
): Promise<ServerProcess & { root: string }> {
  const server = await startServerProcess(t, [
    '--dev',
    '--data',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    ...args,
  ]);
  const deadline = Date.now() + 15_000;
  let m = /STRONGROOM_TOKEN=(\S+)/.exec(server.output());
  while (!m) {
    if (Date.now() > deadline) throw new Error(`the dev server printed no token in 15s:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
    m = /STRONGROOM_TOKEN=(\S+)/.exec(server.output());
  }
  return Object.assign(server, { root: m[1]! });
}
