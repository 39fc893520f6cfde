import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace, waitFor, workspaceTable } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('pause <workspace>')
    .description("save a running workspace's memory and free its RAM and CPU; wait until paused")
    .option('--no-wait', 'return as soon as the pause is accepted')
    .action(
      action(async (cmd, ref: string, opts: { wait: boolean }) => {
        const api = apiClient()
        const { id, name } = await resolveWorkspace(api, ref)
        let vm = unwrap(
          await api.POST('/api/v1/workspaces/{id}/pause', { params: { path: { id } } }),
        ).vm
        if (opts.wait) vm = await waitFor(api, id, ['paused'], `pausing ${name}`)
        print(cmd, vm, () => workspaceTable([vm]))
      }),
    )
