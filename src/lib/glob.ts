/**
 * Model globs of virtual-key scopes and price tables: `*` matches any run of
 * characters (none included), everything else matches itself, case-sensitively.
 */
const cache = new Map<string, RegExp>();

function regexOf(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
      's',
    );
    if (cache.size >= 1000) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

/** Whether `value` matches the glob `pattern`. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  return regexOf(pattern).test(value);
}

/**
 * Whether glob `outer` matches everything glob `inner` matches. Exact for
 * literals and prefix globs (`gpt-4o*`); any other pair of globs is judged
 * conservatively (not covered), so narrowing can never widen by accident.
 */
export function globCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  if (!inner.includes('*')) return globMatch(outer, inner);
  const star = outer.indexOf('*');
  if (star === outer.length - 1) return inner.startsWith(outer.slice(0, -1));
  return false;
}
