import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, CliError, print, table } from '../../context.ts'

const RANGES = ['1h', '6h', '24h', '7d'] as const
type Range = (typeof RANGES)[number]

export default (parent: Command) =>
  parent
    .command('usage')
    .description('AI usage: totals over a range, and per workspace over the last 30 days')
    .option('--range <range>', `one of ${RANGES.join(', ')}`, '24h')
    .action(
      action(async (cmd, opts: { range: string }) => {
        if (!(RANGES as readonly string[]).includes(opts.range)) {
          throw new CliError(`--range must be one of ${RANGES.join(', ')}`)
        }
        const range = opts.range as Range
        const api = apiClient()
        const summary = unwrap(
          await api.GET('/api/v1/users/me/ai-usage/metrics/summary', {
            params: { query: { range } },
          }),
        )
        const usage = unwrap(await api.GET('/api/v1/users/me/ai-usage'))
        print(cmd, { summary, by_workspace: usage.by_workspace }, () =>
          [
            `last ${range}: ${summary.total_requests} requests, ${summary.input_tokens} input / ` +
              `${summary.output_tokens} output tokens, ${summary.total_credits.toFixed(2)} credits`,
            '',
            `by workspace, last ${usage.window_days} days:`,
            usage.by_workspace.length
              ? table(
                  ['WORKSPACE', 'ID', 'REQUESTS', 'INPUT', 'OUTPUT', 'CREDITS'],
                  usage.by_workspace.map((w) => [
                    w.workspace_name,
                    w.workspace_id,
                    w.requests,
                    w.input_tokens,
                    w.output_tokens,
                    w.credits.toFixed(2),
                  ]),
                )
              : 'no AI calls yet',
          ].join('\n'),
        )
      }),
    )
