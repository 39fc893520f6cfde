import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('rm <workspace>')
    .description('delete a workspace: its VM, disk and every file of it (irreversible)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const res = unwrap(
          await api.DELETE('/api/v1/workspaces/{id}', { params: { path: { id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
