import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('ls <workspace>')
    .description("a workspace's tools: installed, running, and their URLs")
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const { tools } = unwrap(
          await api.GET('/api/v1/workspaces/{id}/tools', { params: { path: { id } } }),
        )
        print(cmd, tools, () =>
          table(
            ['ID', 'NAME', 'STATE', 'URL', 'DESCRIPTION'],
            tools.map((t) => [
              t.id,
              t.name,
              t.status_sys === 'installing'
                ? 'installing'
                : t.running
                  ? 'running'
                  : t.available
                    ? 'installed'
                    : (t.unavailable_reason ?? 'not installed'),
              t.url,
              t.description,
            ]),
          ),
        )
      }),
    )
