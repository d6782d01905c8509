import type { ImportEntry } from '../../api/bulk.ts';

/** What a file parser found: entries to import, and what it could not use. */
export interface ParsedEntry extends ImportEntry {
  /** 1-based line where the entry starts, when the format has lines. */
  line?: number;
}

export interface ParseIssue {
  /** 1-based line, when known. */
  line?: number;
  /** The secret name concerned, when known. */
  name?: string;
  message: string;
}

export interface ParseResult {
  entries: ParsedEntry[];
  /** Lines or entries that cannot be imported: an import with any of these writes nothing. */
  invalid: ParseIssue[];
  /** Things worth knowing that do not stop the import (a duplicate key: the last one wins). */
  warnings: ParseIssue[];
}

export const FILE_FORMATS = ['env', 'json', 'yaml', 'vault'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];
