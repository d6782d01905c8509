import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { WatchReady } from '../api/watch.ts';
import { alive, type Running, startChild, trapSignals } from '../lib/child.ts';
import { StrongroomApiError, type StrongroomClient } from '../sdk/client.ts';
import { type KeptLease, keepLease, leasesClient } from '../sdk/leases.ts';
import { watchSecrets } from '../sdk/watch.ts';
import { type CliIO, clientFor, globals, UsageError } from './context.ts';

interface RunOptions {
  project?: string;
  env?: string;
  lease?: string[];
  only?: string;
  watch?: boolean;
  grace: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Changes arriving this close together cause one restart. */
const DEBOUNCE_MS = 200;

/** `10s`, `500ms`, `2m`, or plain seconds → milliseconds. */
function parseGrace(v: string): number {
  const m = /^([0-9]{1,7})(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--grace takes a duration like 10s, 500ms or 1m, not ${JSON.stringify(v)}`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

function parseOnly(v: string): Set<string> {
  const names = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--only takes a comma-separated list of secret names');
  for (const n of names) {
    if (!ENV_NAME.test(n))
      throw new UsageError(`--only: ${JSON.stringify(n)} is not a valid environment variable name`);
  }
  return new Set(names);
}

interface Loaded {
  vars: Record<string, string>;
  /** name → version of each secret put in the environment. */
  versions: Map<string, number>;
  /** Names the caller may not read (skipped). */
  skipped: Set<string>;
}

/** Lists the environment and reads every secret the caller may read; a 403 on one skips it. */
async function loadSecrets(
  io: CliIO,
  client: StrongroomClient,
  project: string,
  env: string,
  only: Set<string> | undefined,
): Promise<Loaded> {
  const note = (s: string) => io.stderr.write(`strongroom run: ${s}\n`);
  const list = await client.listSecrets(project, env);
  const live = list.secrets.filter((s) => !s.deleted && (!only || only.has(s.name)));
  if (only) {
    const found = new Set(live.map((s) => s.name));
    for (const n of only) if (!found.has(n)) note(`${project}/${env}/${n} not found, not set`);
  }
  const out: Loaded = { vars: {}, versions: new Map(), skipped: new Set() };
  for (const s of live) {
    if (!ENV_NAME.test(s.name)) {
      note(`${s.name} is not a valid environment variable name, not set`);
      continue;
    }
    try {
      const r = await client.getSecret(project, env, s.name);
      out.vars[s.name] = r.value;
      out.versions.set(s.name, r.version);
    } catch (err) {
      if (err instanceof StrongroomApiError && err.status === 403) {
        note(`skipped ${project}/${env}/${s.name}: permission denied`);
        out.skipped.add(s.name);
      } else if (err instanceof StrongroomApiError && err.status === 404) {
        // deleted between the list and the read
      } else throw err;
    }
  }
  return out;
}

function startFor(io: CliIO, argv: string[], vars: Record<string, string>): Running {
  // when the CLI runs on the real process streams the child gets them directly (TTY detection, no copying)
  const inherit = io.stdout === process.stdout && io.stderr === process.stderr;
  return startChild(argv, {
    cwd: io.cwd,
    env: { ...io.env, ...vars },
    inherit,
    stdout: io.stdout,
    stderr: io.stderr,
    label: 'strongroom run',
  });
}

export function runCommand(program: Command, io: CliIO): void {
  program
    .command('run')
    .description(
      "run a command with an environment's secrets as environment variables (nothing written to disk or printed)",
    )
    .option('--project <project>', 'the project whose secrets go in the environment')
    .option('--env <env>', 'the environment')
    .option(
      '--lease <VAR=PATH#FIELD>',
      'a dynamic credential: VAR gets FIELD of a credential leased from PATH (database/creds/ROLE, provider-keys/creds/ROLE; ?tenant=T); repeat; one lease per path, renewed while the command runs and revoked when it ends',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--only <names>', 'only these secrets (comma-separated names)')
    .option('--watch', 'restart the command when one of its secrets changes')
    .option('--grace <duration>', 'with --watch: how long to wait after SIGTERM before SIGKILL', '10s')
    .argument('<command...>', 'the command and its arguments, after --')
    .addHelpText(
      'after',
      "\nExamples:\n  strongroom run --project demo --env dev -- node server.js\n  strongroom run --lease PGUSER=database/creds/rag-reader?tenant=acme#username \\\n                 --lease PGPASSWORD=database/creds/rag-reader?tenant=acme#password -- python worker.py\n\nExits with the command's exit code (128+N when it is killed by signal N).",
    )
    .action(async (argv: string[], o: RunOptions, cmd: Command) => {
      io.exitCode = await run(io, cmd, argv, o);
    });
}

const LEASE_ARG =
  /^([A-Za-z_][A-Za-z0-9_]*)=((?:database|provider-keys)\/creds\/[a-z0-9][a-z0-9_-]*)(?:\?tenant=([A-Za-z0-9_]+))?#([a-z_]+)$/;

/** The credentials of `--lease` arguments, one lease per path, kept renewed until `close()` revokes them. */
async function leaseVars(io: CliIO, client: StrongroomClient, args: readonly string[]) {
  const parsed = args.map((a) => {
    const m = LEASE_ARG.exec(a);
    if (!m) {
      throw new UsageError(
        `--lease takes VAR=PATH#FIELD like PGPASSWORD=database/creds/rag-reader#password, not ${JSON.stringify(a)}`,
      );
    }
    return { name: m[1]!, path: m[2]!, tenant: m[3], field: m[4]!, key: `${m[2]}?${m[3] ?? ''}` };
  });
  const held = new Map<string, { data: Record<string, string>; kept: KeptLease }>();
  const leases = leasesClient(client.request);
  const close = () => Promise.all([...held.values()].map((h) => h.kept.close()));
  try {
    for (const p of parsed) {
      if (held.has(p.key)) continue;
      const r = await client.request<{
        lease_id: string;
        lease_duration: number;
        data: Record<string, string>;
      }>('POST', `/v1/${p.path}`, p.tenant ? { tenant: p.tenant } : {});
      held.set(p.key, {
        data: { ...r.data, lease_id: r.lease_id },
        kept: keepLease(leases, r, {
          onEnd: (why) =>
            io.stderr.write(
              `strongroom run: the lease of ${p.path} cannot be renewed (${why}); it ends at its expiry\n`,
            ),
        }),
      });
    }
    const vars: Record<string, string> = {};
    for (const p of parsed) {
      const v = held.get(p.key)!.data[p.field];
      if (typeof v !== 'string') throw new UsageError(`the credential of ${p.path} has no field ${p.field}`);
      vars[p.name] = v;
    }
    return { vars, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function run(io: CliIO, cmd: Command, argv: string[], o: RunOptions): Promise<number> {
  if (argv.length === 0 || argv[0] === '') throw new UsageError('give the command to run after --');
  if ((o.project === undefined) !== (o.env === undefined))
    throw new UsageError('give --project and --env together');
  if (o.project === undefined && !o.lease?.length)
    throw new UsageError('give --project and --env, or --lease');
  if (o.watch && o.project === undefined)
    throw new UsageError('--watch follows an environment: give --project and --env');
  const only = o.only === undefined ? undefined : parseOnly(o.only);
  const graceMs = parseGrace(o.grace);
  const client = clientFor(io, cmd);
  const leased = o.lease?.length ? await leaseVars(io, client, o.lease) : undefined;
  try {
    return await runWith(io, cmd, argv, o, only, graceMs, client, leased?.vars ?? {});
  } finally {
    // the command has ended: so do its credentials
    await leased?.close();
  }
}

async function runWith(
  io: CliIO,
  cmd: Command,
  argv: string[],
  o: RunOptions,
  only: Set<string> | undefined,
  graceMs: number,
  client: StrongroomClient,
  extra: Record<string, string>,
): Promise<number> {
  const load = async (): Promise<Loaded> => {
    const l =
      o.project !== undefined && o.env !== undefined
        ? await loadSecrets(io, client, o.project, o.env, only)
        : { vars: {}, versions: new Map<string, number>(), skipped: new Set<string>() };
    return { ...l, vars: { ...l.vars, ...extra } };
  };

  if (!o.watch) {
    const loaded = await load();
    const r = startFor(io, argv, loaded.vars);
    const untrap = trapSignals((s) => {
      if (alive(r.child)) r.child.kill(s);
    });
    try {
      return await r.exited;
    } finally {
      untrap();
    }
  }
  return watchAndRun(io, cmd, argv, o, only, graceMs, load);
}

async function watchAndRun(
  io: CliIO,
  cmd: Command,
  argv: string[],
  o: RunOptions,
  only: Set<string> | undefined,
  graceMs: number,
  load: () => Promise<Loaded>,
): Promise<number> {
  const note = (s: string) => io.stderr.write(`strongroom run: ${s}\n`);
  const g = globals(cmd);
  const addr = g.addr ?? io.env.STRONGROOM_ADDR ?? 'http://127.0.0.1:8210';
  const token = g.token ?? (io.env.STRONGROOM_TOKEN || undefined);
  const ac = new AbortController();

  let finish!: (code: number) => void;
  let fail!: (err: unknown) => void;
  const done = new Promise<number>((res, rej) => {
    finish = res;
    fail = rej;
  });

  let current: Running | undefined;
  let loaded: Loaded | undefined;
  let restarting = false;
  let stopping: NodeJS.Signals | undefined;
  let pending = false;
  let timer: NodeJS.Timeout | undefined;

  const launch = (l: Loaded) => {
    if (stopping) return;
    loaded = l;
    const r = startFor(io, argv, l.vars);
    current = r;
    r.exited.then((code) => {
      // the child ended by itself (or by a forwarded signal): so does `run`
      if (current === r && !restarting) finish(code);
    });
  };

  const relevant = (name: string) =>
    (!only || only.has(name)) && ENV_NAME.test(name) && !loaded?.skipped.has(name);

  const differs = (ready: WatchReady) => {
    const now = new Map(
      ready.secrets.filter((s) => !s.deleted && relevant(s.name)).map((s) => [s.name, s.version]),
    );
    const had = loaded?.versions ?? new Map<string, number>();
    if (now.size !== had.size) return true;
    for (const [n, v] of now) if (had.get(n) !== v) return true;
    return false;
  };

  const restart = async () => {
    let l: Loaded;
    try {
      l = await load();
    } catch (err) {
      note(`could not re-read the secrets, the command keeps running: ${(err as Error).message}`);
      return;
    }
    if (stopping) return;
    const old = current;
    restarting = true;
    if (old && alive(old.child)) {
      note(`a secret changed: restarting ${argv[0]}`);
      old.child.kill('SIGTERM');
      const kill = setTimeout(() => {
        if (alive(old.child)) {
          note(`${argv[0]} did not stop within ${o.grace}: SIGKILL`);
          old.child.kill('SIGKILL');
        }
      }, graceMs);
      const code = await old.exited;
      clearTimeout(kill);
      if (stopping) {
        finish(code);
        return;
      }
    }
    restarting = false;
    launch(l);
  };

  let chain = Promise.resolve();
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (pending) return;
      pending = true;
      chain = chain.then(() => {
        pending = false;
        return stopping ? undefined : restart();
      });
    }, DEBOUNCE_MS);
  };

  const untrap = trapSignals((s) => {
    stopping = s;
    ac.abort();
    if (timer) clearTimeout(timer);
    if (current && alive(current.child)) current.child.kill(s);
    else if (!restarting) finish(128 + (constants.signals[s] ?? 0));
  });

  const follow = async () => {
    let backoff = 1000;
    while (!ac.signal.aborted) {
      try {
        for await (const m of watchSecrets({
          addr,
          token,
          project: o.project!,
          env: o.env!,
          signal: ac.signal,
        })) {
          backoff = 1000;
          if (m.event === 'ready') {
            // the first read happens once the stream is open, so no change can fall in between
            if (!current) launch(await load());
            else if (differs(m.data)) schedule();
          } else if (m.event === 'change') {
            if (relevant(m.data.name)) schedule();
          } else if (m.event === 'close') {
            if (m.data.reason === 'token_invalid') {
              note(`stopped watching: ${m.data.message}; the command keeps running`);
              return;
            }
            note(`the server ended the watch (${m.data.reason}); reconnecting`);
          }
        }
      } catch (err) {
        if (ac.signal.aborted) return;
        if (!current) throw err;
        if (err instanceof StrongroomApiError && (err.status === 401 || err.status === 403)) {
          note(`stopped watching: ${err.message}; the command keeps running`);
          return;
        }
        note(`watch interrupted (${(err as Error).message}); reconnecting`);
      }
      if (!current) throw new Error('the watch stream ended before it was ready');
      await sleep(backoff, undefined, { signal: ac.signal }).catch(() => {});
      backoff = Math.min(backoff * 2, 30_000);
    }
  };
  follow().catch((err) => {
    if (current) note(`stopped watching: ${(err as Error).message}`);
    else fail(err);
  });

  try {
    return await done;
  } finally {
    untrap();
    ac.abort();
    if (timer) clearTimeout(timer);
  }
}
