import { extname } from 'node:path';
import { SECRET_NAME_PATTERN } from '../../api/bulk.ts';
import { parseDotenv } from './dotenv.ts';
import { parseJson, parseVault, parseYaml } from './structured.ts';
import {
  FILE_FORMATS,
  type FileFormat,
  type ParsedEntry,
  type ParseIssue,
  type ParseResult,
} from './types.ts';

export type { FileFormat, ParsedEntry, ParseIssue, ParseResult } from './types.ts';

/** The format a file is in: the one given, else from its extension (.json, .yaml/.yml; anything else is .env). */
export function detectFormat(path: string, given?: string): FileFormat {
  if (given !== undefined) {
    if (!(FILE_FORMATS as readonly string[]).includes(given)) {
      throw new TypeError(
        `the file format must be one of ${FILE_FORMATS.join(', ')}, not ${JSON.stringify(given)}`,
      );
    }
    return given as FileFormat;
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  return 'env';
}

const PARSERS: Record<FileFormat, (text: string) => ParseResult> = {
  env: parseDotenv,
  json: parseJson,
  yaml: parseYaml,
  vault: parseVault,
};

/**
 * Parses a file and checks what every import needs: names that follow the
 * secret-name rule (invalid ones are reported with their line), and one entry
 * per name (a name defined again replaces the earlier one, with a warning).
 */
export function parseSecretsFile(text: string, format: FileFormat): ParseResult {
  const parsed = PARSERS[format](text);
  const invalid: ParseIssue[] = [...parsed.invalid];
  const warnings: ParseIssue[] = [...parsed.warnings];
  const byName = new Map<string, ParsedEntry>();
  for (const e of parsed.entries) {
    if (!SECRET_NAME_PATTERN.test(e.name)) {
      invalid.push({
        ...(e.line === undefined ? {} : { line: e.line }),
        name: e.name.slice(0, 140),
        message:
          "invalid secret name: use letters, digits, '_', '.' and '-', starting with a letter or '_', at most 128 characters",
      });
      continue;
    }
    const prior = byName.get(e.name);
    if (prior) {
      warnings.push({
        ...(e.line === undefined ? {} : { line: e.line }),
        name: e.name,
        message: `${e.name} is also defined${prior.line === undefined ? '' : ` on line ${prior.line}`}: this later one is used`,
      });
      byName.delete(e.name); // keep the order of the last definition
    }
    byName.set(e.name, e);
  }
  const byLine = (a: ParseIssue, b: ParseIssue) => (a.line ?? 0) - (b.line ?? 0);
  return { entries: [...byName.values()], invalid: invalid.sort(byLine), warnings: warnings.sort(byLine) };
}
