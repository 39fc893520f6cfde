import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('metrics <workspace>')
    .description('live CPU, RAM and disk usage of a running workspace')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const m = unwrap(
          await api.GET('/api/v1/workspaces/{id}/metrics', { params: { path: { id } } }),
        )
        const pct = (used: number, total: number) =>
          total ? `${((used / total) * 100).toFixed(0)}%` : '-'
        print(cmd, m, () =>
          [
            `cpu:  ${m.cpu_percent.toFixed(1)}%`,
            `ram:  ${m.ram_used_mb} / ${m.ram_total_mb} MiB (${pct(m.ram_used_mb, m.ram_total_mb)})`,
            `disk: ${m.disk_used_mb} / ${m.disk_total_mb} MiB (${pct(m.disk_used_mb, m.disk_total_mb)})`,
          ].join('\n'),
        )
      }),
    )
