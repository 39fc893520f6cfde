import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list your SSH keys')
    .action(
      action(async (cmd) => {
        const { ssh_keys } = unwrap(await apiClient().GET('/api/v1/ssh-keys'))
        print(cmd, ssh_keys, () =>
          table(
            ['ID', 'NAME', 'FINGERPRINT', 'ADDED'],
            ssh_keys.map((k) => [k.id, k.name, k.fingerprint, k.created_at]),
          ),
        )
      }),
    )
