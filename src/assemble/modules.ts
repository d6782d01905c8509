import type { VaultModule } from '../contract/module.ts';

/**
 * Orders modules so that each comes after the modules it `needs`, keeping the
 * given order wherever the needs allow it (so the order is the same on every
 * start). Throws on a duplicate name, a need no module has, and a cycle,
 * naming them: the vault does not start with a broken assembly.
 */
export function orderModules<D, S = never>(modules: readonly VaultModule<D, S>[]): VaultModule<D, S>[] {
  const byName = new Map<string, VaultModule<D, S>>();
  for (const m of modules) {
    if (byName.has(m.name)) throw new TypeError(`two modules are named ${JSON.stringify(m.name)}`);
    byName.set(m.name, m);
  }
  for (const m of modules) {
    for (const n of m.needs ?? []) {
      if (!byName.has(n))
        throw new TypeError(`module ${m.name} needs ${JSON.stringify(n)}, which is not assembled`);
    }
  }
  const out: VaultModule<D, S>[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (m: VaultModule<D, S>, path: string[]) => {
    const s = state.get(m.name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(m.name)), m.name];
      throw new TypeError(`modules need each other in a cycle: ${cycle.join(' -> ')}`);
    }
    state.set(m.name, 'visiting');
    for (const n of m.needs ?? []) visit(byName.get(n)!, [...path, m.name]);
    state.set(m.name, 'done');
    out.push(m);
  };
  for (const m of modules) visit(m, []);
  return out;
}

/**
 * Refuses mounts that overlap: a module's barrier prefix may not be, contain or lie inside another
 * module's or one the core keeps (`reserved`), so no module reads or writes another's records through
 * its view. A mount is a relative path ending in `/`.
 */
export function checkMounts(
  modules: readonly VaultModule<never, never>[],
  reserved: Record<string, string>,
): void {
  const taken: { who: string; prefix: string }[] = Object.entries(reserved).map(([who, prefix]) => ({
    who: `the core (${who})`,
    prefix,
  }));
  for (const m of modules) {
    if (m.mount === undefined) continue;
    if (!/^[a-z0-9][a-z0-9_-]*\/([a-z0-9][a-z0-9_-]*\/)*$/.test(m.mount))
      throw new TypeError(
        `module ${m.name} has mount ${JSON.stringify(m.mount)}: a path of lower-case segments ending in /`,
      );
    const clash = taken.find((t) => t.prefix.startsWith(m.mount!) || m.mount!.startsWith(t.prefix));
    if (clash)
      throw new TypeError(
        `module ${m.name} is mounted on ${m.mount}, which overlaps ${clash.prefix} of ${clash.who}`,
      );
    taken.push({ who: `module ${m.name}`, prefix: m.mount });
  }
}

/** Runs each module's `close` in reverse order; every module is closed even if one fails, then the first error is thrown. */
export async function closeModules(modules: readonly VaultModule<never, never>[]): Promise<void> {
  let first: unknown;
  for (const m of [...modules].reverse()) {
    try {
      await m.close?.();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}
