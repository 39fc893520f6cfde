import type { Command } from 'commander'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { workspaceTable } from '../../workspaces.ts'
import { createOptions, createWorkspace, type CreateOpts } from './sizes.ts'

export default (parent: Command) =>
  createOptions(
    parent
      .command('new <name>')
      .description('create a workspace (status provisioned; `rig workspace start` boots it)'),
  ).action(
    action(async (cmd, name: string, opts: CreateOpts) => {
      const vm = await createWorkspace(apiClient(), name, opts)
      print(cmd, vm, () => workspaceTable([vm]))
    }),
  )
