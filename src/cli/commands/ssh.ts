import { spawnSync } from 'node:child_process'
import type { Command } from 'commander'
import { action } from '../action.ts'
import { apiClient, CliError } from '../context.ts'
import { resolveWorkspace } from '../workspaces.ts'

export default (program: Command) =>
  program
    .command('ssh <workspace> [command...]')
    .description('open a shell (or run a command) in a workspace through the SSH gateway')
    .option('-i, --identity <file>', 'private key to use')
    .action(
      action(async (_cmd, ref: string, command: string[], opts: { identity?: string }) => {
        const vm = await resolveWorkspace(apiClient(), ref)
        if (vm.status !== 'running') {
          throw new CliError(`workspace ${vm.name} is ${vm.status}: rig workspace start ${vm.name}`)
        }
        // The API says how to reach it: `ssh -p PORT user@host`.
        const args = vm.ssh_command.split(' ').slice(1)
        if (opts.identity) args.unshift('-i', opts.identity)
        const res = spawnSync('ssh', [...args, ...command], { stdio: 'inherit' })
        if (res.error) throw new CliError(`cannot run ssh: ${res.error.message}`)
        process.exitCode = res.status ?? 1
      }),
    )
