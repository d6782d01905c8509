/**
 * Process hardening for the long-running roles that hold keys (issue 13 item 10; docs/production.md#process-hardening).
 *
 * - No signal opens the Node inspector: the launcher (bin/strongroom.js) re-executes a role's process in
 *   place (`process.execve`, same pid) with `--disable-sigusr1`, so SIGUSR1 — which any process of the same
 *   user may send — no longer starts an inspector on 127.0.0.1:9229 inside an unsealed vault.
 * - No core dumps: the same re-execution goes through `/bin/sh -c 'ulimit -c 0; exec …'`, so RLIMIT_CORE is
 *   0 (soft and hard) for the role's process; Node has no setrlimit of its own.
 * - An inspector asked for by a flag (`--inspect*`, in the command line or NODE_OPTIONS) is refused outside
 *   dev mode, unless STRONGROOM_ALLOW_INSPECTOR says otherwise (bin/strongroom.ts decides, with the config).
 *
 * Pure functions here; the entry points do the process work.
 */

/** The commands that run a long-lived role: they get the hardened re-execution. */
const HARDENED_ROLES: ReadonlySet<string> = new Set(['server', 'gateway', 'agent']);

/** The program's global options that take a value (src/cli/program.ts), skipped when finding the command. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--addr', '--token', '--format']);

/**
 * The command named by the CLI arguments (`process.argv.slice(2)`): the first word that is neither an
 * option nor a global option's value. Over-matching costs only a re-execution; under-matching would
 * leave a role unhardened, so anything unclear counts as a word.
 */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return args[i + 1];
    if (GLOBAL_OPTIONS_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return a;
  }
  return undefined;
}

/** True when the command runs a role that must be hardened. */
export function isHardenedRole(args: readonly string[]): boolean {
  const c = commandOf(args);
  return c !== undefined && HARDENED_ROLES.has(c);
}

/** The flag that turns the SIGUSR1 inspector trigger off (Node 22.14+/23.7+). */
export const DISABLE_SIGUSR1 = '--disable-sigusr1';

/**
 * The argv of the hardened re-execution of this process: through /bin/sh to set RLIMIT_CORE to 0 (`ulimit -c
 * 0` lowers the soft and the hard limit; the shell then `exec`s Node, so the pid stays the same), Node with
 * its own flags plus `--disable-sigusr1`, then the script and its arguments unchanged. Arguments travel as
 * argv (`"$0" "$@"`), never through the shell's parser.
 */
export function hardenedExec(opts: {
  execPath: string;
  execArgv: readonly string[];
  argv: readonly string[];
  shell: string | undefined;
}): { file: string; args: string[] } {
  const node = [opts.execPath, ...opts.execArgv, DISABLE_SIGUSR1, ...opts.argv.slice(1)];
  if (opts.shell === undefined) return { file: opts.execPath, args: node };
  return { file: opts.shell, args: [opts.shell, '-c', 'ulimit -c 0; exec "$0" "$@"', ...node] };
}

/** Node options that open the inspector, or prepare it (`--inspect-port`, `--debug-port`). */
const INSPECTOR_OPTION = /^--(?:inspect(?:-brk(?:-node)?|-wait|-port)?|debug-port)(?:=|$)/;

/** Node accepts `_` for `-` in option names (`--inspect_brk`): compare on the dashed form. */
function optionName(arg: string): string {
  const eq = arg.indexOf('=');
  const name = eq < 0 ? arg : arg.slice(0, eq);
  return name.replaceAll('_', '-') + (eq < 0 ? '' : arg.slice(eq));
}

/** The inspector flags among Node's own arguments (`process.execArgv`). */
export function inspectorFlags(args: readonly string[]): string[] {
  return args.filter((a) => INSPECTOR_OPTION.test(optionName(a)));
}

/** NODE_OPTIONS split the way Node does: on white space, with double quotes around a value with spaces. */
export function splitNodeOptions(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && quoted && i + 1 < text.length) {
      cur += text[++i];
    } else if (c === '"') {
      quoted = !quoted;
      any = true;
    } else if (!quoted && /\s/.test(c)) {
      if (any || cur !== '') out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any || cur !== '') out.push(cur);
  return out;
}

/**
 * Why this process has, or would get, an inspector: a description of what asked for one, or undefined.
 * `active` is whether the inspector is already open (`inspector.url()`), which catches any way of asking.
 */
export function inspectorRequest(opts: {
  execArgv: readonly string[];
  nodeOptions: string;
  active: boolean;
}): string | undefined {
  const reasons: string[] = [];
  const flags = inspectorFlags(opts.execArgv);
  if (flags.length) reasons.push(`${flags.join(' ')} on the node command line`);
  const fromEnv = inspectorFlags(splitNodeOptions(opts.nodeOptions));
  if (fromEnv.length) reasons.push(`${fromEnv.join(' ')} in NODE_OPTIONS`);
  if (reasons.length === 0 && opts.active) reasons.push('an inspector that is already open');
  return reasons.length ? reasons.join(' and ') : undefined;
}

/** The message for a role refused because an inspector was asked for. */
export function inspectorRefusal(role: string, request: string): string {
  return (
    `refusing to start the ${role}: ${request} asks for the Node inspector. Anyone who can reach an ` +
    'inspector runs code inside this process and reads every key it holds. Remove the flag; to debug on ' +
    'purpose, set STRONGROOM_ALLOW_INSPECTOR=1 (never in production), or use a dev server (--dev). ' +
    'See docs/production.md#process-hardening.'
  );
}
