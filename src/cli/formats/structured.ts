import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { ParsedEntry, ParseIssue, ParseResult } from './types.ts';

/**
 * JSON, YAML and Vault KV parsers. JSON and YAML files hold one object whose
 * keys are secret names and whose values are either the value itself
 * (`{"OPENAI_API_KEY": "sk-…"}`) or an object with the value and the
 * secret's fields (`{"OPENAI_API_KEY": {"value": "sk-…", "provider":
 * "openai", "tags": ["team-a"]}}`), the shape `strongroom export` writes.
 */
const FIELDS = new Set(['value', 'provider', 'owner', 'expires_at', 'rotation', 'tags', 'metadata']);

type Sink = { invalid: ParseIssue[]; warnings: ParseIssue[] };

/** An entry from one key/value pair, or undefined after reporting why not. */
function entryFrom(
  name: string,
  v: unknown,
  line: number | undefined,
  sink: Sink,
  opts: { nulls?: boolean } = {},
): ParsedEntry | undefined {
  const at = line === undefined ? {} : { line };
  const bad = (message: string) => {
    sink.invalid.push({ ...at, name, message });
    return undefined;
  };
  if (typeof v === 'string') return { name, value: v, ...at };
  if (typeof v === 'number' || typeof v === 'boolean') {
    sink.warnings.push({
      ...at,
      name,
      message: `the ${typeof v} ${String(v)} is stored as the text "${String(v)}"`,
    });
    return { name, value: String(v), ...at };
  }
  if (v === null || v === undefined) return bad('has no value');
  if (Array.isArray(v)) return bad('a value must be text or an object with "value", not a list');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!FIELDS.has(k)) return bad(`unknown field ${JSON.stringify(k)} (known: ${[...FIELDS].join(', ')})`);
  }
  if (!('value' in o)) return bad('has no "value" (is this an export made without --values?)');
  if (typeof o.value !== 'string') return bad('"value" must be text');
  const e: ParsedEntry = { name, value: o.value, ...at };
  // YAML read with the failsafe schema gives text: `~` and `null` mean "no setting"
  const field = (k: string) => (opts.nulls && (o[k] === '~' || o[k] === 'null') ? null : o[k]);
  for (const k of ['provider', 'owner', 'expires_at'] as const) {
    const f = field(k);
    if (f === undefined) continue;
    if (f !== null && typeof f !== 'string') return bad(`"${k}" must be text`);
    e[k] = f;
  }
  const tags = field('tags');
  if (tags !== undefined) {
    if (tags !== null && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string')))
      return bad('"tags" must be a list of text');
    e.tags = tags as string[] | null;
  }
  const rotation = field('rotation');
  if (rotation !== undefined) {
    if (rotation !== null && (typeof rotation !== 'object' || Array.isArray(rotation)))
      return bad('"rotation" must be an object like {"interval": "30d", "grace": "1d"}');
    e.rotation = rotation as ParsedEntry['rotation'];
  }
  const metadata = field('metadata');
  if (metadata !== undefined && metadata !== null) {
    if (
      typeof metadata !== 'object' ||
      Array.isArray(metadata) ||
      !Object.values(metadata).every((x) => typeof x === 'string')
    )
      return bad('"metadata" must be an object of text values');
    e.metadata = metadata as Record<string, string>;
  }
  return e;
}

/** The line of each top-level key of a JSON object (a small scanner: JSON.parse gives no positions). */
function jsonKeyLines(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let line = 1;
  let depth = 0;
  let expectKey = false;
  for (let k = 0; k < text.length; k++) {
    const c = text[k]!;
    if (c === '\n') line++;
    else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1 && c === '{';
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
    else if (c === '"') {
      const start = line;
      let s = '"';
      for (k++; k < text.length; k++) {
        const d = text[k]!;
        s += d;
        if (d === '\\') {
          s += text[++k] ?? '';
          continue;
        }
        if (d === '"') break;
        if (d === '\n') line++;
      }
      if (expectKey && depth === 1) {
        try {
          const key = JSON.parse(s) as string;
          out.set(key, [...(out.get(key) ?? []), start]);
        } catch {}
        expectKey = false;
      }
    }
  }
  return out;
}

/** Offset of the first JSON syntax error (JSON.parse's messages do not always say where). */
function jsonErrorOffset(t: string): number {
  let k = 0;
  const ws = () => {
    while (k < t.length && ' \t\r\n'.includes(t[k]!)) k++;
  };
  const fail = (): never => {
    throw k;
  };
  const str = () => {
    if (t[k] !== '"') fail();
    for (k++; k < t.length; k++) {
      const c = t[k]!;
      if (c === '\\') k++;
      else if (c === '"') return void k++;
      else if (c < ' ') fail();
    }
    fail();
  };
  const value = (): void => {
    ws();
    const c = t[k];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      k++;
      ws();
      if (t[k] === close) return void k++;
      for (;;) {
        if (c === '{') {
          ws();
          str();
          ws();
          if (t[k] !== ':') fail();
          k++;
        }
        value();
        ws();
        if (t[k] === ',') k++;
        else if (t[k] === close) return void k++;
        else fail();
      }
    }
    if (c === '"') {
      str();
      return;
    }
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(t.slice(k, k + 400));
    if (!m) fail();
    k += m![0].length;
  };
  try {
    value();
    ws();
    return k < t.length ? k : -1;
  } catch (at) {
    return at as number;
  }
}

function jsonError(text: string, err: Error): ParseIssue {
  const at = jsonErrorOffset(text);
  const line = at >= 0 ? text.slice(0, at).split('\n').length : undefined;
  return {
    ...(line === undefined ? {} : { line }),
    message: `not valid JSON: ${err.message.split('\n')[0]}`,
  };
}

function fromObject(
  obj: Record<string, unknown>,
  lines: Map<string, number[]> | undefined,
  sink: Sink,
): ParsedEntry[] {
  const entries: ParsedEntry[] = [];
  for (const [name, v] of Object.entries(obj)) {
    const at = lines?.get(name);
    // JSON.parse kept the last of duplicate keys: say so
    if (at && at.length > 1) {
      sink.warnings.push({
        line: at.at(-1)!,
        name,
        message: `${name} is also defined on line ${at.slice(0, -1).join(', ')}: the last one is used`,
      });
    }
    const e = entryFrom(name, v, at?.at(-1), sink);
    if (e) entries.push(e);
  }
  return entries;
}

export function parseJson(text: string): ParseResult {
  const sink: Sink = { invalid: [], warnings: [] };
  let obj: unknown;
  try {
    obj = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    return { entries: [], invalid: [jsonError(text, err as Error)], warnings: [] };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return { entries: [], invalid: [{ message: 'expected a JSON object of NAME: value' }], warnings: [] };
  }
  if (looksLikeVault(obj as Record<string, unknown>)) {
    sink.warnings.push({
      message: 'this looks like `vault kv get -format=json` output: reading it as a Vault export',
    });
    return { ...vaultEntries(obj as Record<string, unknown>, sink), ...sink };
  }
  const entries = fromObject(obj as Record<string, unknown>, jsonKeyLines(text), sink);
  return { entries, ...sink };
}

/** `vault kv get -format=json` output: `{request_id, lease_id, …, data: {...}}`. */
function looksLikeVault(o: Record<string, unknown>): boolean {
  const d = o.data;
  return (
    d !== null &&
    typeof d === 'object' &&
    !Array.isArray(d) &&
    ('request_id' in o || 'lease_id' in o || 'lease_duration' in o)
  );
}

function vaultEntries(o: Record<string, unknown>, sink: Sink): { entries: ParsedEntry[] } {
  const d = o.data as Record<string, unknown> | undefined;
  if (!d || typeof d !== 'object' || Array.isArray(d)) {
    sink.invalid.push({ message: 'expected Vault KV output with a "data" object' });
    return { entries: [] };
  }
  if (Array.isArray(d.keys) && Object.keys(d).length === 1) {
    sink.invalid.push({
      message:
        'this is `vault kv list` output (names only): export values with `vault kv get -format=json PATH`',
    });
    return { entries: [] };
  }
  // KV v2 nests the values under data.data, next to data.metadata
  const v2 = d.data !== null && typeof d.data === 'object' && !Array.isArray(d.data) && 'metadata' in d;
  const values = (v2 ? d.data : d) as Record<string, unknown>;
  const entries: ParsedEntry[] = [];
  for (const [name, v] of Object.entries(values)) {
    if (v !== null && typeof v === 'object') {
      sink.warnings.push({ name, message: 'a structured Vault value is stored as its JSON text' });
      entries.push({ name, value: JSON.stringify(v) });
      continue;
    }
    const e = entryFrom(name, v, undefined, sink);
    if (e) entries.push(e);
  }
  return { entries };
}

/** A Vault KV export: `vault kv get -format=json` output (KV v1 or v2), or its `data` object. */
export function parseVault(text: string): ParseResult {
  const sink: Sink = { invalid: [], warnings: [] };
  let obj: unknown;
  try {
    obj = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    return { entries: [], invalid: [jsonError(text, err as Error)], warnings: [] };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return {
      entries: [],
      invalid: [{ message: 'expected a JSON object (vault kv get -format=json)' }],
      warnings: [],
    };
  }
  const o = obj as Record<string, unknown>;
  // the full CLI output, or just its data part ({data: {...}, metadata: {...}} for KV v2)
  const wrapped = 'data' in o && o.data !== null && typeof o.data === 'object' ? o : { data: o };
  return { ...vaultEntries(wrapped, sink), ...sink };
}

export function parseYaml(text: string): ParseResult {
  const sink: Sink = { invalid: [], warnings: [] };
  const lc = new LineCounter();
  // failsafe: every scalar is text, so 0123, 1e3, yes and 08:00 stay exactly as written
  const doc = parseDocument(text, {
    schema: 'failsafe',
    uniqueKeys: false,
    lineCounter: lc,
    prettyErrors: false,
  });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
      sink.invalid.push({ line, message: `not valid YAML: ${e.message.split('\n')[0]}` });
    }
    return { entries: [], ...sink };
  }
  const root = doc.contents;
  if (root === null) return { entries: [], ...sink };
  if (!isMap(root)) {
    sink.invalid.push({ line: 1, message: 'expected a YAML mapping of NAME: value' });
    return { entries: [], ...sink };
  }
  const entries: ParsedEntry[] = [];
  for (const pair of root.items) {
    const keyNode = pair.key;
    const line = isScalar(keyNode) && keyNode.range ? lc.linePos(keyNode.range[0]).line : undefined;
    const at = line === undefined ? {} : { line };
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      sink.invalid.push({ ...at, message: 'a name must be plain text' });
      continue;
    }
    const name = keyNode.value;
    const v = pair.value;
    if (v === null || v === undefined || (isScalar(v) && v.value === null)) {
      entries.push({ name, value: '', ...at });
      continue;
    }
    if (isSeq(v)) {
      sink.invalid.push({
        ...at,
        name,
        message: 'a value must be text or a mapping with "value", not a list',
      });
      continue;
    }
    const e = entryFrom(
      name,
      isScalar(v) ? String(v.value) : (v as { toJSON(): unknown }).toJSON(),
      line,
      sink,
      {
        nulls: true,
      },
    );
    if (e) entries.push(e);
  }
  return { entries, ...sink };
}
