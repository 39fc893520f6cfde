import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print, table } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list your API keys')
    .action(
      action(async (cmd) => {
        const { api_keys } = unwrap(await apiClient().GET('/api/v1/api-keys'))
        print(cmd, api_keys, () =>
          table(
            ['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED'],
            api_keys.map((k) => [k.id, k.name, `${k.prefix}…`, k.created_at, k.last_used_at]),
          ),
        )
      }),
    )
