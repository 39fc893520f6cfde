import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('get <workspace>')
    .description('show one workspace (by id or name)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const res = unwrap(await api.GET('/api/v1/workspaces/{id}', { params: { path: { id } } }))
        const v = res.vm
        print(cmd, res, () =>
          [
            `id:        ${v.id}`,
            `name:      ${v.name}`,
            `status:    ${v.status}`,
            `image:     ${v.image}${v.template_id ? ` (template ${v.template_id})` : ''}`,
            `size:      ${v.ram_mb} MiB RAM, ${v.vcpu_count} vCPU, ${v.disk_size_mb} MiB disk`,
            `ip:        ${v.ip_address ?? '-'}`,
            `env:       ${Object.keys(v.env_vars ?? {}).join(', ') || '-'}`,
            `created:   ${v.created_at}`,
            ...(res.failure ? [`failure:   ${res.failure.code}: ${res.failure.message}`] : []),
          ].join('\n'),
        )
      }),
    )
