import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { snapshotTable } from '../../snapshots.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('ls [workspace]')
    .description("list your snapshots, newest first (or one workspace's)")
    .action(
      action(async (cmd, ref: string | undefined) => {
        const api = apiClient()
        let snapshots
        let names: Record<string, string>
        if (ref) {
          const ws = await resolveWorkspace(api, ref)
          snapshots = unwrap(
            await api.GET('/api/v1/workspaces/{id}/snapshots', { params: { path: { id: ws.id } } }),
          ).snapshots
          names = { [ws.id]: ws.name }
        } else {
          snapshots = unwrap(await api.GET('/api/v1/snapshots')).snapshots
          const { vms } = unwrap(await api.GET('/api/v1/workspaces'))
          names = Object.fromEntries(vms.map((v) => [v.id, v.name]))
        }
        print(cmd, snapshots, () =>
          snapshots.length ? snapshotTable(snapshots, names) : 'no snapshots yet',
        )
      }),
    )
