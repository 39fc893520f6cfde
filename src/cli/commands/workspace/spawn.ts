import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { waitFor, workspaceTable } from '../../workspaces.ts'
import { createOptions, createWorkspace, type CreateOpts } from './sizes.ts'

export default (parent: Command) =>
  createOptions(
    parent
      .command('spawn <name>')
      .description('create a workspace, boot it and wait until it is running'),
  ).action(
    action(async (cmd, name: string, opts: CreateOpts) => {
      const api = apiClient()
      const created = await createWorkspace(api, name, opts)
      process.stderr.write(`created ${created.name} (${created.id})\n`)
      unwrap(
        await api.POST('/api/v1/workspaces/{id}/start', { params: { path: { id: created.id } } }),
      )
      const vm = await waitFor(api, created.id, ['running'], `booting ${name}`)
      print(cmd, vm, () => workspaceTable([vm]))
    }),
  )
