// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions and the
// packages/files with the most self time. Also runnable on its own:
//   node bench/lib/cpuprofile.ts FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';
import { ROOT, table } from './proc.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function where(url: string, byPackage = true): string {
  if (url === '') return '(native/vm)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (u.startsWith('node:')) return byPackage ? u.split('/')[0]! : u;
  return u.startsWith(ROOT) ? u.slice(ROOT.length + 1) : u;
}

/** `requests`, when given, adds a column of self time per request (setup traffic is a rounding error next to the load). */
export function summarize(path: string, top = 15, requests?: number): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // self time per node from samples and their time deltas (µs)
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  // self time of native, node: and package frames charged to the nearest of our functions that called them
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = (url: string) => url.startsWith(`file://${ROOT}/`) && !url.includes('/node_modules/');
  const charged = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    let at: ProfileNode | undefined = n;
    while (at && !ours(at.callFrame.url)) {
      const up = parent.get(at.id);
      at = up === undefined ? undefined : byId.get(up);
    }
    const owner = at
      ? `${at.callFrame.functionName || '(anonymous)'}  ${where(at.callFrame.url, false)}:${at.callFrame.lineNumber + 1}`
      : `(none of ours) ${f.functionName || '(anonymous)'}`;
    charged.set(owner, (charged.get(owner) ?? 0) + us);
    const key = `${f.functionName || '(anonymous)'}  ${where(f.url, false)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const file = f.functionName === '(garbage collector)' ? '(garbage collector)' : where(f.url);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1)}%`;
  const rows = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [
        k,
        pct(us),
        (us / 1000).toFixed(0),
        ...(requests ? [(us / requests).toFixed(1)] : []),
      ]);
  const perReq = requests ? ['µs/req'] : [];
  return [
    `profile ${path}: ${(total / 1e6).toFixed(1)} s sampled, ${((100 * idle) / total).toFixed(0)}% idle; shares below are of busy time` +
      (requests ? `; busy ${(busy / requests).toFixed(0)} µs per request` : ''),
    '',
    table(['self time by function', 'busy', 'ms', ...perReq], rows(fns)),
    '',
    table(['self time by package / file', 'busy', 'ms', ...perReq], rows(files)),
    '',
    table(
      ['self time charged to the nearest project function up the stack', 'busy', 'ms', ...perReq],
      rows(charged),
    ),
  ].join('\n');
}

/** A step of a request and the files whose frames belong to it (a project path or a package name prefix). */
export interface StepRule {
  step: string;
  match: RegExp;
}

/** The steps of a request through the vault's HTTP server, in pipeline order (issue 15). */
const VAULT_STEPS: StepRule[] = [
  {
    step: 'log (pino)',
    match:
      /^(pino|pino-std-serializers|sonic-boom|thread-stream|fast-redact|@pinojs\/redact)$|^src\/lib\/log/,
  },
  { step: 'authenticate', match: /^src\/core\/pipeline\/authenticate|^src\/auth\// },
  { step: 'rate limit', match: /^src\/core\/pipeline\/rate-limit/ },
  { step: 'describe', match: /^src\/core\/pipeline\/describe|^src\/engines\/kv\/(resources|names)/ },
  {
    step: 'authorize (scope, Cedar)',
    match: /^src\/core\/pipeline\/authorize|^src\/policy\/|^src\/contract\/scope|^@cedar-policy/,
  },
  { step: 'audit', match: /^src\/core\/pipeline\/audit|^src\/audit\// },
  { step: 'barrier + storage', match: /^src\/barrier\/|^src\/storage\/|^src\/crypto\// },
  { step: 'handler (engine)', match: /^src\/engines\// },
  { step: 'usage, metrics', match: /^src\/lib\/metrics|^src\/engines\/usage/ },
  { step: 'core dispatch', match: /^src\/core\// },
  {
    step: 'Fastify (routing, ajv, serializer)',
    match:
      /^(fastify|find-my-way|ajv|fast-json-stringify|fast-uri|avvio|@fastify\/.*|light-my-request|toad-cache|json-schema-ref-resolver|secure-json-parse|process-warning|abstract-logging|rfdc|fast-querystring)$|^src\/server\//,
  },
];

/** The steps of a call through the AI gateway (issue 15 item 2), nearest frame first as for the vault. */
export const GATEWAY_STEPS: StepRule[] = [
  { step: 'log (pino)', match: /^(pino|pino-std-serializers|sonic-boom|thread-stream|@pinojs\/redact)$/ },
  {
    step: 'provenance signing',
    match: /^src\/gateway\/(provenance|self-identity)|^src\/gateway\/stages\/signing/,
  },
  {
    step: 'firewall, output filter, key detection',
    match:
      /^src\/gateway\/stages\/(firewall|output-filter|detect)|^src\/gateway\/response-filters|^src\/scan\//,
  },
  { step: 'stream relay', match: /^src\/gateway\/(stream|relay-)/ },
  {
    step: 'authenticate, authorize, budgets (vault side)',
    match:
      /^src\/gateway\/(authenticate|authorize|admission|call-guard)|^src\/assemble\/gateway-vault\/|^src\/engines\/gateway\/|^src\/core\/|^src\/auth\/|^src\/policy\/|^@cedar-policy/,
  },
  {
    step: 'audit, usage, metrics',
    match: /^src\/gateway\/(record|call-metrics|labels|anomaly)|^src\/audit\/|^src\/lib\/metrics/,
  },
  {
    step: 'provider key, barrier',
    match: /^src\/gateway\/provider-keys|^src\/barrier\/|^src\/storage\/|^src\/crypto\//,
  },
  {
    step: 'forward upstream (undici)',
    match: /^src\/gateway\/(forward|upstream|routing|providers)|^undici$/,
  },
  { step: 'request handling', match: /^src\/gateway\// },
  {
    step: 'Fastify (routing, parsing)',
    match:
      /^(fastify|find-my-way|ajv|fast-json-stringify|fast-uri|avvio|@fastify\/.*|light-my-request|toad-cache|secure-json-parse|rfdc|fast-querystring)$/,
  },
  { step: 'OpenTelemetry', match: /^@opentelemetry\// },
];

/**
 * CPU per request by step: each sample goes to the step of the nearest frame up its stack that is
 * ours or a package's (native and node: frames are charged to whoever called them); samples with
 * none of those are node's own HTTP, net and timers work, the garbage collector or the VM.
 */
export function stepBudget(
  path: string,
  requests: number,
  rules: StepRule[] = VAULT_STEPS,
): { rows: { step: string; us: number }[]; total: number } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stepOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = stepOf.get(id);
    if (known) return known;
    const leaf = byId.get(id)!.callFrame.functionName;
    let step: string | undefined;
    if (leaf === '(garbage collector)') step = 'garbage collector';
    else if (leaf === '(program)') step = 'VM (program)';
    else if (leaf === '(idle)') step = '(idle)';
    for (let at: number | undefined = id; step === undefined && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      if (url === '' || url.startsWith('node:')) continue;
      const w = where(url);
      step =
        rules.find((r) => r.match.test(w))?.step ?? `other: ${w.startsWith('src/') ? w : w.split('/')[0]}`;
    }
    step ??= 'node (http, net, streams, timers)';
    stepOf.set(id, step);
    return step;
  };
  const us = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const step = classify(p.samples[i]!);
    if (step === '(idle)') continue;
    us.set(step, (us.get(step) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const rows = [...us].map(([step, t]) => ({ step, us: t / requests })).sort((a, b) => b.us - a.us);
  return { rows, total: rows.reduce((a, r) => a + r.us, 0) };
}

if (import.meta.main) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/lib/cpuprofile.ts FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  process.stdout.write(`${summarize(file, n ? Number(n) : 25)}\n`);
}
