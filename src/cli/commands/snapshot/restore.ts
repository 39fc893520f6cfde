import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveSnapshot } from '../../snapshots.ts'
import { lifecycleAndWait, workspaceTable } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('restore <snapshot>')
    .description('put a snapshot back as the disk of the (stopped) workspace it was taken of')
    .option('--workspace <workspace>', 'the workspace it was taken of (to find it by name there)')
    .option('--start', 'start the workspace afterwards and wait until it is running')
    .action(
      action(async (cmd, ref: string, opts: { workspace?: string; start?: boolean }) => {
        const api = apiClient()
        const snap = await resolveSnapshot(api, ref, opts.workspace)
        const res = unwrap(
          await api.POST('/api/v1/snapshots/{snapshot_id}/restore', {
            params: { path: { snapshot_id: snap.id } },
          }),
        )
        if (!opts.start) return print(cmd, res, () => res.message)
        const id = res.workspace_id
        const vm = await lifecycleAndWait(api, id, 'start', 'running', (v) => `starting ${v.name}`)
        print(
          cmd,
          { ...res, vm },
          () => `restored ${snap.name} (${snap.id}) into ${vm.name}\n${workspaceTable([vm])}`,
        )
      }),
    )
