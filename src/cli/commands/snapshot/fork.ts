import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, withProgress } from '../../context.ts'
import { resolveSnapshot } from '../../snapshots.ts'
import { lifecycleAndWait, workspaceTable } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('fork <snapshot>')
    .description("create a new workspace whose disk starts as the snapshot's")
    .option('--name <name>', 'name of the new workspace (default: <source>-fork-<random>)')
    .option('--workspace <workspace>', 'the workspace it was taken of (to find it by name there)')
    .option('--start', 'boot the new workspace and wait until it is running')
    .action(
      action(
        async (cmd, ref: string, opts: { name?: string; workspace?: string; start?: boolean }) => {
          const api = apiClient()
          const snap = await resolveSnapshot(api, ref, opts.workspace)
          let { vm } = await withProgress(`forking ${snap.name}`, 'copying disk', async () =>
            unwrap(
              await api.POST('/api/v1/snapshots/{snapshot_id}/fork', {
                params: { path: { snapshot_id: snap.id } },
                body: { name: opts.name },
              }),
            ),
          )
          process.stderr.write(`created ${vm.name} (${vm.id}) from ${snap.name} (${snap.id})\n`)
          if (opts.start) {
            vm = await lifecycleAndWait(api, vm.id, 'start', 'running', (v) => `booting ${v.name}`)
          }
          print(cmd, vm, () => workspaceTable([vm]))
        },
      ),
    )
