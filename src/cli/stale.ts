import type { Command } from 'commander';
import type * as api from '../api/hygiene.ts';
import type { WatchEvent } from '../api/watch.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import { watchSecrets } from '../sdk/watch.ts';
import { type CliIO, clientFor, formatOf, globals, UsageError } from './context.ts';
import { print } from './output.ts';

/** `strongroom secret stale [PROJECT[/ENV]]`: secrets past rotation, expiring, expired or never rotated. */
export function staleCommand(secret: Command, io: CliIO): void {
  secret
    .command('stale')
    .argument('[scope]', 'PROJECT or PROJECT/ENV (default: every secret you may report on)')
    .option('--within <duration>', 'report expiries and rotations due this far ahead', '7d')
    .option(
      '--unrotated-after <duration>',
      'a value older than this with no rotation schedule is stale',
      '90d',
    )
    .description(
      'list secrets past their rotation interval, expiring or expired, never rotated, or whose rotation failed',
    )
    .action(
      async (where: string | undefined, o: { within: string; unrotatedAfter: string }, cmd: Command) => {
        const query: api.StaleQuery = { within: o.within, unrotated_after: o.unrotatedAfter };
        if (where) {
          const parts = where.split('/');
          if (parts.length > 2 || parts.some((p) => p === ''))
            throw new UsageError(`expected PROJECT or PROJECT/ENV, not ${JSON.stringify(where)}`);
          query.project = parts[0]!;
          if (parts[1]) query.env = parts[1];
        }
        const q = new URLSearchParams(query as Record<string, string>);
        const r = await clientFor(io, cmd).request<Out<typeof api.SecretStale>>(
          'GET',
          `/v1/reports/stale?${q}`,
        );
        if (formatOf(cmd) === 'table' && r.secrets.length === 0) {
          io.stdout.write(`No stale secrets (within ${r.within}, unrotated after ${r.unrotated_after}).\n`);
          return;
        }
        print(io.stdout, formatOf(cmd), r, () => [
          ['SECRET', 'PROVIDER', 'OWNER', 'REASONS', 'ROTATION DUE', 'EXPIRES', 'DAYS OVERDUE'],
          ...r.secrets.map((s) => [
            s.address,
            s.provider,
            s.owner,
            s.reasons.join(',') + (s.last_rotation_error ? ` (${s.last_rotation_error.slice(0, 60)})` : ''),
            s.rotation_due_at?.slice(0, 10),
            s.expires_at?.slice(0, 10),
            s.days_overdue,
          ]),
        ]);
      },
    );
}

/**
 * `secret get ADDR --watch`: prints the secret, then re-reads and prints it
 * whenever it changes (after a delete, just the event), until interrupted or
 * the server ends the stream. With --format json: one JSON line per event,
 * `{"event": ..., "secret": ...}`. With --field: the raw field each time.
 */
export async function getAndWatch(
  io: CliIO,
  cmd: Command,
  a: { project: string; env: string; name: string },
  o: { version?: string; field?: string },
  signal?: AbortSignal,
): Promise<void> {
  if (o.version) throw new UsageError('--watch follows the current version: drop --version');
  const g = globals(cmd);
  const addr = g.addr ?? io.env.STRONGROOM_ADDR ?? 'http://127.0.0.1:8210';
  const token = g.token ?? (io.env.STRONGROOM_TOKEN || undefined);
  const client = clientFor(io, cmd);
  const json = formatOf(cmd) === 'json';
  const address = `${a.project}/${a.env}/${a.name}`;

  async function show(event: WatchEvent | undefined): Promise<void> {
    const gone = event?.kind === 'delete' || event?.kind === 'destroy';
    const r = gone ? undefined : await client.getSecret(a.project, a.env, a.name).catch(() => undefined);
    if (json) {
      io.stdout.write(`${JSON.stringify({ event: event ?? null, secret: r ?? null })}\n`);
      return;
    }
    if (event) io.stdout.write(`# ${event.at} ${event.kind} ${address} version ${event.version}\n`);
    if (!r) return;
    if (o.field) {
      if (!(o.field in r))
        throw new UsageError(`no field ${JSON.stringify(o.field)}; fields: ${Object.keys(r).join(', ')}`);
      const v = r[o.field as keyof typeof r];
      io.stdout.write(`${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
      return;
    }
    print(io.stdout, 'table', r, () => [
      ['Secret', address],
      ['Version', `${r.version} (current ${r.current_version})`],
      ['Created', r.created_at],
      ['Value', r.value],
    ]);
  }

  let first = true;
  for await (const m of watchSecrets({ addr, token, ...a, ...(signal ? { signal } : {}) })) {
    if (m.event === 'ready') {
      // the first read happens once the stream is open, so no change can fall in between
      if (first) await show(undefined);
      first = false;
    } else if (m.event === 'change') {
      await show(m.data);
    } else if (m.event === 'close') {
      throw new Error(`the server ended the watch: ${m.data.message}`);
    }
  }
}
