import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { specTable } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list your service specs (`rig service status <ws>` shows what runs)')
    .action(
      action(async (cmd) => {
        const { services } = unwrap(await apiClient().GET('/api/v1/service-specs'))
        print(cmd, services, () => (services.length ? specTable(services) : 'no service specs yet'))
      }),
    )
