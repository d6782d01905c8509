import type { Command } from 'commander';
import { type CliIO, clientFor, formatOf } from './context.ts';
import { kv, print } from './output.ts';

export function projectCommands(program: Command, io: CliIO): void {
  const p = program.command('project').description('create and list projects and their environments');

  p.command('create')
    .argument('<name>', 'project name (lower-case letters, digits, - and _)')
    .option('--env <names>', 'comma-separated environments', 'dev,staging,prod')
    .description('create a project with its environments')
    .action(async (name: string, o: { env: string }, cmd: Command) => {
      const envs = o.env
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean);
      const r = await clientFor(io, cmd).createProject(name, envs);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Project: r.name, Environments: r.environments.join(', '), Created: r.created_at }),
      );
    });

  p.command('list')
    .description('list projects')
    .action(async (_o, cmd: Command) => {
      const r = await clientFor(io, cmd).listProjects();
      print(io.stdout, formatOf(cmd), r, () => [
        ['PROJECT', 'ENVIRONMENTS', 'CREATED'],
        ...r.projects.map((x) => [x.name, x.environments.join(','), x.created_at]),
      ]);
    });

  p.command('add-env')
    .argument('<project>')
    .argument('<env>')
    .description('add an environment to a project')
    .action(async (project: string, env: string, _o, cmd: Command) => {
      const r = await clientFor(io, cmd).createEnvironment(project, env);
      print(io.stdout, formatOf(cmd), r, () =>
        kv({ Project: r.project, Environment: r.name, Created: r.created_at }),
      );
    });
}
