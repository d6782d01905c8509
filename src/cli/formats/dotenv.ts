import type { ParsedEntry, ParseIssue, ParseResult } from './types.ts';

/**
 * A `.env` parser (dotenv syntax, docs/import-export.md):
 *
 *   KEY=value               unquoted: surrounding blanks trimmed; ` #` starts a comment
 *   export KEY=value        the `export ` prefix is ignored
 *   KEY='literal'           single quotes (and backticks): taken as is, may span lines
 *   KEY="a\nb"              double quotes: \n \r \t \" \\ \$ \` \' are escapes, may span lines
 *   KEY=                    an empty value
 *   # comment               comments and blank lines are skipped
 *
 * A `#` only starts an inline comment after a blank (as in Docker Compose), so
 * `PASSWORD=p#ss` keeps its `#`. Values are never expanded (`${OTHER}` stays
 * as written). Lines are reported 1-based; a value spanning lines is reported
 * at its first line.
 */
const ESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '"': '"',
  '\\': '\\',
  $: '$',
  '`': '`',
  "'": "'",
};

function unescapeDouble(s: string): string {
  return s.replace(/\\(.)/gs, (m, c: string) => ESCAPES[c] ?? m);
}

export function parseDotenv(text: string): ParseResult {
  const entries: ParsedEntry[] = [];
  const invalid: ParseIssue[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let rest = lines[i]!.trimStart();
    if (rest === '' || rest.startsWith('#')) continue;
    if (/^export[ \t]/.test(rest)) rest = rest.slice(7).trimStart();
    const eq = rest.indexOf('=');
    if (eq < 0) {
      invalid.push({ line: lineNo, message: 'expected NAME=value' });
      continue;
    }
    const name = rest.slice(0, eq).trim();
    if (name === '') {
      invalid.push({ line: lineNo, message: "no name before '='" });
      continue;
    }
    if (/[\s'"`]/.test(name)) {
      invalid.push({ line: lineNo, name, message: 'a name cannot contain blanks or quotes' });
      continue;
    }
    const raw = rest.slice(eq + 1);
    const after = raw.trimStart();
    const q = after[0];
    if (q === '"' || q === "'" || q === '`') {
      // find the closing quote, possibly on a later line
      let body = after.slice(1);
      let end = -1;
      let j = i;
      for (;;) {
        end = closingQuote(body, q);
        if (end >= 0 || j + 1 >= lines.length) break;
        j++;
        body += `\n${lines[j]}`;
      }
      if (end < 0) {
        invalid.push({
          line: lineNo,
          name,
          message: `the ${q === '"' ? 'double' : q === "'" ? 'single' : 'back'} quote is never closed`,
        });
        // the rest of the file was swallowed by the open quote: nothing after it can be trusted
        break;
      }
      const tail = body.slice(end + 1);
      i = j;
      if (!/^[ \t]*(#.*)?$/.test(tail)) {
        invalid.push({ line: j + 1, name, message: 'unexpected text after the closing quote' });
        continue;
      }
      const inner = body.slice(0, end);
      entries.push({ name, value: q === '"' ? unescapeDouble(inner) : inner, line: lineNo });
      continue;
    }
    const hash = raw.search(/[ \t]#/);
    const value = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    entries.push({ name, value, line: lineNo });
  }
  return { entries, invalid, warnings: [] };
}

/** Index of the quote closing a value that started with `q`, or -1. */
function closingQuote(s: string, q: string): number {
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (q === '"' && c === '\\') {
      k++;
      continue;
    }
    if (c === q) return k;
  }
  return -1;
}

const SAFE = /^[A-Za-z0-9_.,:/@+=%^~-]*$/;

/** One value as .env text that parseDotenv reads back exactly. */
export function quoteDotenv(value: string): string {
  if (SAFE.test(value)) return value;
  if (!/['\r\n]/.test(value)) return `'${value}'`;
  return `"${value.replace(/[\\"\n\r`$]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '`': '\\`', $: '\\$' })[c]!)}"`;
}
