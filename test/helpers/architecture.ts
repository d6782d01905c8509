/**
 * The architecture checker: reads the module map (docs/module-map.json), finds every import in the
 * scanned folders (static `import` / `export … from`, `import type`, dynamic `import()`, type-position
 * `import()`, `require()`, `declare module`), and reports each arrow the map does not allow, each
 * file no part owns, and each cycle between parts and between files (type-only imports included).
 *
 * It is a function of (root folder, map), so the architecture test runs it on the real tree and on
 * small fixture trees built in a temporary folder.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

// ---------------------------------------------------------------------------------------------
// The map

export interface PartSpec {
  /** Folders (relative to the root, `/`-separated) whose files belong to this part. */
  folders: string[];
  /** What the part is and the rule it follows, in words. */
  about: string;
  /** The other parts it may import (a part may always import itself). */
  may_import: string[];
  /** Why an allowed arrow that is not obvious from the picture exists, by target part. */
  why?: Record<string, string>;
}

export interface ForbiddenArrow {
  /** Part names, or `*` for every part. */
  from: string[];
  to: string[];
  why: string;
}

/**
 * An arrow the picture forbids that the code still has, while it is being reshaped (issue 14): its
 * imports are reported apart, do not fail the test, and are left out of the part cycles. The list
 * only shrinks: an entry no import needs any more fails the test until it is removed.
 */
export interface DebtArrow {
  from: string;
  to: string;
  why: string;
}

export interface ModuleMap {
  scan: {
    /** Folders whose files are checked (missing ones are skipped). */
    roots: string[];
    /** File extensions scanned, with the dot. */
    extensions: string[];
    /** File name endings left out (tests may reach across parts to set things up). */
    skip_files: string[];
    /** Folder names never entered. */
    skip_dirs: string[];
  };
  parts: Record<string, PartSpec>;
  /** Arrows the picture calls out as forbidden, with the reason; everything not allowed is forbidden too. */
  forbidden: ForbiddenArrow[];
  /** Forbidden arrows the code still has, kept apart until they are removed (see DebtArrow). */
  debt?: DebtArrow[];
}

export function readModuleMap(file: string): ModuleMap {
  const map = JSON.parse(readFileSync(file, 'utf8')) as ModuleMap;
  if (typeof map !== 'object' || map === null || !map.scan || !map.parts || !Array.isArray(map.forbidden)) {
    throw new TypeError(`${file}: a module map has "scan", "parts" and "forbidden"`);
  }
  return map;
}

const matches = (names: readonly string[], part: string): boolean =>
  names.includes('*') || names.includes(part);

/** The forbidden entry an arrow falls under, if the map names it. */
function forbiddenRule(map: ModuleMap, from: string, to: string): ForbiddenArrow | undefined {
  return map.forbidden.find((f) => matches(f.from, from) && matches(f.to, to));
}

/**
 * What is wrong with the map itself: unknown part names, a folder in two parts, an arrow both
 * allowed and forbidden, and a cycle among the allowed arrows (the picture must point one way).
 */
export function mapProblems(map: ModuleMap): string[] {
  const problems: string[] = [];
  const parts = Object.keys(map.parts);
  const known = (name: string) => name === '*' || parts.includes(name);
  const owner = new Map<string, string>();
  for (const [name, spec] of Object.entries(map.parts)) {
    if (!Array.isArray(spec.folders) || spec.folders.length === 0) problems.push(`${name}: no folders`);
    if (!Array.isArray(spec.may_import)) problems.push(`${name}: may_import is not a list`);
    if (typeof spec.about !== 'string' || spec.about === '') problems.push(`${name}: no "about"`);
    for (const folder of spec.folders ?? []) {
      const other = owner.get(folder);
      if (other) problems.push(`folder ${folder} is in both ${other} and ${name}`);
      owner.set(folder, name);
    }
    for (const to of spec.may_import ?? []) {
      if (!parts.includes(to)) problems.push(`${name} may import ${to}, which is not a part`);
      if (to === name) problems.push(`${name} lists itself in may_import (a part may always import itself)`);
      const rule = forbiddenRule(map, name, to);
      if (rule) problems.push(`${name} -> ${to} is both allowed and forbidden (${rule.why})`);
    }
    for (const to of Object.keys(spec.why ?? {})) {
      if (!spec.may_import?.includes(to))
        problems.push(`${name}.why explains ${to}, which it may not import`);
    }
  }
  for (const f of map.forbidden) {
    for (const name of [...f.from, ...f.to]) {
      if (!known(name)) problems.push(`forbidden arrow names ${name}, which is not a part`);
    }
    if (!f.why) problems.push(`forbidden arrow ${f.from.join(',')} -> ${f.to.join(',')} has no "why"`);
  }
  const allowed = new Map(parts.map((p) => [p, map.parts[p]!.may_import ?? []]));
  for (const scc of stronglyConnected(parts, (p) => allowed.get(p) ?? [])) {
    if (scc.length > 1) problems.push(`the allowed arrows form a cycle: ${scc.join(', ')}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Finding imports

export type ImportKind =
  | 'import'
  | 'import type'
  | 'export from'
  | 'export type from'
  | 'dynamic import()'
  | 'type import()'
  | 'require()'
  | 'declare module';

export interface ImportRef {
  /** The specifier, or undefined when it is computed (`import(name)`) and cannot be checked. */
  specifier: string | undefined;
  kind: ImportKind;
  /** Erased at runtime (`import type`, `export type … from`, `import('…')` in a type). */
  typeOnly: boolean;
  line: number;
}

interface Token {
  /** id: identifier or keyword; str: string or template without substitutions; tpl: a piece of a template with substitutions. */
  t: 'id' | 'str' | 'tpl' | 'num' | 'punct' | 'regex';
  v: string;
  line: number;
}

/** Keywords after which a `/` starts a regular expression rather than a division. */
const BEFORE_EXPRESSION = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
  'extends',
]);

/** An identifier or keyword (`#private` and `\u` escapes included; any non-ASCII non-space character counts). */
const IDENTIFIER = /(?:[\w$#\\]|(?!\s)\P{ASCII})+/uy;
const NUMBER = /[\w.]+/y;
const ID_START = /[A-Za-z_$#\\]/;
const DIGIT = /[0-9]/;

const NL = 10;
const SLASH = 47;
const STAR = 42;
const BACKSLASH = 92;
const BACKTICK = 96;

/**
 * A TypeScript lexer just careful enough for imports: it skips comments, reads strings and template
 * literals (nested substitutions included) and regular expressions, so an import-looking text inside
 * any of them is never taken for an import, and counts lines.
 */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const braces: ('{' | '${')[] = [];
  const n = src.length;
  let i = src.startsWith('#!') ? src.indexOf('\n') : 0;
  if (i < 0) return out;
  let line = 1;

  const template = (startLine: number, head: boolean) => {
    // i is just after '`' (head) or after the '}' that closes a substitution
    const start = i;
    while (i < n) {
      const c = src.charCodeAt(i);
      if (c === BACKSLASH) {
        if (src.charCodeAt(i + 1) === NL) line++;
        i += 2;
      } else if (c === BACKTICK) {
        i++;
        // a template without substitutions is a string; the closing piece of one with them is not
        out.push({ t: head ? 'str' : 'tpl', v: head ? src.slice(start, i - 1) : '', line: startLine });
        return;
      } else if (c === 36 /* $ */ && src.charCodeAt(i + 1) === 123 /* { */) {
        i += 2;
        braces.push('${');
        out.push({ t: 'tpl', v: '', line: startLine });
        return;
      } else {
        if (c === NL) line++;
        i++;
      }
    }
  };

  while (i < n) {
    const code = src.charCodeAt(i);
    const c = src[i]!;
    if (code === NL) {
      line++;
      i++;
    } else if (code <= 32) {
      i++;
    } else if (code === SLASH && src.charCodeAt(i + 1) === SLASH) {
      const end = src.indexOf('\n', i);
      i = end < 0 ? n : end;
    } else if (code === SLASH && src.charCodeAt(i + 1) === STAR) {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let k = src.indexOf('\n', i); k >= 0 && k < stop; k = src.indexOf('\n', k + 1)) line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      const startLine = line;
      let v = '';
      let from = ++i;
      while (i < n) {
        const d = src.charCodeAt(i);
        if (d === code || d === NL) break;
        if (d === BACKSLASH) {
          if (src.charCodeAt(i + 1) === NL) line++;
          v += src.slice(from, i) + (src.charCodeAt(i + 1) === NL ? '' : (src[i + 1] ?? ''));
          i += 2;
          from = i;
        } else {
          i++;
        }
      }
      v += src.slice(from, i);
      // past the closing quote, or the newline that ends an unterminated string
      if (src.charCodeAt(i) === NL) line++;
      i++;
      out.push({ t: 'str', v, line: startLine });
    } else if (code === BACKTICK) {
      i++;
      template(line, true);
    } else if (c === '}' && braces[braces.length - 1] === '${') {
      braces.pop();
      i++;
      template(line, false);
    } else if (code >= 0x80 && /\s/.test(c)) {
      i++;
    } else if (code >= 0x80 || ID_START.test(c)) {
      IDENTIFIER.lastIndex = i;
      IDENTIFIER.test(src);
      const end = Math.max(IDENTIFIER.lastIndex, i + 1);
      out.push({ t: 'id', v: src.slice(i, end), line });
      i = end;
    } else if (DIGIT.test(c) || (c === '.' && DIGIT.test(src[i + 1] ?? ''))) {
      NUMBER.lastIndex = i;
      NUMBER.test(src);
      out.push({ t: 'num', v: src.slice(i, NUMBER.lastIndex), line });
      i = NUMBER.lastIndex;
    } else if (code === SLASH) {
      const prev = out[out.length - 1];
      const regexHere =
        prev === undefined ||
        (prev.t === 'punct' && prev.v !== ')' && prev.v !== ']' && prev.v !== '}') ||
        (prev.t === 'id' && BEFORE_EXPRESSION.has(prev.v));
      const end = regexHere ? regexEnd(src, i) : -1;
      if (end > 0) {
        out.push({ t: 'regex', v: src.slice(i, end), line });
        i = end;
      } else {
        out.push({ t: 'punct', v: '/', line });
        i++;
      }
    } else if (c === '.' && src.startsWith('...', i)) {
      out.push({ t: 'punct', v: '...', line });
      i += 3;
    } else {
      if (c === '{') braces.push('{');
      else if (c === '}') braces.pop();
      out.push({ t: 'punct', v: c, line });
      i++;
    }
  }
  return out;
}

/** The index just past a regular expression literal starting at `start`, or -1 if there is none on this line. */
function regexEnd(src: string, start: number): number {
  let i = start + 1;
  let inClass = false;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') return -1;
    if (c === '\\') i += 2;
    else {
      if (c === '[') inClass = true;
      else if (c === ']') inClass = false;
      else if (c === '/' && !inClass) {
        i++;
        while (i < src.length && /[a-z]/i.test(src[i]!)) i++;
        return i;
      }
      i++;
    }
  }
  return -1;
}

const isP = (t: Token | undefined, v: string) => t !== undefined && t.t === 'punct' && t.v === v;
const isId = (t: Token | undefined, v?: string) =>
  t !== undefined && t.t === 'id' && (v === undefined || t.v === v);

/** The index of the `)` that closes the `(` at `open`. */
function closing(toks: Token[], open: number): number {
  let depth = 0;
  for (let k = open; k < toks.length; k++) {
    if (isP(toks[k], '(')) depth++;
    else if (isP(toks[k], ')') && --depth === 0) return k;
  }
  return toks.length;
}

/**
 * After `import` / `export` at `start`, walk an import or export clause (`x`, `{ a, type b as c }`,
 * `* as ns`) up to `from '…'`; the index of the specifier token, or -1 if this is not such a clause.
 */
function fromClause(toks: Token[], start: number): number {
  let depth = 0;
  for (let k = start; k < toks.length; k++) {
    const t = toks[k]!;
    if (depth === 0 && isId(t, 'from') && toks[k + 1]?.t === 'str' && k > start) return k + 1;
    if (isP(t, '{')) depth++;
    else if (isP(t, '}')) {
      if (--depth < 0) return -1;
    } else if (!(t.t === 'id' || isP(t, ',') || isP(t, '*') || (depth > 0 && t.t === 'str'))) return -1;
    // an `export { a }` with no `from` ends at its closing brace
    if (depth === 0 && isP(t, '}') && !isId(toks[k + 1], 'from')) return -1;
  }
  return -1;
}

/** Every import of `source` (TypeScript or JavaScript), in order. */
export function findImports(source: string): ImportRef[] {
  const toks = tokenize(source);
  const found: ImportRef[] = [];
  const literal = (k: number): Token | undefined => (toks[k]?.t === 'str' ? toks[k] : undefined);
  const add = (kind: ImportKind, typeOnly: boolean, spec: Token | undefined, line: number) =>
    found.push({ specifier: spec?.v, kind, typeOnly, line: spec?.line ?? line });

  for (let k = 0; k < toks.length; k++) {
    const tk = toks[k]!;
    if (tk.t !== 'id') continue;
    const prev = toks[k - 1];
    const next = toks[k + 1];
    if (isP(prev, '.')) continue; // a member named import / require
    if (tk.v === 'import') {
      if (isP(next, '(')) {
        const close = closing(toks, k + 1);
        const spec = literal(k + 2);
        const simple = spec !== undefined && (isP(toks[k + 3], ')') || isP(toks[k + 3], ','));
        // `import(x) { … }` is a method named import, not an import
        if (!simple && isP(toks[close + 1], '{')) continue;
        const inType =
          isId(prev, 'typeof') ||
          (!isId(prev, 'await') &&
            isP(toks[close + 1], '.') &&
            isId(toks[close + 2]) &&
            !isP(toks[close + 3], '('));
        add(inType ? 'type import()' : 'dynamic import()', inType, simple ? spec : undefined, tk.line);
      } else if (next?.t === 'str') {
        add('import', false, next, tk.line); // import './side-effect.ts'
      } else if (isId(next) || isP(next, '{') || isP(next, '*')) {
        const after = toks[k + 2];
        const typeOnly =
          isId(next, 'type') &&
          !isP(after, ',') &&
          !isP(after, '=') &&
          !(isId(after, 'from') && toks[k + 3]?.t === 'str');
        const at = fromClause(toks, k + 1);
        if (at >= 0) {
          add(typeOnly ? 'import type' : 'import', typeOnly, toks[at], tk.line);
          continue;
        }
        // import x = require('…')
        let eq = k + 1;
        while (isId(toks[eq])) eq++;
        if (isP(toks[eq], '=') && isId(toks[eq + 1], 'require') && isP(toks[eq + 2], '(')) {
          add(typeOnly ? 'import type' : 'require()', typeOnly, literal(eq + 3), tk.line);
          k = eq + 1; // the require( … ) is this import's, not another one
        }
      }
    } else if (tk.v === 'export') {
      const typeOnly = isId(next, 'type') && (isP(toks[k + 2], '{') || isP(toks[k + 2], '*'));
      const start = typeOnly ? k + 2 : k + 1;
      if (!isP(toks[start], '{') && !isP(toks[start], '*')) continue;
      const at = fromClause(toks, start);
      if (at >= 0) add(typeOnly ? 'export type from' : 'export from', typeOnly, toks[at], tk.line);
    } else if (tk.v === 'require' && isP(next, '(') && !isId(prev, 'function')) {
      const spec = literal(k + 2);
      add('require()', false, spec && isP(toks[k + 3], ')') ? spec : undefined, tk.line);
    } else if (tk.v === 'module' && isId(prev, 'declare') && next?.t === 'str') {
      add('declare module', true, next, tk.line);
    }
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Checking a tree

export interface Edge {
  file: string;
  line: number;
  kind: ImportKind;
  typeOnly: boolean;
  specifier: string;
  /** The imported file, relative to the root, or undefined when it does not resolve. */
  target: string | undefined;
  from: string | undefined;
  to: string | undefined;
}

export interface Violation {
  file: string;
  line: number;
  /** `from -> to` between parts, or a short name of the problem. */
  arrow: string;
  kind: ImportKind | undefined;
  specifier: string | undefined;
  /** The rule broken, in words. */
  rule: string;
}

export interface PartCycle {
  parts: string[];
  /** One way round the cycle, first part repeated at the end. */
  loop: string[];
  /** The arrows inside the cycle with one import that makes each, and whether the map allows it. */
  arrows: { arrow: string; count: number; example: string; allowed: boolean }[];
}

export interface FileCycle {
  files: string[];
  /** One way round, first file repeated at the end. */
  loop: string[];
}

export interface ArchitectureReport {
  files: string[];
  edges: Edge[];
  violations: Violation[];
  /** Violations on an arrow the map lists as debt: reported, not failed. */
  debt: Violation[];
  /** Debt entries no import needs any more (remove them from the map). */
  staleDebt: DebtArrow[];
  partCycles: PartCycle[];
  fileCycles: FileCycle[];
}

const toPosix = (p: string) => p.split(sep).join('/');

function listFiles(root: string, map: ModuleMap): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const { name } = entry;
      const p = join(dir, name);
      if (entry.isDirectory()) {
        if (!map.scan.skip_dirs.includes(name)) walk(p);
      } else if (
        map.scan.extensions.some((e) => name.endsWith(e)) &&
        !map.scan.skip_files.some((e) => name.endsWith(e))
      ) {
        out.push(toPosix(relative(root, p)));
      }
    }
  };
  for (const r of map.scan.roots) if (existsSync(join(root, r))) walk(join(root, r));
  return out;
}

/**
 * Resolves a relative specifier the way Node and tsc do for this project (explicit extensions, or
 * index files), to a root-relative path; `known` holds files already listed, to spare the disk.
 */
function resolveSpecifier(
  root: string,
  file: string,
  specifier: string,
  known: Set<string>,
): string | undefined {
  const base = resolve(root, dirname(file), specifier);
  const candidates = [base];
  if (/\.[cm]?js$/.test(base)) candidates.push(base.replace(/js$/, 'ts'), base.replace(/js$/, 'tsx'));
  candidates.push(`${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), join(base, 'index.tsx'));
  for (const c of candidates) {
    const rel = toPosix(relative(root, c));
    if (known.has(rel) || (existsSync(c) && statSync(c).isFile())) return rel;
  }
  return undefined;
}

/** The part owning a root-relative path: the part with the longest folder that contains it. */
function partFinder(map: ModuleMap): (path: string) => string | undefined {
  const folders = Object.entries(map.parts)
    .flatMap(([part, spec]) => spec.folders.map((f) => ({ part, folder: f.replace(/\/+$/, '') })))
    .sort((a, b) => b.folder.length - a.folder.length);
  return (path) => folders.find(({ folder }) => path === folder || path.startsWith(`${folder}/`))?.part;
}

/** Checks the tree under `root` against `map`. */
export function checkArchitecture(root: string, map: ModuleMap): ArchitectureReport {
  const partOf = partFinder(map);
  const files = listFiles(root, map);
  const scanned = new Set(files);
  const edges: Edge[] = [];
  const violations: Violation[] = [];

  for (const file of files) {
    const from = partOf(file);
    if (from === undefined) {
      violations.push({
        file,
        line: 1,
        arrow: 'file in no part',
        kind: undefined,
        specifier: undefined,
        rule: `${file} is in no part of the module map: add its folder to a part in docs/module-map.json`,
      });
    }
    for (const ref of findImports(readFileSync(join(root, file), 'utf8'))) {
      if (ref.specifier === undefined) {
        violations.push({
          file,
          line: ref.line,
          arrow: 'computed specifier',
          kind: ref.kind,
          specifier: undefined,
          rule: 'an import whose specifier is not a string literal cannot be checked: name the file',
        });
        continue;
      }
      if (!/^\.{1,2}(\/|$)|^\//.test(ref.specifier)) continue; // a package or node: builtin
      const target = resolveSpecifier(root, file, ref.specifier, scanned);
      const to = target === undefined ? undefined : partOf(target);
      edges.push({
        file,
        line: ref.line,
        kind: ref.kind,
        typeOnly: ref.typeOnly,
        specifier: ref.specifier,
        target,
        from,
        to,
      });
      const where = { file, line: ref.line, kind: ref.kind, specifier: ref.specifier };
      if (target === undefined) {
        violations.push({ ...where, arrow: 'unresolved', rule: `'${ref.specifier}' is not a file` });
      } else if (to === undefined) {
        violations.push({
          ...where,
          arrow: `${from ?? '?'} -> outside the map`,
          rule: `${target} is in no part of the module map`,
        });
      } else if (from !== undefined && to !== from && !map.parts[from]!.may_import.includes(to)) {
        const named = forbiddenRule(map, from, to);
        const spec = map.parts[from]!;
        violations.push({
          ...where,
          arrow: `${from} -> ${to}`,
          rule: named
            ? `forbidden: ${named.why}`
            : `not allowed: ${from} may import only ${spec.may_import.join(', ') || 'nothing of ours'} (${spec.about})`,
        });
      }
    }
  }

  // debt: forbidden arrows the code still has while it is reshaped; kept apart, and out of the part graph
  const debtArrows = new Set((map.debt ?? []).map((d) => `${d.from} -> ${d.to}`));
  const debt = violations.filter((v) => debtArrows.has(v.arrow));
  const failing = violations.filter((v) => !debtArrows.has(v.arrow));
  const staleDebt = (map.debt ?? []).filter((d) => !debt.some((v) => v.arrow === `${d.from} -> ${d.to}`));

  // cycles between files, every import counted (type-only too: the picture is about dependencies)
  const fileGraph = new Map<string, Set<string>>(files.map((f) => [f, new Set()]));
  for (const e of edges) if (e.target && scanned.has(e.target)) fileGraph.get(e.file)!.add(e.target);
  const fileCycles: FileCycle[] = stronglyConnected(files, (f) => [...fileGraph.get(f)!])
    .filter((scc) => scc.length > 1 || fileGraph.get(scc[0]!)!.has(scc[0]!))
    .map((scc) => ({ files: [...scc].sort(), loop: loopThrough(scc, (f) => fileGraph.get(f)!) }));

  // cycles between parts
  const partGraph = new Map<string, Map<string, Edge[]>>();
  for (const e of edges) {
    if (!e.from || !e.to || e.from === e.to || debtArrows.has(`${e.from} -> ${e.to}`)) continue;
    const out = partGraph.get(e.from) ?? new Map<string, Edge[]>();
    partGraph.set(e.from, out);
    out.set(e.to, [...(out.get(e.to) ?? []), e]);
  }
  const parts = [...new Set([...Object.keys(map.parts)])];
  const partCycles: PartCycle[] = stronglyConnected(parts, (p) => [...(partGraph.get(p)?.keys() ?? [])])
    .filter((scc) => scc.length > 1)
    .map((scc) => {
      const inside = new Set(scc);
      const arrows = scc
        .flatMap((p) =>
          [...(partGraph.get(p) ?? [])]
            .filter(([to]) => inside.has(to))
            .map(([to, es]) => ({
              arrow: `${p} -> ${to}`,
              count: es.length,
              example: `${es[0]!.file}:${es[0]!.line}`,
              allowed: map.parts[p]?.may_import.includes(to) ?? false,
            })),
        )
        .sort((a, b) => a.arrow.localeCompare(b.arrow));
      const sorted = [...scc].sort();
      return {
        parts: sorted,
        loop: loopThrough(sorted, (p) => new Set(partGraph.get(p)?.keys() ?? [])),
        arrows,
      };
    });

  return { files, edges, violations: failing, debt, staleDebt, partCycles, fileCycles };
}

/** Tarjan's strongly connected components, each in discovery order. */
export function stronglyConnected(
  nodes: readonly string[],
  next: (node: string) => readonly string[],
): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      out.push(scc.reverse());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return out;
}

/** A shortest way from the first node of a cycle back to itself, staying inside it. */
function loopThrough(scc: readonly string[], next: (node: string) => ReadonlySet<string>): string[] {
  const start = [...scc].sort()[0]!;
  const inside = new Set(scc);
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of [...next(v)].sort()) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = cameFrom.get(u)!) path.unshift(u);
        path.unshift(start);
        return path;
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

/** The report in words: each violation with file:line, the arrow and the rule broken; each cycle. */
export function formatReport(report: ArchitectureReport): string {
  const lines: string[] = [];
  if (report.violations.length > 0) {
    lines.push(`${report.violations.length} import(s) against docs/module-map.json:`);
    const byArrow = new Map<string, Violation[]>();
    for (const v of report.violations) byArrow.set(v.arrow, [...(byArrow.get(v.arrow) ?? []), v]);
    for (const [arrow, vs] of [...byArrow].sort(([a], [b]) => a.localeCompare(b))) {
      lines.push(`  ${arrow} — ${vs[0]!.rule}`);
      for (const v of vs) {
        lines.push(
          `    ${v.file}:${v.line}${v.kind ? `  ${v.kind} ${v.specifier ? `'${v.specifier}'` : '(computed)'}` : ''}`,
        );
      }
    }
  }
  for (const c of report.partCycles) {
    lines.push(`cycle between parts: ${c.loop.join(' -> ')}  (parts in the cycle: ${c.parts.join(', ')})`);
    for (const a of c.arrows) {
      const verdict = a.allowed ? '' : '  <- not allowed: cut here';
      lines.push(`    ${a.arrow}: ${a.count} import(s), e.g. ${a.example}${verdict}`);
    }
  }
  for (const c of report.fileCycles) {
    lines.push(`cycle between ${c.files.length} files: ${c.files.join(', ')}`);
    lines.push(`    e.g. ${c.loop.join(' -> ')}`);
  }
  return lines.join('\n');
}
