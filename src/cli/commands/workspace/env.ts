import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { apiClient, CliError, print, table } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

/** `rig workspace env ls|set|unset`: the API replaces the whole set, so edits merge here. */
export default (parent: Command) => {
  const env = parent.command('env').description("a workspace's environment variables")
  env
    .command('ls <workspace>')
    .description('list the variables')
    .action(
      action(async (cmd, ref: string) => {
        const vm = await resolveWorkspace(apiClient(), ref)
        const vars = vm.env_vars ?? {}
        print(cmd, vars, () => table(['NAME', 'VALUE'], Object.entries(vars)))
      }),
    )
  env
    .command('set <workspace> <assignments...>')
    .description('set variables: K=V … (applied at once if the workspace runs)')
    .action(
      action(async (cmd, ref: string, assignments: string[]) => {
        const updates = Object.fromEntries(
          assignments.map((a) => {
            const eq = a.indexOf('=')
            if (eq < 1) throw new CliError(`"${a}" is not NAME=VALUE`)
            return [a.slice(0, eq), a.slice(eq + 1)]
          }),
        )
        await save(cmd, ref, (vars) => ({ ...vars, ...updates }))
      }),
    )
  env
    .command('unset <workspace> <names...>')
    .description('remove variables')
    .action(
      action(async (cmd, ref: string, names: string[]) => {
        await save(cmd, ref, (vars) =>
          Object.fromEntries(Object.entries(vars).filter(([k]) => !names.includes(k))),
        )
      }),
    )
}

async function save(
  cmd: Command,
  ref: string,
  edit: (vars: Record<string, string>) => Record<string, string>,
) {
  const api = apiClient()
  const vm = await resolveWorkspace(api, ref)
  const res = unwrap(
    await api.POST('/api/v1/workspaces/{id}/env', {
      params: { path: { id: vm.id } },
      body: { env_vars: edit(vm.env_vars ?? {}) },
    }),
  )
  print(cmd, res, () => res.message)
}
