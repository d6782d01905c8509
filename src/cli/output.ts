import type { Format } from './context.ts';

/** Prints `data` as JSON, or as an aligned table of `rows` for humans. */
export function print(
  out: NodeJS.WritableStream,
  format: Format,
  data: unknown,
  rows?: () => (string | number | boolean | null | undefined)[][],
): void {
  if (format === 'json' || !rows) {
    out.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  out.write(table(rows()));
}

export function table(rows: (string | number | boolean | null | undefined)[][]): string {
  if (rows.length === 0) return '';
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths: number[] = [];
  for (const r of cells) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return `${cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

/** Key/value pairs as a two-column table. */
export function kv(pairs: Record<string, unknown>): (string | number | boolean | null | undefined)[][] {
  return Object.entries(pairs).map(([k, v]) => [
    k,
    typeof v === 'object' && v !== null ? JSON.stringify(v) : (v as string),
  ]);
}
