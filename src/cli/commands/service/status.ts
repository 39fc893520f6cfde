import type { Command } from 'commander'
import { unwrap, type Schemas } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

type Service = Schemas['WorkspaceService']

const serviceTable = (services: Service[]) =>
  table(
    ['NAME', 'KIND', 'STATUS', 'UNIT', 'PORT', 'SOURCE'],
    services.map((s) => [s.name, s.kind, s.status, s.unit_name, s.port, s.source]),
  )

export default (parent: Command) =>
  parent
    .command('status <workspace> [name]')
    .description("what runs in a workspace: its services' real state from systemd")
    .action(
      action(async (cmd, ref: string, name: string | undefined) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        if (name) {
          const s = unwrap(
            await api.GET('/api/v1/workspaces/{id}/services/{name}', {
              params: { path: { id, name } },
            }),
          )
          return print(cmd, s, () => serviceTable([s]))
        }
        const { services } = unwrap(
          await api.GET('/api/v1/workspaces/{id}/services', { params: { path: { id } } }),
        )
        print(cmd, services, () => (services.length ? serviceTable(services) : 'no services'))
      }),
    )
