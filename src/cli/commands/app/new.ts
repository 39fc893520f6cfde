import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { appTable } from '../../apps.ts'
import { apiClient, CliError, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

/** A TCP port, checked here so a typo is a usage error (exit 2), not an API error. */
const port = (v: string) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new CliError(`--port must be a port number 1-65535 (got "${v}")`)
  }
  return n
}

export default (parent: Command) =>
  parent
    .command('new <name>')
    .description("serve a port of a workspace as an app at <name>'s URL")
    .requiredOption('--workspace <workspace>', 'the workspace (name or id)')
    .requiredOption('--port <port>', 'the port the app listens on inside the workspace')
    .option('--public', 'reachable by anyone (default: only you, after login)')
    .option('--description <text>', 'a note shown with the app')
    .action(
      action(
        async (
          cmd,
          name: string,
          opts: { workspace: string; port: string; public?: boolean; description?: string },
        ) => {
          const api = apiClient()
          const appPort = port(opts.port)
          const ws = await resolveWorkspace(api, opts.workspace)
          let { app } = unwrap(
            await api.POST('/api/v1/apps', {
              body: { name, workspace_id: ws.id, port: appPort, description: opts.description },
            }),
          )
          if (opts.public) {
            app = unwrap(
              await api.PUT('/api/v1/apps/{id}/visibility', {
                params: { path: { id: app.id } },
                body: { visibility: 'public' },
              }),
            ).app
          }
          print(cmd, app, () => appTable([app], { [ws.id]: ws.name }))
        },
      ),
    )
