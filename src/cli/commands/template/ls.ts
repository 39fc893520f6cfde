import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list workspace templates')
    .action(
      action(async (cmd) => {
        const { templates } = unwrap(await apiClient().GET('/api/v1/templates'))
        print(cmd, templates, () =>
          table(
            ['ID', 'IMAGE', 'RAM', 'VCPU', 'DISK', 'DESCRIPTION'],
            templates.map((t) => [
              t.coming_soon ? `${t.id} (soon)` : t.id,
              t.image,
              `${t.ram_mb}M`,
              t.vcpu_count,
              `${t.disk_size_mb}M`,
              t.description,
            ]),
          ),
        )
      }),
    )
