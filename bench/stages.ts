// Pipeline stage costs (src/gateway/stages), in one process:
// - output filter throughput (MB/s) against `String.prototype.replaceAll` of one secret (the baseline:
//   the least a redactor can do), for one push of the whole text and for streamed chunks;
// - prompt firewall cost per KB of prompt (every check on, the vault lookup through an HMAC per candidate);
// - stage provenance: signStage and verifyStage per call.
// Each figure is the median of BENCH_RUNS runs (default 5); variants are interleaved per run.
import { createHmac, createPrivateKey } from 'node:crypto';
import { createPromptFirewall } from '../src/gateway/stages/firewall.ts';
import { createOutputFilter } from '../src/gateway/stages/output-filter.ts';
import { signStage, verifyStage } from '../src/gateway/stages/signing.ts';
import type { CallInfo } from '../src/gateway/types.ts';
import { parsePemCertificates } from '../src/spiffe/index.ts';
import { bundlesFromCertificates } from '../src/spiffe/svid-source.ts';
import { createTestCa } from '../test/fixtures/mtls-ca.ts';
import { fmt, table, watchdog } from './lib/proc.ts';

watchdog(5 * 60_000, 'stages');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MB = Number(process.env.BENCH_STAGES_MB ?? 4);
const CALL = { request_id: 'r', trace_id: 't' } as CallInfo;
const KEY = 'sk-proj-Q7vZ3mK9pL2xR8tW4nB6yH1cF5jD0gS-aE_uI3oP7kM2qN9rT4vX8zC6bV1nL5hG0fJ3dK7sA9wE2';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

// LLM-like output: prose, some code and JSON, a planted key every ~64 KB
const WORDS =
  'the model returns a streamed answer with tokens of text and some code like const value = compute(input); and JSON {"id":"chatcmpl-123","object":"chunk"} while users read it'.split(
    ' ',
  );
let text = '';
for (let i = 0; text.length < MB * 1024 * 1024; i++) {
  text += WORDS[i % WORDS.length]!;
  text += i % 9 === 0 ? '\n' : ' ';
  if (i % 8000 === 0) text += ` ${KEY} `;
}
const mb = Buffer.byteLength(text) / (1024 * 1024);

function filterRun(opts: Parameters<typeof createOutputFilter>[0], chunk: number): number {
  const f = createOutputFilter(opts).open(CALL, [KEY]);
  const t0 = performance.now();
  let n = 0;
  if (chunk === 0) n += f.push(text).length;
  else for (let i = 0; i < text.length; i += chunk) n += f.push(text.slice(i, i + chunk)).length;
  n += f.end().length;
  if (n === 0) throw new Error('no output');
  return performance.now() - t0;
}

const variants: [string, () => number][] = [
  [
    'replaceAll(one secret) (baseline)',
    () => {
      const t0 = performance.now();
      if (text.replaceAll(KEY, '[REDACTED]').length === 0) throw new Error('x');
      return performance.now() - t0;
    },
  ],
  ['filter: secret forms only, one push', () => filterRun({ credentialFormats: false }, 0)],
  ['filter: + credential rules, one push', () => filterRun({}, 0)],
  [
    'filter: + credentials + PII, one push',
    () => filterRun({ pii: ['email', 'phone', 'credit_card', 'us_ssn', 'iban'] }, 0),
  ],
  [
    'filter: + credentials + PII, 1 KiB chunks',
    () => filterRun({ pii: ['email', 'phone', 'credit_card', 'us_ssn', 'iban'] }, 1024),
  ],
  [
    'filter: + credentials + PII, 16 B chunks',
    () => filterRun({ pii: ['email', 'phone', 'credit_card', 'us_ssn', 'iban'] }, 16),
  ],
  ['filter: secret forms only, 16 B chunks', () => filterRun({ credentialFormats: false }, 16)],
];
const times = variants.map(() => [] as number[]);
for (const [, f] of variants) f(); // warm-up
for (let r = 0; r < RUNS; r++) {
  for (let k = 0; k < variants.length; k++) {
    const i = (k + r) % variants.length;
    times[i]!.push(variants[i]![1]());
  }
}
const base = median(times[0]!);
console.log(`output filter over ${fmt(mb, 1)} MB of LLM-like text (median of ${RUNS})`);
console.log(
  table(
    ['variant', 'ms', 'MB/s', 'ratio vs replaceAll'],
    variants.map(([name], i) => {
      const ms = median(times[i]!);
      return [name, fmt(ms, 1), fmt(mb / (ms / 1000), 1), `${fmt(base / ms, 3)}x`];
    }),
  ),
);

// ---------------------------------------------------------------- firewall
const hmacKey = 'bench-hmac-key';
const vault = new Set(
  Array.from({ length: 1000 }, (_, i) =>
    createHmac('sha256', hmacKey).update(`vault-value-${i}-xyz`).digest('base64'),
  ),
);
const fw = createPromptFirewall(
  { pii: { email: 'refuse', phone: 'refuse' } },
  { holdsAny: (cs) => cs.some((c) => vault.has(createHmac('sha256', hmacKey).update(c).digest('base64'))) },
);
const prompt = text.slice(0, 100 * 1024).replaceAll(KEY, 'nothing');
const fwTimes: number[] = [];
for (let r = 0; r < RUNS * 4; r++) {
  const t0 = performance.now();
  await fw.inspect({ texts: [prompt] }, CALL);
  fwTimes.push(performance.now() - t0);
}
const fwMs = median(fwTimes);
console.log(`\nprompt firewall, 100 KB prompt, every check on (vault lookup: HMAC-SHA256 per candidate)`);
console.log(table(['ms per prompt', 'ms per KB'], [[fmt(fwMs, 2), fmt(fwMs / 100, 3)]]));

// ---------------------------------------------------------------- signing
const ca = await createTestCa('bench.test');
const svid = await ca.issue('spiffe://bench.test/stage/firewall');
const key = { privateKey: createPrivateKey(svid.privateKey), chain: parsePemCertificates(svid.chain) };
const bundles = bundlesFromCertificates(ca.pem, 'bench.test');
const body = Buffer.from(text.slice(0, 4096));
const N = 300;
const signT: number[] = [];
const verifyT: number[] = [];
for (let i = 0; i < N; i++) {
  let t0 = performance.now();
  const link = await signStage({
    body,
    stage: 'firewall',
    spiffeId: 'spiffe://bench.test/stage/firewall',
    traceId: 'a'.repeat(32),
    key,
  });
  signT.push(performance.now() - t0);
  t0 = performance.now();
  await verifyStage(link, { body, traceId: 'a'.repeat(32), bundles, now: Date.now() });
  verifyT.push(performance.now() - t0);
}
console.log(`\nstage provenance, 4 KiB body (median of ${N})`);
console.log(
  table(
    ['operation', 'µs/op'],
    [
      ['signStage (ES256, jose)', fmt(median(signT) * 1000, 0)],
      ['verifyStage (SVID path + ES256)', fmt(median(verifyT) * 1000, 0)],
    ],
  ),
);
