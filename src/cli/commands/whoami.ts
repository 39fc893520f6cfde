import type { Command } from 'commander'
import { unwrap } from '../../client/index.ts'
import { action } from '../action.ts'
import { apiClient, print, resolveCredentials } from '../context.ts'

export default (program: Command) =>
  program
    .command('whoami')
    .description('show the account the API key belongs to')
    .action(
      action(async (cmd) => {
        const { user } = unwrap(await apiClient().GET('/api/v1/users/me'))
        print(cmd, user, () =>
          [
            `${user.email} (${user.id})`,
            `plan: ${user.plan}${user.is_admin ? ', admin' : ''}`,
            `api: ${resolveCredentials().url}`,
          ].join('\n'),
        )
      }),
    )
