import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { collect } from '../../apps.ts'
import { resolveSpec, RESTART_POLICIES, specBody, type SpecFlags } from '../../automation.ts'
import { apiClient, CliError, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('edit <spec>')
    .description('change a service spec (only the given fields; applies at the next start)')
    .option('--name <name>', 'a new name')
    .option('--exec <command>', 'the command line')
    .option('--env <K=V>', 'replaces all variables (repeatable)', collect)
    .option('--env-file <path>', 'an env file in the VM ("" clears it)')
    .option('--restart <policy>', RESTART_POLICIES.join(', '))
    .option('--auto-enable', 'start it at boot')
    .option('--no-auto-enable', 'do not start it at boot')
    .action(
      action(async (cmd, ref: string, opts: SpecFlags & { name?: string }) => {
        const body = { name: opts.name, ...specBody(opts) }
        if (Object.values(body).every((v) => v === undefined)) {
          throw new CliError('nothing to change: give --name, --exec, --env, --restart, …')
        }
        const api = apiClient()
        const { id } = await resolveSpec(api, ref)
        const spec = unwrap(
          await api.PUT('/api/v1/service-specs/{id}', { params: { path: { id } }, body }),
        )
        print(cmd, spec, () => `updated ${spec.name} (${spec.id})\n${spec.systemd_unit_preview}`)
      }),
    )
