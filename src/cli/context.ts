import type { Command } from 'commander';
import { createClient, StrongroomApiError, type StrongroomClient } from '../sdk/client.ts';

/** What every CLI command gets: streams, environment and a client factory. */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Set by a command whose outcome is not plain success (e.g. `policy test` answering deny). */
  exitCode?: number;
}

export type Format = 'table' | 'json';

export class UsageError extends Error {}

export interface GlobalOptions {
  addr?: string;
  token?: string;
  format?: string;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function formatOf(cmd: Command): Format {
  const f = globals(cmd).format ?? 'table';
  if (f !== 'table' && f !== 'json')
    throw new UsageError(`--format must be table or json, not ${JSON.stringify(f)}`);
  return f;
}

export function clientFor(io: CliIO, cmd: Command): StrongroomClient {
  const g = globals(cmd);
  const addr = g.addr ?? io.env.STRONGROOM_ADDR ?? 'http://127.0.0.1:8210';
  const token = g.token ?? (io.env.STRONGROOM_TOKEN || undefined);
  return createClient({ addr, token });
}

/** PROJECT/ENV/NAME → parts, with a readable error. */
export function parseSecretAddress(addr: string): { project: string; env: string; name: string } {
  const parts = addr.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) {
    throw new UsageError(
      `expected PROJECT/ENV/NAME (like demo/dev/OPENAI_API_KEY), not ${JSON.stringify(addr)}`,
    );
  }
  return { project: parts[0]!, env: parts[1]!, name: parts[2]! };
}

export function parseEnvAddress(addr: string): { project: string; env: string } {
  const parts = addr.split('/');
  if (parts.length !== 2 || parts.some((p) => p === '')) {
    throw new UsageError(`expected PROJECT/ENV (like demo/dev), not ${JSON.stringify(addr)}`);
  }
  return { project: parts[0]!, env: parts[1]! };
}

export function parsePositiveInt(name: string, v: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(v))
    throw new UsageError(`${name} must be a positive whole number, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** Turns an API error into a message that says what to do next. */
export function describeError(err: unknown): string {
  if (err instanceof StrongroomApiError) {
    const hint: Record<string, string> = {
      unauthenticated: 'set STRONGROOM_TOKEN (the dev server prints one at start)',
      sealed: "unseal it with `strongroom operator unseal` (repeat with each key holder's share)",
      not_initialized: 'initialise it with `strongroom operator init`',
    };
    const extra =
      hint[err.code] && !err.message.includes('STRONGROOM_TOKEN') ? `\n  hint: ${hint[err.code]}` : '';
    const rid = err.requestId ? ` [request ${err.requestId}]` : '';
    return `Error: ${err.message} (${err.code})${rid}${extra}`;
  }
  if (err instanceof UsageError) return `Error: ${err.message}`;
  return `Error: ${(err as Error).message ?? String(err)}`;
}

const TIME_BOUND = /^(\d{4}-\d{2}-\d{2}[0-9A-Za-z:.+-]*|(\d+d)?(\d+h)?(\d+m)?(\d+s)?|\d+)$/;

/** A `--since`/`--until` value: a duration before now (15m, 1h, 7d) or an ISO time, passed on as given. */
export function timeBoundOption(name: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v === '' || !TIME_BOUND.test(v)) {
    throw new UsageError(
      `${name} takes a duration before now (15m, 1h, 7d) or an ISO time, not ${JSON.stringify(v)}`,
    );
  }
  return v;
}
