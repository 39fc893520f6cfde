import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { collect } from '../../apps.ts'
import { RESTART_POLICIES, specBody, type SpecFlags } from '../../automation.ts'
import { apiClient, CliError, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('new <name>')
    .description('create a service spec: a systemd unit rigbox-svc-<name> run as developer')
    .option('--exec <command>', 'the command line (systemd syntax, not a shell)')
    .option('--env <K=V>', 'an environment variable (repeatable)', collect)
    .option('--env-file <path>', 'an env file in the VM, read if it exists')
    .option('--restart <policy>', `${RESTART_POLICIES.join(', ')} (default on-failure)`)
    .option('--no-auto-enable', 'do not start it at boot (after the setup scripts)')
    .option('--setup-script <bash>', 'bash run once before the unit first starts')
    .action(
      action(async (cmd, name: string, opts: SpecFlags) => {
        const { exec_start, restart_policy, auto_enable, ...rest } = specBody(opts)
        if (!exec_start) throw new CliError('give the command: --exec "cmd args"')
        const spec = unwrap(
          await apiClient().POST('/api/v1/service-specs', {
            // The server's defaults, spelled out: the generated body type requires them.
            body: {
              name,
              exec_start,
              restart_policy: restart_policy ?? 'on-failure',
              auto_enable: auto_enable ?? true,
              ...rest,
            },
          }),
        )
        print(cmd, spec, () => `created ${spec.name} (${spec.id})\n${spec.systemd_unit_preview}`)
      }),
    )
