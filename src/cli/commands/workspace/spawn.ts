import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { waitFor, workspaceTable } from '../../workspaces.ts'
import { sizeBody, sizeOptions, type SizeOpts } from './sizes.ts'

export default (parent: Command) =>
  sizeOptions(
    parent
      .command('spawn <name>')
      .description('create a workspace, boot it and wait until it is running')
      .option('--image <image>', 'base or dev')
      .option('--template <id>', 'create from a template'),
  ).action(
    action(async (cmd, name: string, opts: SizeOpts & { image?: string; template?: string }) => {
      const api = apiClient()
      const created = opts.template
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
      process.stderr.write(`created ${created.name} (${created.id})\n`)
      unwrap(
        await api.POST('/api/v1/workspaces/{id}/start', { params: { path: { id: created.id } } }),
      )
      const vm = await waitFor(api, created.id, ['running'], `booting ${name}`)
      print(cmd, vm, () => workspaceTable([vm]))
    }),
  )
