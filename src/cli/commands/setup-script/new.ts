import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { RUN_ON, scriptBody, scriptTable, type ScriptFlags } from '../../automation.ts'
import { apiClient, CliError, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('new <name>')
    .description('create a bash setup script (run as developer, with sudo, in /home/developer)')
    .option('--file <path>', 'read the script from a file (- for stdin)')
    .option('--content <text>', 'the script itself')
    .option('--run-on <when>', `${RUN_ON.join(' or ')} (default first_boot)`)
    .option('--order <n>', 'lower runs first (default 0)')
    .action(
      action(async (cmd, name: string, opts: ScriptFlags) => {
        const { content, run_on, script_order } = scriptBody(opts)
        if (content === undefined) throw new CliError('give the script: --file F or --content C')
        const script = unwrap(
          await apiClient().POST('/api/v1/setup-scripts', {
            // The server's default, spelled out: the generated body type requires it.
            body: { name, content, run_on: run_on ?? 'first_boot', script_order },
          }),
        )
        print(cmd, script, () => scriptTable([script]))
      }),
    )
