import type { Command } from 'commander';
import type { BudgetLimits, KeyScope, VirtualKey } from '../sdk/gateway.ts';
import { gatewayClient } from '../sdk/gateway.ts';
import { type CliIO, clientFor, formatOf, parsePositiveInt, UsageError } from './context.ts';
import { kv, print } from './output.ts';

const csv = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const collect = (v: string, prev: string[]) => [...prev, ...csv(v)];

interface KeyOptions {
  provider: string[];
  model: string[];
  rpm?: string;
  tpm?: string;
  budgetUsd?: string;
  period?: string;
  ttl?: string;
  spiffeId?: string;
  classification?: string;
  name?: string;
  orphan?: boolean;
}

function scopeOf(o: KeyOptions): KeyScope | undefined {
  if (!o.provider.length && !o.model.length) return undefined;
  return {
    ...(o.provider.length ? { providers: o.provider } : {}),
    ...(o.model.length ? { models: o.model } : {}),
  };
}

function whole(name: string, v: string): number {
  if (v === '0') return 0;
  return parsePositiveInt(name, v);
}

function limitsOf(o: KeyOptions): BudgetLimits | undefined {
  const out: BudgetLimits = {};
  if (o.rpm !== undefined) out.requests_per_minute = whole('--rpm', o.rpm);
  if (o.tpm !== undefined) out.tokens_per_minute = whole('--tpm', o.tpm);
  if (o.budgetUsd !== undefined) {
    const usd = Number(o.budgetUsd);
    if (!/^\d+(\.\d+)?$/.test(o.budgetUsd) || !Number.isFinite(usd))
      throw new UsageError(
        `--budget-usd must be an amount like 5 or 12.50, not ${JSON.stringify(o.budgetUsd)}`,
      );
    const period = o.period ?? 'day';
    if (period !== 'day' && period !== 'month' && period !== 'total')
      throw new UsageError('--period must be day, month or total');
    out.spend = { usd, period };
  } else if (o.period !== undefined) {
    throw new UsageError('--period goes with --budget-usd');
  }
  return Object.keys(out).length ? out : undefined;
}

const describeLimits = (l: BudgetLimits) =>
  [
    l.requests_per_minute === undefined ? '' : `${l.requests_per_minute} req/min`,
    l.tokens_per_minute === undefined ? '' : `${l.tokens_per_minute} tok/min`,
    l.spend ? `${l.spend.usd} USD/${l.spend.period}` : '',
  ]
    .filter(Boolean)
    .join(', ') || 'unlimited';

const describeScope = (s: KeyScope) =>
  [s.providers ? `providers ${s.providers.join(',')}` : '', s.models ? `models ${s.models.join(',')}` : '']
    .filter(Boolean)
    .join('; ') || 'any model';

// the server's word (it knows whether the creator token still lives); its clock for expiry
const STATES: Record<VirtualKey['state'], string> = {
  active: 'active',
  revoked: 'revoked',
  expired: 'expired',
  creator_gone: 'ended with its creator token',
};
const state = (k: VirtualKey) => STATES[k.state] ?? k.state;

const describeCreator = (k: VirtualKey) =>
  k.creator.orphan
    ? `orphan (minted by ${k.creator.accessor ?? 'unknown'}; outlives it)`
    : (k.creator.accessor ?? 'unknown (minted before creators were recorded)');

function details(k: VirtualKey) {
  return kv({
    ID: k.id,
    Name: k.name,
    State: state(k),
    Owner: `${k.owner.type}:${k.owner.name || k.owner.id}`,
    Creator: describeCreator(k),
    Scope: describeScope(k.scope),
    Limits: describeLimits(k.limits),
    'SPIFFE ID': k.spiffe_id ?? '-',
    Classification: k.classification ?? '-',
    'Created at': k.created_at,
    'Expires at': k.expires_at,
    ...(k.revoked_at ? { 'Revoked at': k.revoked_at } : {}),
  });
}

function withKeyOptions(cmd: Command): Command {
  return cmd
    .option('--provider <names>', 'providers the key may call (repeatable; default any)', collect, [])
    .option(
      '--model <globs>',
      'models the key may call, globs like gpt-4o* (repeatable; default any)',
      collect,
      [],
    )
    .option('--rpm <n>', 'requests per minute')
    .option('--tpm <n>', 'tokens per minute')
    .option('--budget-usd <amount>', 'spend limit in USD per --period')
    .option('--period <period>', 'day, month or total (default day)')
    .option('--spiffe-id <id>', 'valid only for a caller that also proves this SPIFFE ID')
    .option('--classification <class>', 'default data classification of its calls');
}

/** `strongroom gateway-key …`: virtual keys for the AI gateway (docs/gateway-keys.md). */
export function gatewayKeyCommands(program: Command, io: CliIO): void {
  const gk = program
    .command('gateway-key')
    .description('virtual keys for the AI gateway: scoped, limited, short-lived, revocable');
  const client = (cmd: Command) => gatewayClient(clientFor(io, cmd).request);

  withKeyOptions(gk.command('create').argument('<name>', 'a name for the key (e.g. the app using it)'))
    .option(
      '--ttl <duration>',
      "lifetime (default 1h, at most 30d; never beyond your token's expiry unless --orphan)",
    )
    .option(
      '--orphan',
      'the key outlives your token (its expiry, revocation, your user being deleted); needs gateway.key.orphan (admin)',
    )
    .description('mint a virtual key (the key is shown once)')
    .addHelpText(
      'after',
      [
        '',
        'A key ends with the token that minted it: it expires no later than that token, and revoking the',
        'token (or deleting its user, revoking its app) ends the key at its next request. --orphan mints a',
        'key bounded only by the 30-day maximum; it needs the Cedar action gateway.key.orphan (admin, root).',
        'A workload calling with its SVID holds no token, so it can mint orphan keys only.',
        '',
        'Example:',
        '  strongroom gateway-key create chatbot --provider openai --model "gpt-4o*" --rpm 60 --budget-usd 5 --period day --ttl 8h',
      ].join('\n'),
    )
    .action(async (name: string, o: KeyOptions, cmd: Command) => {
      const scope = scopeOf(o);
      const limits = limitsOf(o);
      const r = await client(cmd).createKey({
        name,
        ...(scope ? { scope } : {}),
        ...(limits ? { limits } : {}),
        ...(o.ttl ? { ttl: o.ttl } : {}),
        ...(o.spiffeId ? { spiffe_id: o.spiffeId } : {}),
        ...(o.classification ? { classification: o.classification } : {}),
        ...(o.orphan ? { orphan: true } : {}),
      });
      print(io.stdout, formatOf(cmd), r, () => [['Key', r.virtual_key], ...details(r.key)]);
      for (const w of r.warnings ?? []) io.stderr.write(`Warning: ${w}\n`);
      io.stderr.write(
        'Store the key now: it is shown only this once (Strongroom keeps only its HMAC). Revoke it with `strongroom gateway-key revoke ' +
          `${r.key.id}\`.\n`,
      );
    });

  gk.command('list')
    .option('--all', 'revoked and expired keys too')
    .description('list the virtual keys you may see (never their strings)')
    .action(async (o: { all?: boolean }, cmd: Command) => {
      const r = await client(cmd).listKeys({ includeInactive: o.all === true });
      print(io.stdout, formatOf(cmd), r, () => [
        ['ID', 'NAME', 'STATE', 'SCOPE', 'LIMITS', 'EXPIRES'],
        ...r.keys.map((k) => [
          k.id,
          k.name,
          state(k),
          describeScope(k.scope),
          describeLimits(k.limits),
          k.expires_at,
        ]),
      ]);
    });

  gk.command('show')
    .argument('<id>')
    .description("a virtual key's metadata")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const r = await client(cmd).readKey(id);
      print(io.stdout, formatOf(cmd), r, () => details(r.key));
    });

  gk.command('revoke')
    .argument('<id>')
    .description('revoke a virtual key: the gateway refuses it from the next request on')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const r = await client(cmd).revokeKey(id);
      print(io.stdout, formatOf(cmd), r, () => kv({ Revoked: r.revoked, At: r.revoked_at }));
    });

  withKeyOptions(gk.command('update').argument('<id>'))
    .option('--name <name>', 'a new name')
    .option('--ttl <duration>', 'a new lifetime from now (may not end later than the current expiry)')
    .description('narrow a virtual key: scope, limits, lifetime (a key can never be widened)')
    .action(async (id: string, o: KeyOptions, cmd: Command) => {
      const scope = scopeOf(o);
      const limits = limitsOf(o);
      const req = {
        ...(o.name ? { name: o.name } : {}),
        ...(scope ? { scope } : {}),
        ...(limits ? { limits } : {}),
        ...(o.ttl ? { ttl: o.ttl } : {}),
        ...(o.spiffeId ? { spiffe_id: o.spiffeId } : {}),
        ...(o.classification ? { classification: o.classification } : {}),
      };
      if (Object.keys(req).length === 0)
        throw new UsageError('nothing to change: give --provider, --model, --rpm, --ttl, …');
      const r = await client(cmd).updateKey(id, req);
      print(io.stdout, formatOf(cmd), r, () => details(r.key));
    });
}
