import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
/** Where the child's output is copied (only `write` is used). */
export interface Sink {
  write(chunk: Buffer | string): unknown;
}

/** A started child process and the exit code it will report. */
export interface Running {
  child: ChildProcess;
  /** The child's exit code, 128+N when killed by signal N, 127/126 when it could not start. */
  exited: Promise<number>;
}

export interface StartOptions {
  cwd?: string;
  env: NodeJS.ProcessEnv;
  /** Give the child these streams directly (TTY detection, no copying) instead of copying its output. */
  inherit: boolean;
  stdout: Sink;
  stderr: Sink;
  /** Prefix of the message written to `stderr` when the command cannot be started. */
  label: string;
}

/** Starts `argv` with the given environment. */
export function startChild(argv: string[], o: StartOptions): Running {
  const child = spawn(argv[0]!, argv.slice(1), {
    ...(o.cwd ? { cwd: o.cwd } : {}),
    env: o.env,
    stdio: o.inherit ? ['inherit', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  if (!o.inherit) {
    child.stdout?.on('data', (d: Buffer) => o.stdout.write(d));
    child.stderr?.on('data', (d: Buffer) => o.stderr.write(d));
  }
  const exited = new Promise<number>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // an error after start (e.g. a failed kill) is not an exit
      o.stderr.write(
        `${o.label}: cannot run ${JSON.stringify(argv[0])}: ${err.code === 'ENOENT' ? 'command not found' : err.message}\n`,
      );
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
    child.once('close', (code, signal) => {
      if (child.pid === undefined) return;
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
  return { child, exited };
}

/** True while the child runs. */
export function alive(c: ChildProcess): boolean {
  return c.pid !== undefined && c.exitCode === null && c.signalCode === null;
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
export async function stopChild(r: Running, graceMs: number, onKill?: () => void): Promise<number> {
  if (!alive(r.child)) return r.exited;
  r.child.kill('SIGTERM');
  const kill = setTimeout(() => {
    if (alive(r.child)) {
      onKill?.();
      r.child.kill('SIGKILL');
    }
  }, graceMs);
  try {
    return await r.exited;
  } finally {
    clearTimeout(kill);
  }
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Routes SIGINT/SIGTERM/SIGHUP of this process to `onSignal`; returns the un-install. */
export function trapSignals(onSignal: (s: NodeJS.Signals) => void): () => void {
  const handlers = FORWARDED.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}
