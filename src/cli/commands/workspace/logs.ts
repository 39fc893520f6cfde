import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, resolveCredentials, wantsJson } from '../../context.ts'
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
            process.stdout.write(
              json ? `${JSON.stringify(l)}\n` : `${l.timestamp ?? ''} ${l.message}\n`,
            )
          }
          return
        }
        await follow(id, json)
      }),
    )

/** Reads the SSE stream, reconnecting with Last-Event-ID so no line is lost or repeated. */
async function follow(id: string, json: boolean) {
  const { url, key } = resolveCredentials()
  let lastId: string | undefined
  for (;;) {
    const res = await fetch(`${url}/api/v1/workspaces/${id}/logs/stream`, {
      headers: { authorization: `Bearer ${key}`, ...(lastId ? { 'last-event-id': lastId } : {}) },
    })
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } }
      throw new Error(body.error?.message ?? `log stream answered HTTP ${res.status}`)
    }
    let buffer = ''
    let ended = false
    for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
      buffer += chunk
      let sep
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, sep)
        buffer = buffer.slice(sep + 2)
        const fields = Object.fromEntries(
          event
            .split('\n')
            .filter((l) => l && !l.startsWith(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]),
        )
        if (fields.event === 'end') ended = true
        if (fields.event !== 'log') continue
        lastId = fields.id
        const line = JSON.parse(fields.data) as { message: string; timestamp: string | null }
        process.stdout.write(
          json ? `${fields.data}\n` : `${line.timestamp ?? ''} ${line.message}\n`,
        )
      }
    }
    if (ended) return
  }
}
