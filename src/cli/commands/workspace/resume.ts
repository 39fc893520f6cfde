import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace, waitFor, workspaceTable } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('resume <workspace>')
    .description('bring a paused workspace back, every process where it was; wait until running')
    .option('--no-wait', 'return as soon as the resume is accepted')
    .action(
      action(async (cmd, ref: string, opts: { wait: boolean }) => {
        const api = apiClient()
        const { id, name } = await resolveWorkspace(api, ref)
        let vm = unwrap(
          await api.POST('/api/v1/workspaces/{id}/resume', { params: { path: { id } } }),
        ).vm
        if (opts.wait) vm = await waitFor(api, id, ['running'], `resuming ${name}`)
        print(cmd, vm, () => workspaceTable([vm]))
      }),
    )
