import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('launch <workspace> <tool>')
    .description('start an installed tool and print its URL')
    .action(
      action(async (cmd, ref: string, tool: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const res = unwrap(
          await api.POST('/api/v1/workspaces/{id}/tools/{tool}/launch', {
            params: { path: { id, tool } },
            body: {},
          }),
        )
        print(cmd, res, () => res.url ?? res.message)
      }),
    )
