import type { Command } from 'commander'
import { unwrap } from '../../client/index.ts'
import { action } from '../action.ts'
import { apiClient, print } from '../context.ts'

const fmt = (credits: number) => credits.toFixed(2)

export default (program: Command) =>
  program
    .command('credits')
    .description('your AI credit balance this period (1 credit ≈ $0.01 of model cost)')
    .action(
      action(async (cmd) => {
        const c = unwrap(await apiClient().GET('/api/v1/users/me/credits'))
        print(cmd, c, () =>
          [
            `credits: ${fmt(c.remaining)} of ${fmt(c.total)} left (AI mode: ${c.mode})`,
            `used:    ${fmt(c.used)} this period; held by calls in flight: ${fmt(c.reserved_micro / 1e6)}`,
            `grants:  ${fmt(c.granted_micro / 1e6)} (kept until spent)`,
            `renews:  ${c.renews_at}`,
          ].join('\n'),
        )
      }),
    )
