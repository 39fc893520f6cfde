import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('rm <id>')
    .description('revoke an API key (it stops working at once)')
    .action(
      action(async (cmd, id: string) => {
        const res = unwrap(
          await apiClient().DELETE('/api/v1/api-keys/{id}', { params: { path: { id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
