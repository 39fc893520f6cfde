import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'

const list = action(async (cmd) => {
  const { items } = unwrap(await apiClient().GET('/api/v1/app-catalog'))
  print(cmd, items, () =>
    table(
      ['ID', 'NAME', 'CATEGORY', 'MIN RAM', 'PARAMS', 'DESCRIPTION'],
      items.map((i) => [
        i.id,
        i.name,
        i.category,
        `${i.min_ram_mb}M`,
        i.configurable_params.map((p) => (p.required ? `${p.key}*` : p.key)).join(',') || '-',
        i.description,
      ]),
    ),
  )
})

/** `rig catalog` alone lists, as does `rig catalog ls`. */
export default (catalog: Command) => {
  catalog.action(list)
  catalog
    .command('ls')
    .description('list the apps that can be installed into a workspace')
    .action(list)
}
