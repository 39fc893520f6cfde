import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { workspaceTable } from '../../workspaces.ts'
import { sizeBody, sizeOptions, type SizeOpts } from './sizes.ts'

export default (parent: Command) =>
  sizeOptions(
    parent
      .command('new <name>')
      .description('create a workspace (status provisioned; `rig workspace start` boots it)')
      .option('--image <image>', 'base or dev')
      .option('--template <id>', 'create from a template (its floors raise lower sizes)'),
  ).action(
    action(async (cmd, name: string, opts: SizeOpts & { image?: string; template?: string }) => {
      const api = apiClient()
      const vm = opts.template
        ? unwrap(
            await api.POST('/api/v1/quick-deploy', {
              body: { template_id: opts.template, name, ...sizeBody(opts) },
            }),
          ).workspace
        : unwrap(
            await api.POST('/api/v1/workspaces', {
              body: { name, image: opts.image, ...sizeBody(opts) },
            }),
          ).vm
      print(cmd, vm, () => workspaceTable([vm]))
    }),
  )
