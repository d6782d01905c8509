import { Command, CommanderError } from 'commander';
import { agentCommand } from './agent.ts';
import { appCommands } from './app.ts';
import { auditCommands } from './audit.ts';
import { bulkCommands } from './bulk.ts';
import { type CliIO, describeError, UsageError } from './context.ts';
import { gatewayKeyCommands } from './gateway-keys.ts';
import { identityCommands } from './identity.ts';
import { leaseCommands } from './leases.ts';
import { loginCommand } from './login.ts';
import { modelCommands } from './model.ts';
import { operatorCommands, statusCommand } from './operator.ts';
import { policyCommands } from './policy.ts';
import { projectCommands } from './project.ts';
import { rotateCommands } from './rotate.ts';
import { runCommand } from './run.ts';
import { sbomCommands } from './sbom.ts';
import { scanCommand } from './scan.ts';
import { secretCommands } from './secret.ts';
import { tokenCommands } from './token.ts';
import { transitCommands } from './transit.ts';
import { usageCommands } from './usage.ts';
import { userCommands } from './user.ts';

export interface ServerCommandOptions {
  dev?: boolean;
  config?: string;
  listen?: string;
  data?: string;
  /** `strongroom gateway`: the configuration must have a `gateway` section. */
  gateway?: boolean;
}

/**
 * Builds the `strongroom` command tree. The server command is passed in by the
 * entry point, so the CLI itself depends only on the SDK and the API contract.
 */
export function buildProgram(io: CliIO, runServer: (o: ServerCommandOptions) => Promise<void>): Command {
  const program = new Command('strongroom')
    .description('Strongroom: a self-hosted credential vault for LLM applications')
    .option('--addr <url>', 'server address (default: $STRONGROOM_ADDR or http://127.0.0.1:8210)')
    .option(
      '--token <token>',
      'token to use (default: $STRONGROOM_TOKEN; prefer the variable, flags end up in shell history)',
    )
    .option('--format <format>', 'output format: table or json', 'table')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride();

  program
    .command('server')
    .description('run the vault server')
    .option(
      '--dev',
      'development server: SQLite under ./.strongroom-dev, initialised and unsealed automatically (NOT for production)',
    )
    .option('--config <file>', 'YAML configuration file (also $STRONGROOM_CONFIG)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8210)')
    .option('--data <dir>', 'data folder (SQLite storage, and in dev mode the key file)')
    .action((o: ServerCommandOptions) => runServer(o));

  program
    .command('gateway')
    .description(
      'run the AI gateway (OpenAI/Anthropic-compatible): with the vault in this process, or in front of a remote vault when the config has gateway.vault (mTLS with the gateway SVID); see docs/gateway.md and docs/gateway-remote.md',
    )
    .option('--config <file>', 'YAML configuration with a `gateway` section (also $STRONGROOM_CONFIG)')
    .option('--dev', 'development vault under ./.strongroom-dev (NOT for production)')
    .option('--data <dir>', 'data folder')
    .action((o: ServerCommandOptions) => runServer({ ...o, gateway: true }));

  statusCommand(program, io);
  agentCommand(program, io);
  operatorCommands(program, io);
  projectCommands(program, io);
  secretCommands(program, io);
  rotateCommands(program, io);
  leaseCommands(program, io);
  transitCommands(program, io);
  modelCommands(program, io);
  sbomCommands(program, io);
  tokenCommands(program, io);
  policyCommands(program, io);
  auditCommands(program, io);
  loginCommand(program, io);
  userCommands(program, io);
  appCommands(program, io);
  identityCommands(program, io);
  gatewayKeyCommands(program, io);
  runCommand(program, io);
  scanCommand(program, io);
  bulkCommands(program, io);
  usageCommands(program, io);

  for (const c of [program, ...program.commands, ...program.commands.flatMap((c) => c.commands)])
    c.exitOverride();
  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function runCli(
  argv: string[],
  io: CliIO,
  runServer: (o: ServerCommandOptions) => Promise<void>,
): Promise<number> {
  const program = buildProgram(io, runServer);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return io.exitCode ?? 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : 2;
    }
    io.stderr.write(`${describeError(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
