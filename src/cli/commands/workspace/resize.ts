import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, CliError, print } from '../../context.ts'
import { resolveWorkspace, workspaceTable } from '../../workspaces.ts'
import { sizeBody, sizeOptions, type SizeOpts } from './sizes.ts'

export default (parent: Command) =>
  sizeOptions(
    parent
      .command('resize <workspace>')
      .description('change RAM, vCPUs or disk of a stopped workspace (applies at the next start)'),
  ).action(
    action(async (cmd, ref: string, opts: SizeOpts) => {
      if (!opts.ram && !opts.vcpus && !opts.disk)
        throw new CliError('give --ram, --vcpus or --disk')
      const api = apiClient()
      const { id } = await resolveWorkspace(api, ref)
      const res = unwrap(
        await api.PUT('/api/v1/workspaces/{id}/resources', {
          params: { path: { id } },
          body: sizeBody(opts),
        }),
      )
      print(cmd, res, () => `${workspaceTable([res.vm])}\n${res.message}`)
    }),
  )
