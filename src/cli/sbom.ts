import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { unzipSync } from 'fflate';
import { atLeast, checkSbom, type Finding, type OsvAdvisory, SEVERITIES, type Severity } from '../api/osv.ts';
import { modelSbom } from '../sdk/models/sbom.ts';
import { type CliIO, globals, UsageError } from './context.ts';
import { print } from './output.ts';

/** Advisories from an OSV export: a directory of JSON files (one per advisory), or OSV's `all.zip`. */
export async function loadOsv(path: string): Promise<OsvAdvisory[]> {
  const out: OsvAdvisory[] = [];
  const add = (name: string, text: string) => {
    try {
      const a = JSON.parse(text) as OsvAdvisory;
      if (typeof a.id === 'string') out.push(a);
    } catch {
      throw new UsageError(`${name} in the OSV export is not JSON`);
    }
  };
  if ((await stat(path)).isDirectory()) {
    for (const e of await readdir(path, { recursive: true, withFileTypes: true })) {
      if (e.isFile() && e.name.endsWith('.json'))
        add(e.name, await readFile(join(e.parentPath, e.name), 'utf8'));
    }
  } else {
    const files = unzipSync(new Uint8Array(await readFile(path)), {
      filter: (f) => f.name.endsWith('.json'),
    });
    for (const [name, bytes] of Object.entries(files)) add(name, Buffer.from(bytes).toString('utf8'));
  }
  return out;
}

const LEVEL: Record<Severity, string> = {
  critical: 'error',
  high: 'error',
  medium: 'warning',
  low: 'note',
  unknown: 'note',
};
const SCORE: Record<Severity, string> = {
  critical: '9.5',
  high: '8.0',
  medium: '5.5',
  low: '2.0',
  unknown: '0.0',
};

/** SARIF 2.1.0, one result per finding (code scanning dashboards read it). */
function sarif(sbomPath: string, findings: Finding[]) {
  const rules = [...new Map(findings.map((f) => [f.advisory, f])).values()].map((f) => ({
    id: f.advisory,
    shortDescription: { text: f.summary || f.advisory },
    properties: { 'security-severity': SCORE[f.severity], tags: ['security', 'sbom'] },
  }));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'strongroom sbom check', informationUri: 'https://osv.dev', rules } },
        results: findings.map((f) => ({
          ruleId: f.advisory,
          level: LEVEL[f.severity],
          message: {
            text: `${f.component} is affected by ${f.advisory} (${f.severity})${f.summary ? `: ${f.summary}` : ''}`,
          },
          locations: [
            {
              physicalLocation: { artifactLocation: { uri: sbomPath } },
              logicalLocations: [{ name: f.component, kind: 'package' }],
            },
          ],
        })),
      },
    ],
  };
}

/** A CycloneDX 1.6 VEX document: the vulnerabilities, each pointing at the SBOM's component. */
function vex(sbom: { serialNumber?: string }, findings: Finding[]) {
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    version: 1,
    vulnerabilities: findings.map((f) => ({
      id: f.advisory,
      source: { name: 'OSV', url: `https://osv.dev/vulnerability/${f.advisory}` },
      ratings: [{ severity: f.severity === 'unknown' ? 'unknown' : f.severity }],
      ...(f.summary ? { description: f.summary } : {}),
      affects: [
        {
          ref:
            sbom.serialNumber && f.bomRef ? `${sbom.serialNumber}/1#${f.bomRef}` : (f.bomRef ?? f.component),
        },
      ],
      analysis: { state: 'in_triage' },
    })),
  };
}

/** `strongroom sbom DIR` and `strongroom sbom check SBOM` (docs/sbom.md). */
export function sbomCommands(program: Command, io: CliIO): void {
  const s = program
    .command('sbom')
    .description('an AI SBOM of a model directory (CycloneDX 1.6), and offline checks against OSV')
    .argument('[dir]', 'the model directory')
    .option('--out <file>', 'where to write it (default: standard output)')
    .option(
      '--name <name>',
      'the model’s name (default: the model card’s, the GGUF header’s or the directory’s)',
    )
    .action(async (dir: string | undefined, o: { out?: string; name?: string }) => {
      if (!dir)
        throw new UsageError(
          'give the model directory: strongroom sbom DIR (or strongroom sbom check SBOM --osv PATH)',
        );
      const bom = await modelSbom(dir, o.name ? { name: o.name } : {});
      const text = `${JSON.stringify(bom, null, 2)}\n`;
      if (o.out) await writeFile(o.out, text);
      else io.stdout.write(text);
    });

  s.command('check')
    .argument('<sbom>', 'a CycloneDX JSON SBOM')
    .requiredOption('--osv <path>', 'an OSV export: a directory of advisory JSON files, or OSV’s all.zip')
    .option('--fail-on <severity>', `exit 1 at or above: ${SEVERITIES.join(', ')}`, 'high')
    .description(
      'check every component with a package URL against the advisories; --format table, json, sarif or vex; exits 1 at or above --fail-on',
    )
    .action(async (path: string, o: { osv: string; failOn: string }, cmd: Command) => {
      // --format is the program's global option; sbom check adds sarif and vex
      const format = (globals(cmd).format as string | undefined) ?? 'table';
      if (!(SEVERITIES as readonly string[]).includes(o.failOn))
        throw new UsageError(`--fail-on is one of ${SEVERITIES.join(', ')}`);
      if (!['table', 'json', 'sarif', 'vex'].includes(format))
        throw new UsageError('--format is table, json, sarif or vex');
      let sbom: { serialNumber?: string };
      try {
        sbom = JSON.parse(await readFile(path, 'utf8')) as { serialNumber?: string };
      } catch (err) {
        throw new UsageError(`cannot read the SBOM ${path}: ${(err as Error).message}`);
      }
      const findings = checkSbom(sbom, await loadOsv(o.osv));
      if (format === 'sarif') io.stdout.write(`${JSON.stringify(sarif(path, findings), null, 2)}\n`);
      else if (format === 'vex') io.stdout.write(`${JSON.stringify(vex(sbom, findings), null, 2)}\n`);
      else {
        print(io.stdout, format === 'json' ? 'json' : 'table', { findings }, () => [
          ['SEVERITY', 'ADVISORY', 'COMPONENT', 'SUMMARY'],
          ...findings.map((f) => [f.severity.toUpperCase(), f.advisory, f.component, f.summary.slice(0, 80)]),
          ...(findings.length ? [] : [['(no known advisory affects this SBOM)', '', '', '']]),
        ]);
      }
      if (findings.some((f) => atLeast(f.severity, o.failOn as Severity))) io.exitCode = 1;
    });
}
