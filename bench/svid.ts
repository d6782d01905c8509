// X.509-SVID issuance and verification throughput, against raw ECDSA P-256 in
// the same run. Variants, each timed as ops/s (one at a time, no concurrency):
//   crypto.sign (baseline)   node:crypto sign of 300 bytes with a P-256 KeyObject:
//                            the least an issuance (one CA signature) can cost
//   crypto.verify            node:crypto verify of that signature: the least a
//                            chain verification (one signature check) can cost
//   issue (CSR + leaf)       validateCsr (PEM parse, proof-of-possession check,
//                            SPIFFE rules) + issueX509Svid (DER build + CA signature)
//   verifyX509Svid           a fresh DER leaf (parsed each time, as a TLS peer's
//                            would be) against a one-root bundle
// Each figure is the median of RUNS timed runs of N iterations after a warm-up,
// the variants interleaved in rotating order; the ratio is the median of the
// per-run ratios against crypto.sign (higher is better; 1.00x would mean no
// overhead over one raw signature). Knobs: BENCH_RUNS (5), BENCH_N (500).
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { generateEcKeyPair } from '../src/spiffe/keys.ts';
import { x509 } from '../src/spiffe/peculiar.ts';
import { buildCaCertificate, issueX509Svid, validateCsr, verifyX509Svid } from '../src/spiffe/x509-svid.ts';
import { fmt, table, watchdog } from './lib/proc.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const N = Number(process.env.BENCH_N ?? 500);
watchdog(180_000, 'svid');

const now = Date.now();
const caKeys = await generateEcKeyPair();
const ca = await buildCaCertificate({
  trustDomain: 'bench.test',
  keys: caKeys,
  notBefore: now - 3600_000,
  notAfter: now + 86400_000,
});
const caRef = { cert: ca.certificate, privateKey: caKeys.privateKey };
const workloadKeys = await generateEcKeyPair();
const csrPem = (
  await x509.Pkcs10CertificateRequestGenerator.create({
    keys: workloadKeys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: 'spiffe://bench.test/ns/prod/sa/api' },
      ]),
    ],
  })
).toString('pem');
const leaf = await issueX509Svid({
  ca: caRef,
  csrPublicKey: workloadKeys.publicKey,
  spiffeId: 'spiffe://bench.test/ns/prod/sa/api',
  ttlSeconds: 3600,
  now,
});
const leafDer = Buffer.from(leaf.der); // a copy: verification re-parses it every time
const bundles = new Map([['bench.test', [ca.certificate]]]);
const raw = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const message = Buffer.alloc(300, 7);
const signature = sign('sha256', message, { key: raw.privateKey, dsaEncoding: 'der' });

let sink = 0;
const variants: { name: string; op: () => unknown }[] = [
  {
    name: 'crypto.sign P-256 (baseline)',
    op: () => sign('sha256', message, { key: raw.privateKey, dsaEncoding: 'der' }),
  },
  {
    name: 'crypto.verify P-256',
    op: () => verify('sha256', message, { key: raw.publicKey, dsaEncoding: 'der' }, signature),
  },
  {
    name: 'issue (validateCsr + issueX509Svid)',
    op: async () => {
      const req = await validateCsr(csrPem, { trustDomain: 'bench.test' });
      const out = await issueX509Svid({
        ca: caRef,
        csrPublicKey: req.publicKey,
        spiffeId: req.spiffeId,
        ttlSeconds: 3600,
        now,
      });
      sink += out.der.length;
    },
  },
  {
    name: 'verifyX509Svid (fresh DER leaf)',
    op: () => {
      sink += verifyX509Svid([leafDer], bundles, { now }).notAfter.getTime() & 1;
    },
  },
];

async function runOnce(op: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const r = op();
    if (r instanceof Promise) await r;
  }
  return (N * 1e9) / Number(process.hrtime.bigint() - t0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

for (const v of variants) await runOnce(v.op); // warm-up
const rates: number[][] = variants.map(() => []);
const ratios: number[][] = variants.map(() => []);
for (let run = 0; run < RUNS; run++) {
  const perRun: number[] = new Array(variants.length);
  for (let k = 0; k < variants.length; k++) {
    const i = (k + run) % variants.length;
    perRun[i] = await runOnce(variants[i]!.op);
  }
  perRun.forEach((r, i) => {
    rates[i]!.push(r);
    ratios[i]!.push(r / perRun[0]!);
  });
}

process.stdout.write(
  `${table(
    ['variant', 'ops/s', 'µs/op', 'ratio vs crypto.sign'],
    variants.map((v, i) => {
      const r = median(rates[i]!);
      return [v.name, fmt(r), fmt(1e6 / r, 1), `${median(ratios[i]!).toFixed(3)}x`];
    }),
  )}\n`,
);
if (sink === -1) process.stdout.write('');
