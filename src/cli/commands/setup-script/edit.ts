import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import {
  resolveScript,
  RUN_ON,
  scriptBody,
  scriptTable,
  type ScriptFlags,
} from '../../automation.ts'
import { apiClient, CliError, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('edit <script>')
    .description('change a setup script (only the given fields; applies at the next start)')
    .option('--name <name>', 'a new name')
    .option('--file <path>', 'new content from a file (- for stdin)')
    .option('--content <text>', 'new content')
    .option('--run-on <when>', RUN_ON.join(' or '))
    .option('--order <n>', 'lower runs first')
    .action(
      action(async (cmd, ref: string, opts: ScriptFlags) => {
        const body = scriptBody(opts)
        if (Object.values(body).every((v) => v === undefined)) {
          throw new CliError(
            'nothing to change: give --name, --file, --content, --run-on or --order',
          )
        }
        const api = apiClient()
        const { id } = await resolveScript(api, ref)
        const script = unwrap(
          await api.PUT('/api/v1/setup-scripts/{id}', { params: { path: { id } }, body }),
        )
        print(cmd, script, () => scriptTable([script]))
      }),
    )
