import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { followLogStream, logLine } from '../../apps.ts'
import { apiClient, wantsJson } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'
import { int } from './sizes.ts'

export default (parent: Command) =>
  parent
    .command('logs <workspace>')
    .description("a workspace's system journal; -f follows it (Server-Sent Events)")
    .option('-n, --lines <n>', 'how many recent lines', int, 100)
    .option('-f, --follow', 'keep printing new lines until the workspace stops')
    .action(
      action(async (cmd, ref: string, opts: { lines: number; follow?: boolean }) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const json = wantsJson(cmd)
        if (!opts.follow) {
          const res = unwrap(
            await api.GET('/api/v1/workspaces/{id}/logs', {
              params: { path: { id }, query: { lines: opts.lines } },
            }),
          )
          for (const l of res.lines) {
            process.stdout.write(json ? `${JSON.stringify(l)}\n` : `${logLine(l)}\n`)
          }
          return
        }
        await followLogStream(`/api/v1/workspaces/${id}/logs/stream`, (data) => {
          const line = JSON.parse(data) as { message: string; timestamp: string | null }
          process.stdout.write(json ? `${data}\n` : `${logLine(line)}\n`)
        })
      }),
    )
