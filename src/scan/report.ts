import { RULES } from './rules.ts';
import type { Finding } from './scan.ts';

/** Left-aligned columns, two spaces apart (the same look as the CLI's other tables). */
function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

export type ScanFormat = 'table' | 'json' | 'sarif';

export interface ScanSummary {
  files: number;
  bytes: number;
  skipped: number;
  blobs?: number;
  /** With `--git`: the top folder of each repository whose history was scanned. */
  repositories?: string[];
}

/** Aligned table for humans, followed by a one-line summary. */
function renderTable(findings: Finding[], summary: ScanSummary): string {
  const git = findings.some((f) => f.commit !== undefined);
  const head = ['LOCATION', 'RULE', 'PROVIDER', 'PREVIEW', 'FINGERPRINT', ...(git ? ['COMMIT'] : [])];
  const rows = findings.map((f) => [
    `${f.file}:${f.line}:${f.column}`,
    f.ruleId,
    f.provider,
    f.preview,
    f.fingerprint,
    ...(git ? [f.commit ? f.commit.slice(0, 12) : '(working tree)'] : []),
  ]);
  const history =
    summary.blobs === undefined
      ? ''
      : `, ${summary.blobs} blobs in the history of ${summary.repositories?.length ? summary.repositories.join(', ') : 'the repository'}`;
  const scanned = `${summary.files} file${summary.files === 1 ? '' : 's'}${history}`;
  const tail =
    findings.length === 0
      ? `No hard-coded credentials found (${scanned} scanned).\n`
      : `\n${findings.length} finding${findings.length === 1 ? '' : 's'} (${scanned} scanned). ` +
        'Move each key into the vault, revoke it at the provider, and remove it from the file (and history).\n';
  return (findings.length ? table([head, ...rows]) : '') + tail;
}

function renderJson(findings: Finding[], summary: ScanSummary): string {
  return `${JSON.stringify({ findings, summary }, null, 2)}\n`;
}

/** SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps). */
function renderSarif(findings: Finding[]): string {
  const ruleIndex = new Map(RULES.map((r, i) => [r.id, i]));
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'strongroom-scan',
            rules: RULES.map((r) => ({
              id: r.id,
              name: r.id,
              shortDescription: { text: r.description },
              defaultConfiguration: { level: 'error' },
              properties: { provider: r.provider, tags: ['security', 'secret'] },
            })),
          },
        },
        results: findings.map((f) => ({
          ruleId: f.ruleId,
          ruleIndex: ruleIndex.get(f.ruleId) ?? 0,
          level: 'error',
          message: {
            text: `Hard-coded ${f.provider} credential (${f.preview})${f.commit ? ` added in commit ${f.commit}` : ''}`,
          },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: f.file.split('\\').join('/') },
                region: { startLine: f.line, startColumn: f.column },
              },
            },
          ],
          partialFingerprints: { 'strongroomSecret/v1': f.fingerprint },
          ...(f.commit ? { properties: { commit: f.commit } } : {}),
        })),
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

export function render(format: ScanFormat, findings: Finding[], summary: ScanSummary): string {
  if (format === 'json') return renderJson(findings, summary);
  if (format === 'sarif') return renderSarif(findings);
  return renderTable(findings, summary);
}
