import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { zipSync } from 'fflate';
import { tempDir } from '../helpers/app.ts';
import { runCli } from '../helpers/process.ts';

/** A GGUF header with string metadata (general.architecture, general.name), then random tensor bytes. */
function gguf(meta: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.from('GGUF'), Buffer.alloc(4), Buffer.alloc(8), Buffer.alloc(8)];
  parts[1]!.writeUInt32LE(3);
  parts[3]!.writeBigUInt64LE(BigInt(Object.keys(meta).length));
  const str = (s: string) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(s)));
    return Buffer.concat([len, Buffer.from(s)]);
  };
  for (const [k, v] of Object.entries(meta)) {
    const type = Buffer.alloc(4);
    type.writeUInt32LE(8);
    parts.push(str(k), type, str(v));
  }
  parts.push(randomBytes(1000));
  return Buffer.concat(parts);
}

const advisory = (id: string, eco: string, name: string, fixed: string, severity: object) => ({
  id,
  summary: `${name} is vulnerable`,
  affected: [
    {
      package: { ecosystem: eco, name },
      ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed }] }],
    },
  ],
  ...severity,
});

test('sbom: a CycloneDX 1.6 ML-BOM of a model directory that the CycloneDX library validates, checked offline against an OSV export', {
  timeout: 60_000,
}, async (t) => {
  const dir = tempDir(t);
  const model = join(dir, 'qwen-tiny');
  mkdirSync(model);
  writeFileSync(
    join(model, 'README.md'),
    '---\nlicense: apache-2.0\ndatasets:\n  - wikitext-103\npipeline_tag: text-generation\nbase_model: qwen/qwen-base\n---\n# Qwen tiny\n',
  );
  writeFileSync(
    join(model, 'model.gguf'),
    gguf({ 'general.architecture': 'qwen2', 'general.name': 'Qwen Tiny' }),
  );
  writeFileSync(join(model, 'requirements.txt'), 'transformers==4.30.0\nnumpy\n');
  writeFileSync(join(model, 'poetry.lock'), '[[package]]\nname = "tokenizers"\nversion = "0.13.3"\n');
  writeFileSync(
    join(model, 'package-lock.json'),
    JSON.stringify({ packages: { '': {}, 'node_modules/onnxruntime-web': { version: '1.14.0' } } }),
  );
  const out = join(model, 'sbom.cdx.json');
  const made = await runCli(['sbom', model, '--out', out]);
  assert.equal(made.code, 0, made.stderr);
  const text = readFileSync(out, 'utf8');
  const bom = JSON.parse(text);
  // the independent check: the CycloneDX library's strict schema validator
  assert.equal(await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(text), null);
  assert.equal(bom.specVersion, '1.6');
  const m = bom.metadata.component;
  assert.equal(m.type, 'machine-learning-model');
  assert.equal(m.name, 'Qwen Tiny', 'the name comes from the GGUF header');
  assert.equal(m.modelCard.modelParameters.modelArchitecture, 'qwen2');
  assert.equal(m.modelCard.modelParameters.task, 'text-generation');
  assert.ok(
    m.components.some(
      (c: { name: string; hashes: unknown[] }) => c.name === 'model.gguf' && c.hashes.length === 1,
    ),
  );
  const purls = bom.components
    .map((c: { purl?: string; type: string; name: string }) => c.purl ?? `${c.type}:${c.name}`)
    .sort();
  assert.deepEqual(purls, [
    'data:wikitext-103',
    'pkg:npm/onnxruntime-web@1.14.0',
    'pkg:pypi/numpy',
    'pkg:pypi/tokenizers@0.13.3',
    'pkg:pypi/transformers@4.30.0',
  ]);

  // an OSV export of our own, as OSV publishes it (one JSON per advisory), in a directory and as all.zip
  const osv = join(dir, 'osv');
  mkdirSync(osv);
  const advisories = [
    advisory('GHSA-aaaa-0001', 'PyPI', 'transformers', '4.36.0', {
      database_specific: { severity: 'CRITICAL' },
    }),
    advisory('GHSA-aaaa-0002', 'npm', 'onnxruntime-web', '1.15.0', {
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N' }],
    }),
    advisory('GHSA-aaaa-0003', 'PyPI', 'tokenizers', '0.10.0', { database_specific: { severity: 'HIGH' } }),
  ];
  for (const a of advisories) writeFileSync(join(osv, `${a.id}.json`), JSON.stringify(a));
  const zip = join(dir, 'all.zip');
  writeFileSync(
    zip,
    zipSync(Object.fromEntries(advisories.map((a) => [`${a.id}.json`, Buffer.from(JSON.stringify(a))]))),
  );

  const table = await runCli(['sbom', 'check', out, '--osv', osv]);
  assert.equal(table.code, 1, 'a critical advisory fails the default --fail-on high');
  assert.match(table.stdout, /CRITICAL\s+GHSA-aaaa-0001\s+pkg:pypi\/transformers@4\.30\.0/);
  assert.match(table.stdout, /MEDIUM\s+GHSA-aaaa-0002/, 'severity from the CVSS v3 vector (5.4)');
  assert.ok(!table.stdout.includes('GHSA-aaaa-0003'), 'a version past the fix is not affected');
  const json = await runCli([
    'sbom',
    'check',
    out,
    '--osv',
    zip,
    '--format',
    'json',
    '--fail-on',
    'critical',
  ]);
  assert.equal(json.code, 1);
  assert.deepEqual(
    JSON.parse(json.stdout).findings.map((f: { advisory: string }) => f.advisory),
    ['GHSA-aaaa-0001', 'GHSA-aaaa-0002'],
  );
  const sarif = JSON.parse((await runCli(['sbom', 'check', out, '--osv', osv, '--format', 'sarif'])).stdout);
  assert.equal(sarif.version, '2.1.0');
  assert.deepEqual(
    sarif.runs[0].results.map((r: { ruleId: string; level: string }) => [r.ruleId, r.level]),
    [
      ['GHSA-aaaa-0001', 'error'],
      ['GHSA-aaaa-0002', 'warning'],
    ],
  );
  const vex = await runCli(['sbom', 'check', out, '--osv', osv, '--format', 'vex']);
  const vexText = vex.stdout;
  assert.equal(
    await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(vexText),
    null,
    'the VEX is valid CycloneDX',
  );
  assert.equal(
    JSON.parse(vexText).vulnerabilities[0].affects[0].ref,
    `${bom.serialNumber}/1#lib:pkg:pypi/transformers@4.30.0`,
  );
  // the threshold decides the exit code
  const medium = await runCli(['sbom', 'check', out, '--osv', join(dir, 'only-medium')].concat([]));
  assert.equal(medium.code, 1, 'a missing export is an error');
  mkdirSync(join(dir, 'only-medium'));
  writeFileSync(join(dir, 'only-medium', 'a.json'), JSON.stringify(advisories[1]));
  assert.equal(
    (await runCli(['sbom', 'check', out, '--osv', join(dir, 'only-medium')])).code,
    0,
    'medium is below high',
  );
  assert.equal(
    (await runCli(['sbom', 'check', out, '--osv', join(dir, 'only-medium'), '--fail-on', 'medium'])).code,
    1,
  );
});
