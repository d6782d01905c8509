import type { Command } from 'commander';
import { TemplateError } from '../agent/template.ts';
import { type AgentConfig, AgentConfigError, loadAgentConfig } from '../config/agent.ts';
import type { CliIO } from './context.ts';

interface AgentCommandOptions {
  config?: string;
  once?: boolean;
  check?: boolean;
}

export function agentCommand(program: Command, io: CliIO): void {
  program
    .command('agent')
    .description(
      'run the sidecar agent: renders secrets to files, supervises a command, serves a local cache on a Unix socket',
    )
    .option('--config <file>', 'agent configuration (YAML; also $STRONGROOM_AGENT_CONFIG)')
    .option('--once', 'render the templates once and exit (init container)')
    .option('--check', 'validate the configuration and the templates, then exit')
    .addHelpText(
      'after',
      '\nExample:\n  strongroom agent --config /etc/strongroom/agent.yaml\n\nSee docs/agent.md for the configuration, the socket API and Kubernetes manifests.',
    )
    .action(async (o: AgentCommandOptions) => {
      io.exitCode = await agent(io, o);
    });
}

async function agent(io: CliIO, o: AgentCommandOptions): Promise<number> {
  // the agent (gRPC, X.509) is loaded only when it runs
  const { planAgent, startAgent } = await import('../agent/agent.ts');
  const file = o.config ?? io.env.STRONGROOM_AGENT_CONFIG;
  if (!file) {
    io.stderr.write('strongroom agent: give --config FILE (or set STRONGROOM_AGENT_CONFIG)\n');
    return 2;
  }
  let cfg: AgentConfig;
  const ac = new AbortController();
  const stopOn = (s: NodeJS.Signals) => {
    const h = () => ac.abort();
    process.on(s, h);
    return () => process.off(s, h);
  };
  try {
    cfg = loadAgentConfig(file);
    if (o.check) {
      planAgent(cfg);
      io.stdout.write(`${file}: ok (${cfg.templates.length} templates${cfg.exec ? ', exec' : ''})\n`);
      return 0;
    }
  } catch (err) {
    if (err instanceof AgentConfigError || err instanceof TemplateError) {
      io.stderr.write(`strongroom agent: ${file}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const inherit = io.stdout === process.stdout && io.stderr === process.stderr;
  const untrap = [stopOn('SIGTERM'), stopOn('SIGINT')];
  try {
    const handle = startAgent(
      cfg,
      { stdout: io.stdout, stderr: io.stderr, env: { ...io.env }, inheritStdio: inherit },
      { once: !!o.once, signal: ac.signal },
    );
    return await handle.done;
  } finally {
    for (const u of untrap) u();
  }
}
