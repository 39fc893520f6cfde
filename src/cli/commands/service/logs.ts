import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { logLine } from '../../apps.ts'
import { apiClient, wantsJson } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'
import { int } from '../workspace/sizes.ts'

export default (parent: Command) =>
  parent
    .command('logs <workspace> <name>')
    .description("a workspace service's journal")
    .option('-n, --lines <n>', 'how many recent lines', int, 100)
    .action(
      action(async (cmd, ref: string, name: string, opts: { lines: number }) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const res = unwrap(
          await api.GET('/api/v1/workspaces/{id}/services/{name}/logs', {
            params: { path: { id, name }, query: { lines: opts.lines } },
          }),
        )
        const json = wantsJson(cmd)
        for (const l of res.lines) {
          process.stdout.write(json ? `${JSON.stringify(l)}\n` : `${logLine(l)}\n`)
        }
      }),
    )
