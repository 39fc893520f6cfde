import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, withProgress } from '../../context.ts'
import { snapshotTable } from '../../snapshots.ts'
import { lifecycleAndWait, resolveWorkspace, waitFor } from '../../workspaces.ts'

/** Statuses `--stop` stops from; `stopping` is only waited for. */
const STOPPABLE = ['running', 'starting', 'provisioning', 'paused']

export default (parent: Command) =>
  parent
    .command('create <workspace>')
    .description("snapshot a stopped workspace's disk (returns once the copy is complete)")
    .option('--name <name>', 'a name for the snapshot (default: snapshot-<UTC time>)')
    .option('--stop', 'stop the workspace first and wait until it is stopped')
    .action(
      action(async (cmd, ref: string, opts: { name?: string; stop?: boolean }) => {
        const api = apiClient()
        const { id, name, status } = await resolveWorkspace(api, ref)
        if (opts.stop && STOPPABLE.includes(status)) {
          await lifecycleAndWait(api, id, 'stop', 'stopped', () => `stopping ${name}`)
        } else if (opts.stop && status === 'stopping') {
          await waitFor(api, id, ['stopped'], `stopping ${name}`)
        }
        const { snapshot } = await withProgress(`snapshotting ${name}`, 'copying disk', async () =>
          unwrap(
            await api.POST('/api/v1/workspaces/{id}/snapshots', {
              params: { path: { id } },
              body: { name: opts.name },
            }),
          ),
        )
        print(cmd, snapshot, () => snapshotTable([snapshot], { [id]: name }))
      }),
    )
