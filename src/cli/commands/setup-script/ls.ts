import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { scriptTable } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list your setup scripts, in the order they run')
    .action(
      action(async (cmd) => {
        const { scripts } = unwrap(await apiClient().GET('/api/v1/setup-scripts'))
        print(cmd, scripts, () => (scripts.length ? scriptTable(scripts) : 'no setup scripts yet'))
      }),
    )
