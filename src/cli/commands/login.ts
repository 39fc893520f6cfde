import type { Command } from 'commander'
import { createRigboxClient, unwrap } from '../../client/index.ts'
import { action } from '../action.ts'
import { CliError, configPath, readCliConfig, writeCliConfig } from '../context.ts'

export async function readKeyFromStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8').trim()
}

export default (program: Command) =>
  program
    .command('login')
    .description(
      'save the API URL and key to ~/.rigbox/config.json (key read from stdin if not given)',
    )
    .option('--url <url>', 'API base URL', readCliConfig().api_url)
    .option('--key <key>', 'API key (rb_…); omit to read it from stdin')
    .action(
      action(async (cmd, opts: { url: string; key?: string }) => {
        const key = opts.key ?? (await readKeyFromStdin())
        if (!/^rb_[0-9A-Za-z]{32,}$/.test(key))
          throw new CliError('that is not a Rigbox API key (rb_…)')
        const api = createRigboxClient({ baseUrl: opts.url, apiKey: key })
        const { user } = unwrap(await api.GET('/api/v1/users/me'))
        writeCliConfig({ api_url: opts.url, api_key: key })
        process.stdout.write(
          `logged in to ${opts.url} as ${user.email}; saved to ${configPath()}\n`,
        )
      }),
    )
