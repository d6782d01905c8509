import type { Command } from 'commander';
import { USAGE_GROUPINGS } from '../api/usage.ts';
import {
  type UsageByActorRow,
  type UsageByHourRow,
  type UsageBySecretRow,
  type UsageGrouping,
  usageQuery,
  usageUnused,
} from '../sdk/usage.ts';
import { type CliIO, clientFor, formatOf, parsePositiveInt, timeBoundOption, UsageError } from './context.ts';
import { print } from './output.ts';

/** PROJECT/ENV or PROJECT/ENV/NAME. */
function parseAddress(addr: string): { project: string; env: string; name?: string } {
  const parts = addr.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new UsageError(
      `expected PROJECT/ENV or PROJECT/ENV/NAME (like demo/prod or demo/prod/OPENAI_API_KEY), not ${JSON.stringify(addr)}`,
    );
  }
  return { project: parts[0]!, env: parts[1]!, ...(parts[2] === undefined ? {} : { name: parts[2] }) };
}

const ago = (iso: string | null, now: number): string => {
  if (iso === null) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const d = Math.floor(s / 86400);
  if (d >= 1) return `${iso} (${d}d ago)`;
  const h = Math.floor(s / 3600);
  if (h >= 1) return `${iso} (${h}h ago)`;
  return `${iso} (${Math.floor(s / 60)}m ago)`;
};

const actorLabel = (a: { actor: string; display_name: string }) =>
  a.display_name && a.display_name !== a.actor.slice(a.actor.indexOf(':') + 1)
    ? `${a.actor} (${a.display_name})`
    : a.actor;

export function usageCommands(program: Command, io: CliIO): void {
  const u = program
    .command('usage')
    .argument('<address>', 'PROJECT/ENV or PROJECT/ENV/NAME')
    .option('--since <when>', 'a duration before now (24h, 7d) or an ISO time (default 7d)')
    .option('--until <when>', 'a duration before now or an ISO time (default now)')
    .option('--by <grouping>', 'rows per secret, actor or hour (default: secret, or actor for one secret)')
    .description(
      'who read which secrets, how often and when last (counted per hour; needs usage.read, e.g. the auditor role)',
    )
    .action(async (address: string, o: { since?: string; until?: string; by?: string }, cmd: Command) => {
      const a = parseAddress(address);
      if (o.by !== undefined && !USAGE_GROUPINGS.includes(o.by as UsageGrouping))
        throw new UsageError(
          `--by must be one of ${USAGE_GROUPINGS.join(', ')}, not ${JSON.stringify(o.by)}`,
        );
      const since = timeBoundOption('--since', o.since);
      const until = timeBoundOption('--until', o.until);
      const r = await usageQuery(clientFor(io, cmd).request, a.project, a.env, {
        ...(a.name === undefined ? {} : { name: a.name }),
        ...(since === undefined ? {} : { since }),
        ...(until === undefined ? {} : { until }),
        ...(o.by === undefined ? {} : { by: o.by as UsageGrouping }),
      });
      const format = formatOf(cmd);
      print(io.stdout, format, r, () => {
        if (r.by === 'secret')
          return [
            ['SECRET', 'READS', 'LAST READ', 'READERS'],
            ...(r.rows as UsageBySecretRow[]).map((row) => [
              row.name,
              row.count,
              row.last_read_at,
              row.actors.map((x) => `${actorLabel(x)}: ${x.count}`).join(', '),
            ]),
          ];
        if (r.by === 'actor')
          return [
            ['ACTOR', 'READS', 'LAST READ', 'SECRETS'],
            ...(r.rows as UsageByActorRow[]).map((row) => [
              actorLabel(row),
              row.count,
              row.last_read_at,
              row.secrets.map((x) => `${x.name}: ${x.count}`).join(', '),
            ]),
          ];
        return [
          ['HOUR', 'READS', 'ACTORS', 'SECRETS'],
          ...(r.rows as UsageByHourRow[]).map((row) => [
            row.hour,
            row.count,
            row.actors.map((x) => `${actorLabel(x)}: ${x.count}`).join(', '),
            row.secrets.map((x) => `${x.name}: ${x.count}`).join(', '),
          ]),
        ];
      });
      if (format === 'table') {
        io.stderr.write(
          `${r.total} read${r.total === 1 ? '' : 's'} from ${r.since} to ${r.until}${r.rows.length === 0 ? ' (none recorded)' : ''}${r.recording ? '' : '; this server does not record usage (usage.enabled is off)'}\n`,
        );
      }
    });

  u.command('unused')
    .argument('<address>', 'PROJECT/ENV')
    .option('--days <n>', 'not read for this many days (default 30)')
    .description(
      'secrets nobody read for N days, or never read and older than N days: candidates for removal',
    )
    .action(async (address: string, o: { days?: string }, cmd: Command) => {
      const a = parseAddress(address);
      if (a.name !== undefined) throw new UsageError(`expected PROJECT/ENV, not ${JSON.stringify(address)}`);
      const days = o.days === undefined ? undefined : parsePositiveInt('--days', o.days);
      if (days !== undefined && days > 3650) throw new UsageError('--days is at most 3650');
      const r = await usageUnused(clientFor(io, cmd).request, a.project, a.env, days);
      const now = Date.now();
      const format = formatOf(cmd);
      print(io.stdout, format, r, () => [
        ['SECRET', 'LAST READ', 'CREATED', 'PROVIDER', 'OWNER'],
        ...r.secrets.map((s) => [s.name, ago(s.last_read_at, now), s.created_at, s.provider, s.owner]),
      ]);
      if (format === 'table')
        io.stderr.write(
          `${r.secrets.length} secret${r.secrets.length === 1 ? '' : 's'} in ${r.project}/${r.env} not read since ${r.cutoff} (${r.days} days)\n`,
        );
    });
}
