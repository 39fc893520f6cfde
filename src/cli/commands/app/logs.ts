import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { followLogStream, logLine, resolveApp } from '../../apps.ts'
import { apiClient, wantsJson } from '../../context.ts'
import { int } from '../workspace/sizes.ts'

export default (parent: Command) =>
  parent
    .command('logs <app>')
    .description("an app's logs (its unit's journal, or a log source); -f follows them")
    .option('-n, --lines <n>', 'how many recent lines', int, 100)
    .option('-f, --follow', 'keep printing new lines until Ctrl-C (Server-Sent Events)')
    .option('--source <id>', 'a log source of the app (default: its primary one)')
    .action(
      action(
        async (cmd, ref: string, opts: { lines: number; follow?: boolean; source?: string }) => {
          const api = apiClient()
          const app = await resolveApp(api, ref)
          const json = wantsJson(cmd)
          if (opts.follow) {
            const query = opts.source ? `?source_id=${encodeURIComponent(opts.source)}` : ''
            await followLogStream(`/api/v1/apps/${app.id}/logs/stream${query}`, (data) => {
              process.stdout.write(json ? `${data}\n` : `${logLine(JSON.parse(data))}\n`)
            })
            return
          }
          const res = unwrap(
            await api.GET('/api/v1/apps/{id}/logs', {
              params: {
                path: { id: app.id },
                query: { lines: opts.lines, source_id: opts.source },
              },
            }),
          )
          for (const l of res.lines) {
            process.stdout.write(json ? `${JSON.stringify(l)}\n` : `${logLine(l)}\n`)
          }
        },
      ),
    )
