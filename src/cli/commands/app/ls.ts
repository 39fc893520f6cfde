import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { appTable } from '../../apps.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('ls [workspace]')
    .description("list your apps (or one workspace's)")
    .action(
      action(async (cmd, ref: string | undefined) => {
        const api = apiClient()
        let { apps } = unwrap(await api.GET('/api/v1/apps'))
        let names: Record<string, string>
        if (ref) {
          const ws = await resolveWorkspace(api, ref)
          apps = apps.filter((a) => a.workspace_id === ws.id)
          names = { [ws.id]: ws.name }
        } else {
          const { vms } = unwrap(await api.GET('/api/v1/workspaces'))
          names = Object.fromEntries(vms.map((v) => [v.id, v.name]))
        }
        print(cmd, apps, () => (apps.length ? appTable(apps, names) : 'no apps yet'))
      }),
    )
