import type { Command } from 'commander'
import { action } from '../../action.ts'
import { resolveSpec } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('get <spec>')
    .description('show a service spec and the systemd unit it becomes (by id or name)')
    .action(
      action(async (cmd, ref: string) => {
        const s = await resolveSpec(apiClient(), ref)
        const env = Object.entries(s.env_vars).map(([k, v]) => `${k}=${v}`)
        print(
          cmd,
          s,
          () =>
            `id:       ${s.id}\nname:     ${s.name}\nexec:     ${s.exec_start}\n` +
            `restart:  ${s.restart_policy}\nauto:     ${s.auto_enable ? 'yes' : 'no'}\n` +
            `env:      ${env.join(' ') || '-'}\nenv file: ${s.environment_file ?? '-'}\n` +
            `--- unit preview\n${s.systemd_unit_preview.trimEnd()}`,
        )
      }),
    )
