import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { waitForJob } from '../../apps.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

export default (parent: Command) =>
  parent
    .command('install <workspace> <tool>')
    .description(
      'install a tool in a running workspace and wait (exit 1 with its output on failure)',
    )
    .option('--no-wait', 'return as soon as the install job is queued')
    .action(
      action(async (cmd, ref: string, tool: string, opts: { wait: boolean }) => {
        const api = apiClient()
        const { id, name } = await resolveWorkspace(api, ref)
        const path = { id, tool }
        const started = unwrap(
          await api.POST('/api/v1/workspaces/{id}/tools/{tool}/install', { params: { path } }),
        )
        if (!opts.wait) return print(cmd, started, () => started.message)
        await waitForJob(`installing ${tool} in ${name}`, async () => {
          const s = unwrap(
            await api.GET('/api/v1/workspaces/{id}/tools/{tool}/install-status', {
              params: { path },
            }),
          )
          return { status: s.status, exit_code: s.exit_code, output: s.stdout_tail }
        })
        const status = unwrap(
          await api.GET('/api/v1/workspaces/{id}/tools/{tool}/status', { params: { path } }),
        )
        print(
          cmd,
          status,
          () => `${tool} is installed; \`rig tool launch ${ref} ${tool}\` starts it`,
        )
      }),
    )
