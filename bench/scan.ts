// Scan throughput: `strongroom scan`'s detectors (src/scan, in process: walk + read + every rule with its
// validation) against `grep -rEo` with the same patterns in POSIX ERE, on the same generated tree in the
// same run. The tree is BENCH_SCAN_MB (default 64) MiB of code-like text in files of 4-64 KiB, with a key
// planted every few hundred lines and look-alikes (hex hashes, UUIDs, placeholders) throughout.
// Rounds alternate the order of the two; the figure is the median of BENCH_RUNS rounds (default 3). The
// ratio is our MB/s over grep's: higher is better, 1.00x means as fast as grep. grep runs with LC_ALL=C
// (its fastest mode) and has the page cache as warm as we do (a warm-up pass reads the tree first).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanPaths } from '../src/scan/scan.ts';
import { expand, prng } from '../test/fixtures/scan/corpus.ts';
import { fmt, table, tempDir, watchdog } from './lib/proc.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MB = Number(process.env.BENCH_SCAN_MB ?? 64);

watchdog(10 * 60_000, 'scan');

const ci = (w: string) => w.replace(/[a-z]/g, (c) => `[${c}${c.toUpperCase()}]`);
/** The rules of src/scan/rules.ts in ERE (no look-around: grep matches at least as much). */
const GREP_PATTERNS = [
  'sk-(proj|svcacct|admin)-[A-Za-z0-9_-]{40,}',
  'sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}',
  'sk-ant-(api03|admin01)-[A-Za-z0-9_-]{80,120}AA',
  'AIza[0-9A-Za-z_-]{35}',
  '[0-9a-f]{32}',
  'hf_[A-Za-z0-9]{34}',
  'gsk_[A-Za-z0-9]{52}',
  'sk-or-v1-[0-9a-f]{64}',
  '[A-Za-z0-9]{32}',
  '(AKIA|ASIA)[A-Z2-7]{16}',
  'sr[ts]_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}',
  `(${['key', 'secret', 'token', 'password', 'passwd', 'pwd', 'credential'].map(ci).join('|')})[A-Za-z0-9_.-]*["'\`]?[[:space:]]*(:=|=>|[:=])[[:space:]]*["'\`]?[^[:space:]"'\`,;]{24,200}`,
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const WORDS =
  'const let return function async await import export from if else for while new this value result error config client request response options user project secret name index data items map filter reduce string number boolean true false null undefined'.split(
    ' ',
  );
const PLANTS = [
  'OPENAI_API_KEY=sk-proj-{B:74}T3BlbkFJ{B:74}',
  'ANTHROPIC_API_KEY=sk-ant-api03-{B:93}AA',
  'GROQ_API_KEY=gsk_{A:52}',
  'aws_access_key_id = AKIA{K:16}',
  'const etag = "{H:32}";',
  'const id = "3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60";',
  'OPENAI_API_KEY=sk-your-key-here',
  'DB_PASSWORD = "{B:32}"',
];

function generate(root: string): { bytes: number; files: number } {
  const rand = prng(99);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  let bytes = 0;
  let files = 0;
  while (bytes < MB * 1024 * 1024) {
    const size = 4096 + Math.floor(rand() * 60 * 1024);
    const lines: string[] = [];
    let n = 0;
    while (n < size) {
      const line =
        rand() < 0.004
          ? expand(pick(PLANTS), rand)
          : `${'  '.repeat(Math.floor(rand() * 4))}${Array.from({ length: 3 + Math.floor(rand() * 9) }, () => pick(WORDS)).join(' ')};`;
      lines.push(line);
      n += line.length + 1;
    }
    const dir = join(root, `pkg${files % 40}`, `mod${files % 7}`);
    mkdirSync(dir, { recursive: true });
    const text = `${lines.join('\n')}\n`;
    writeFileSync(join(dir, `file${files}.ts`), text);
    bytes += Buffer.byteLength(text);
    files++;
  }
  return { bytes, files };
}

function runGrep(root: string): { ms: number; matches: number } {
  const args = ['-rEoh', ...GREP_PATTERNS.flatMap((p) => ['-e', p]), root];
  const t = performance.now();
  const r = spawnSync('grep', args, { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 1 << 30 });
  const ms = performance.now() - t;
  if (r.status !== 0 && r.status !== 1) throw new Error(`grep failed: ${r.stderr}`);
  return { ms, matches: r.stdout.toString().split('\n').length - 1 };
}

function runOurs(root: string): { ms: number; findings: number; bytes: number } {
  const t = performance.now();
  const { findings, stats } = scanPaths([root], { cwd: root });
  return { ms: performance.now() - t, findings: findings.length, bytes: stats.bytes };
}

const root = tempDir('strongroom-bench-scan-');
const tree = generate(root);
const mib = tree.bytes / (1024 * 1024);
process.stdout.write(`generated ${fmt(tree.files)} files, ${fmt(mib, 1)} MiB in ${root}\n`);
runGrep(root); // warm the page cache
const ours: number[] = [];
const grep: number[] = [];
let found = 0;
let grepMatches = 0;
for (let i = 0; i < RUNS; i++) {
  const order = i % 2 === 0 ? ['ours', 'grep'] : ['grep', 'ours'];
  for (const which of order) {
    if (which === 'ours') {
      const r = runOurs(root);
      if (r.bytes !== tree.bytes) throw new Error(`scanned ${r.bytes} bytes of ${tree.bytes}`);
      ours.push(mib / (r.ms / 1000));
      found = r.findings;
    } else {
      const r = runGrep(root);
      grep.push(mib / (r.ms / 1000));
      grepMatches = r.matches;
    }
  }
}
const o = median(ours);
const g = median(grep);
process.stdout.write(
  `${table(
    ['scanner', 'MB/s', 'hits', 'vs grep'],
    [
      ['strongroom scan (rules + validation)', fmt(o, 1), fmt(found), `${(o / g).toFixed(2)}x`],
      ['grep -rEo (same patterns, LC_ALL=C)', fmt(g, 1), fmt(grepMatches), '1.00x'],
    ],
  )}\n`,
);
process.stdout.write(
  `median of ${RUNS} rounds; MB = MiB; grep's hits are raw pattern matches (no validation, no context, no look-alike filtering)\n`,
);
