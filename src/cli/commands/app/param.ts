import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { parseAssignments, resolveApp } from '../../apps.ts'
import { apiClient, CliError, print, table } from '../../context.ts'

/** `rig app param ls|set`: typed settings the app gets as environment variables. */
export default (parent: Command) => {
  const param = parent.command('param').description("an app's parameters (delivered as env)")
  param
    .command('ls <app>')
    .description('list the parameters and their values (sensitive values are masked)')
    .action(
      action(async (cmd, ref: string) => {
        const api = apiClient()
        const app = await resolveApp(api, ref)
        const res = unwrap(
          await api.GET('/api/v1/apps/{id}/params', { params: { path: { id: app.id } } }),
        )
        print(cmd, res, () =>
          res.specs.length
            ? table(
                ['KEY', 'TYPE', 'VALUE', 'REQUIRED', 'LABEL'],
                res.specs.map((s) => [
                  s.key,
                  s.sensitive ? `${s.param_type} (sensitive)` : s.param_type,
                  res.values[s.key],
                  s.required ? 'yes' : 'no',
                  s.label,
                ]),
              )
            : `app ${app.name} has no parameters`,
        )
      }),
    )
  param
    .command('set <app> <assignments...>')
    .description('set parameters: KEY=VALUE … (validated; a running app restarts with them)')
    .action(
      action(async (cmd, ref: string, assignments: string[]) => {
        const values = parseAssignments(assignments, 'parameter')
        if (!Object.keys(values).length) throw new CliError('give at least one KEY=VALUE')
        const api = apiClient()
        const app = await resolveApp(api, ref)
        const res = unwrap(
          await api.PATCH('/api/v1/apps/{id}/params', {
            params: { path: { id: app.id } },
            body: { values },
          }),
        )
        print(
          cmd,
          res,
          () => `set ${Object.keys(values).join(', ')} on ${res.app.name} (${res.app.status})`,
        )
      }),
    )
}
