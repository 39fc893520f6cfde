import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('create')
    .description('create an API key (shown once: store it now)')
    .option('--name <name>', 'a name to tell the key apart', 'cli')
    .action(
      action(async (cmd, opts: { name: string }) => {
        const res = unwrap(
          await apiClient().POST('/api/v1/api-keys', { body: { name: opts.name } }),
        )
        print(cmd, res, () => `${res.key}\n(id ${res.api_key.id}; this key is shown only once)`)
      }),
    )
