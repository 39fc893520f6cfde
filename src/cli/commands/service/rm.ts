import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { resolveSpec } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('rm <spec>')
    .description('delete a service spec (workspaces drop its unit at their next start)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveSpec(api, ref)
        const res = unwrap(
          await api.DELETE('/api/v1/service-specs/{id}', { params: { path: { id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
