import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, CliError, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'
import { readKeyFromStdin } from '../login.ts'

const PROVIDERS = ['openai', 'anthropic', 'google'] as const
type Provider = (typeof PROVIDERS)[number]

interface Opts {
  managed?: boolean
  byok?: string
  off?: boolean
  model?: string
}

export default (parent: Command) =>
  parent
    .command('config <workspace>')
    .description(
      "show or change a workspace's AI mode; --byok reads the provider's API key from stdin",
    )
    .option('--managed', 'use Rigbox credits through the managed proxy (clears a stored key)')
    .option('--byok <provider>', `bring your own key: ${PROVIDERS.join(', ')}`)
    .option('--off', 'no AI for this workspace')
    .option('--model <model>', "the workspace's default model")
    .action(
      action(async (cmd, ref: string, opts: Opts) => {
        const modes = [opts.managed && 'managed', opts.byok && 'byok', opts.off && 'off']
        const chosen = modes.filter((m): m is string => Boolean(m))
        if (chosen.length > 1) throw new CliError('choose one of --managed, --byok, --off')
        if (opts.byok && !(PROVIDERS as readonly string[]).includes(opts.byok)) {
          throw new CliError(`--byok takes a provider: ${PROVIDERS.join(', ')}`)
        }
        const api = apiClient()
        const { id } = await resolveWorkspace(api, ref)
        const path = { params: { path: { id } } }
        const body: {
          mode?: 'managed' | 'byok' | 'off'
          provider?: Provider
          model?: string
          api_key?: string
        } = {}
        if (chosen.length) body.mode = chosen[0] as 'managed' | 'byok' | 'off'
        if (opts.model) body.model = opts.model
        if (opts.byok) {
          body.provider = opts.byok as Provider
          // From stdin, so the key stays out of shell history and the process list.
          body.api_key = await readKeyFromStdin()
          if (!body.api_key) throw new CliError(`pipe your ${opts.byok} API key into stdin`)
        }
        const config = Object.keys(body).length
          ? unwrap(await api.PUT('/api/v1/workspaces/{id}/ai-config', { ...path, body }))
          : unwrap(await api.GET('/api/v1/workspaces/{id}/ai-config', path))
        print(cmd, config, () =>
          [
            `mode:     ${config.mode} (${config.status})`,
            `provider: ${config.provider}`,
            `model:    ${config.model}`,
            `updated:  ${config.updated_at}`,
          ].join('\n'),
        )
      }),
    )
