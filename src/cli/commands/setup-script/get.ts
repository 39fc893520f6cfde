import type { Command } from 'commander'
import { action } from '../../action.ts'
import { resolveScript } from '../../automation.ts'
import { apiClient, print } from '../../context.ts'

export default (parent: Command) =>
  parent
    .command('get <script>')
    .description('show a setup script and its content (by id or name)')
    .action(
      action(async (cmd, ref: string) => {
        const s = await resolveScript(apiClient(), ref)
        print(
          cmd,
          s,
          () =>
            `id:      ${s.id}\nname:    ${s.name}\nrun on:  ${s.run_on}\norder:   ${s.script_order}\n` +
            `source:  ${s.source}\nupdated: ${s.updated_at}\n---\n${s.content.trimEnd()}`,
        )
      }),
    )
