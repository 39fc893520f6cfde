import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('stop <workspace> <tool>')
    .description("stop a tool's process and switch its URL off")
    .action(
      action(async (cmd, ref: string, tool: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const res = unwrap(
          await api.POST('/api/v1/workspaces/{id}/tools/{tool}/stop', {
            params: { path: { id, tool } },
          }),
        )
        print(cmd, res, () => res.message)
      }),
    )
