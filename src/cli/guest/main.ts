#!/usr/bin/env node
/**
 * `rig` inside a workspace: scoped to that VM, with no login. It talks to the VM bridge at
 * 172.16.0.1:9090, which knows the caller from the VM's own channel. Bundled into the image as
 * /usr/local/bin/rig.
 */
import { Command } from 'commander'
import { bridge, out, run } from './bridge.ts'
import { registerProxy } from './proxy.ts'
import { registerStatus } from './status.ts'

interface AppView {
  id: string
  subdomain: string
  port: number
  visibility: string
  status: string
  url: string
}

const program = new Command('rig')
  .description('Rigbox inside a workspace (scoped to this VM, no login needed)')
  .option('--json', 'machine-readable JSON output')

program
  .command('whoami')
  .description('this workspace and its owner')
  .action(
    run(async (cmd) => {
      const me = await bridge<{ user: { email: string }; workspace: { id: string; name: string } }>(
        'GET',
        '/rig/v1/whoami',
      )
      out(cmd, me, () => `${me.workspace.name} (${me.workspace.id}), owned by ${me.user.email}`)
    }),
  )

const app = program.command('app').description("this workspace's apps")
app.command('ls').action(
  run(async (cmd) => {
    const { apps } = await bridge<{ apps: AppView[] }>('GET', '/rig/v1/apps')
    out(cmd, apps, () =>
      apps.length
        ? apps
            .map((a) => `${a.subdomain}\t:${a.port}\t${a.visibility}\t${a.status}\t${a.url}`)
            .join('\n')
        : 'no apps yet: rig app new <name> --port <port>',
    )
  }),
)
app
  .command('new <name>')
  .requiredOption('--port <port>', 'the port your service listens on in this VM', Number)
  .action(
    run(async (cmd, name: string, opts: { port: number }) => {
      const { app: made } = await bridge<{ app: AppView }>('POST', '/rig/v1/apps', {
        name,
        port: opts.port,
      })
      out(cmd, made, () => `${made.url} → port ${made.port} (${made.visibility})`)
    }),
  )
app.command('rm <name>').action(
  run(async (cmd, name: string) => {
    const { apps } = await bridge<{ apps: AppView[] }>('GET', '/rig/v1/apps')
    const found = apps.find((a) => a.subdomain === name || a.id === name)
    if (!found) throw new Error(`no app "${name}" in this workspace`)
    const res = await bridge<{ message: string }>('DELETE', `/rig/v1/apps/${found.id}`)
    out(cmd, res, () => res.message)
  }),
)

program
  .command('env')
  .description("this workspace's environment variables as set through the API")
  .action(
    run(async (cmd) => {
      const { env_vars } = await bridge<{ env_vars: Record<string, string> }>('GET', '/rig/v1/env')
      out(cmd, env_vars, () =>
        Object.entries(env_vars)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n'),
      )
    }),
  )

registerStatus(program)
registerProxy(program)

await program.parseAsync()
