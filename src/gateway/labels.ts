import type { GatewayConfig } from '../config/gateway.ts';
import type { Owner } from '../contract/identity.ts';
import { globMatch } from '../lib/glob.ts';
import type { Caller } from './types.ts';

/**
 * Metric labels of gateway calls from a bounded set (issue 12 item 16). A client chooses the model name
 * and an administrator the display names, so neither may become a label as is: 150 made-up model names
 * made 454 new series, and an 8,000-character name was stored. Models are labelled by what the
 * configuration names (an exact model of a route or a price, else the route glob that matched, else
 * `other`); callers by a stable ID (`app:<id>`, `user:<id>`, `vk:<id>`, `workload:<SPIFFE ID>`, `token`),
 * never by a display name. Pure: no I/O, no state but a bounded memo.
 */

/** The label of a model no route serves (and of anything that does not fit a label). */
export const OTHER = 'other';
/** The label of a call refused before its caller was known. */
export const ANONYMOUS = 'anonymous';
/** Longest label value (model names in the configuration are at most 200 characters). */
export const MAX_LABEL_LENGTH = 200;

/** What `caller()` reads: the caller's kind and stable IDs, and the owner of a token. */
export type CallerRef = Pick<Caller, 'kind' | 'id' | 'spiffe_id'>;
export type OwnerRef = Pick<Owner, 'type' | 'id'>;

export interface Labeler {
  /** The `model` label of a requested model name: a configured name, the route glob it matched, or `other`. */
  model(name: string): string;
  /**
   * The `caller` label: `vk:<key id>`, `workload:<SPIFFE ID>`, and for tokens by their owner `app:<app id>`,
   * `user:<user id>`, `root`, or `token` (standalone tokens: one accessor per token would be unbounded);
   * `anonymous` when the caller is not known yet. Never the display name.
   */
  caller(caller: CallerRef | undefined, owner?: OwnerRef): string;
}

/**
 * A label value of printable characters only: letters, digits and `. _ - : / @ + *` (IDs, SPIFFE IDs,
 * model names and globs); anything else becomes `_`, and the result is cut to `max` characters. The
 * empty string becomes `other`.
 */
export function sanitizeLabel(value: string, max = MAX_LABEL_LENGTH): string {
  const cut = value.length > max ? value.slice(0, max) : value;
  const clean = cut.replace(/[^A-Za-z0-9._\-:/@+*]/g, '_');
  return clean === '' ? OTHER : clean;
}

/** How specific a glob is: its literal characters (the exact name first, then the longest literal). */
const specificity = (glob: string) => glob.replaceAll('*', '').length;

const MEMO_MAX = 1_000;

export function createLabeler(config: Pick<GatewayConfig, 'routes' | 'prices'>): Labeler {
  const exact = new Set<string>();
  const globs: string[] = [];
  for (const r of config.routes) {
    for (const m of r.models) {
      if (m.includes('*')) {
        if (!globs.includes(m)) globs.push(m);
      } else exact.add(m);
    }
  }
  for (const p of Object.keys(config.prices ?? {})) if (!p.includes('*')) exact.add(p);
  // the most specific glob wins, as for prices; equal ones in configuration order (a stable sort)
  globs.sort((a, b) => specificity(b) - specificity(a));

  // a client may send any name: remember only short ones, and only so many
  const memo = new Map<string, string>();
  function modelLabel(name: string): string {
    if (exact.has(name)) return sanitizeLabel(name);
    for (const g of globs) if (globMatch(g, name)) return sanitizeLabel(g);
    return OTHER;
  }

  return {
    model(name) {
      if (typeof name !== 'string' || name === '') return OTHER;
      if (name.length > MAX_LABEL_LENGTH) return modelLabel(name);
      let label = memo.get(name);
      if (label === undefined) {
        label = modelLabel(name);
        if (memo.size >= MEMO_MAX) memo.clear();
        memo.set(name, label);
      }
      return label;
    },

    caller(caller, owner) {
      if (!caller) return ANONYMOUS;
      switch (caller.kind) {
        case 'virtual_key':
          return `vk:${sanitizeLabel(caller.id)}`;
        case 'workload':
          return `workload:${sanitizeLabel(caller.spiffe_id ?? caller.id)}`;
        case 'token':
          switch (owner?.type) {
            case 'app':
              return `app:${sanitizeLabel(owner.id)}`;
            case 'user':
              return `user:${sanitizeLabel(owner.id)}`;
            case 'workload':
              return `workload:${sanitizeLabel(owner.id)}`;
            case 'root':
              return 'root';
            default:
              return 'token';
          }
        default:
          return OTHER;
      }
    },
  };
}
