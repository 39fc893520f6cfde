import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, print } from '../../context.ts'
import { workspaceTable } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('ls')
    .description('list your workspaces')
    .action(
      action(async (cmd) => {
        const { vms } = unwrap(await apiClient().GET('/api/v1/workspaces'))
        print(cmd, vms, () => (vms.length ? workspaceTable(vms) : 'no workspaces yet'))
      }),
    )
