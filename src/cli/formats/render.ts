import { stringify } from 'yaml';
import type { ExportResponse } from '../../api/bulk.ts';
import { quoteDotenv } from './dotenv.ts';

/**
 * Renders an export in a format `strongroom import` reads back exactly:
 * `.env` (values quoted and escaped as needed), or JSON/YAML objects of
 * `NAME: {value, provider, owner, expires_at, rotation, tags, metadata}` with
 * only the settings that are set. Without values, the .env form is a
 * template (`NAME=`), and the JSON/YAML entries carry no `value`.
 */
export type ExportFormat = 'env' | 'json' | 'yaml';

function fieldsOf(s: ExportResponse['secrets'][number]): Record<string, unknown> {
  return {
    ...(s.value === undefined ? {} : { value: s.value }),
    ...(s.provider ? { provider: s.provider } : {}),
    ...(s.owner ? { owner: s.owner } : {}),
    ...(s.expires_at ? { expires_at: s.expires_at } : {}),
    ...(s.rotation ? { rotation: s.rotation } : {}),
    ...(s.tags.length ? { tags: s.tags } : {}),
    ...(Object.keys(s.metadata).length ? { metadata: s.metadata } : {}),
  };
}

export function renderExport(r: ExportResponse, format: ExportFormat): string {
  if (format === 'env') {
    const head = r.values
      ? `# Strongroom export of ${r.project}/${r.env} at ${r.exported_at}: SECRET VALUES, keep this file private\n`
      : `# Strongroom export of ${r.project}/${r.env} at ${r.exported_at}: names only (export with --values for values)\n`;
    return (
      head + r.secrets.map((s) => `${s.name}=${s.value === undefined ? '' : quoteDotenv(s.value)}\n`).join('')
    );
  }
  const obj = Object.fromEntries(r.secrets.map((s) => [s.name, fieldsOf(s)]));
  if (format === 'json') return `${JSON.stringify(obj, null, 2)}\n`;
  // plain text scalars that YAML would read as something else are quoted by stringify
  return r.secrets.length === 0 ? '{}\n' : stringify(obj, { lineWidth: 0 });
}
