import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { resolveApp } from '../../apps.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('rm <app>')
    .description('delete an app (its route and its record)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const app = await resolveApp(api, ref)
        const res = unwrap(
          await api.DELETE('/api/v1/apps/{id}', { params: { path: { id: app.id } } }),
        )
        print(cmd, res, () => res.message)
      }),
    )
