import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { resolveScript } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('rm <script>')
    .description('delete a setup script (workspaces it is attached to skip it from then on)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveScript(api, ref)
        const res = unwrap(
          await api.DELETE('/api/v1/setup-scripts/{id}', { params: { path: { id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
