import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('rm <id>')
    .description('remove an SSH key (removed from running workspaces at once)')
    .action(
      action(async (cmd, id: string) => {
        const res = unwrap(
          await apiClient().DELETE('/api/v1/ssh-keys/{id}', { params: { path: { id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
