import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveSnapshot } from '../../snapshots.ts'

export default (parent: Command) =>
  parent
    .command('rm <snapshot>')
    .description('delete a snapshot (its workspace is not affected)')
    .option('--workspace <workspace>', 'the workspace it was taken of (to find it by name there)')
    .action(
      action(async (cmd, ref: string, opts: { workspace?: string }) => {
        const api = apiClient()
        const snap = await resolveSnapshot(api, ref, opts.workspace)
        const res = unwrap(
          await api.DELETE('/api/v1/snapshots/{snapshot_id}', {
            params: { path: { snapshot_id: snap.id } },
          }),
        )
        print(cmd, res, () => res.message)
      }),
    )
