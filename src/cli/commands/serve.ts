import type { Command } from 'commander'
import { ConfigError } from '../../config/config.ts'
import { serve } from '../../server/serve.ts'

export default (program: Command) =>
  program
    .command('serve')
    .description('run the whole platform on this host (API, node) on embedded defaults')
    .action(async () => {
      try {
        await serve()
      } catch (err) {
        // A bad setting stops start-up with the message that names it, not a stack trace.
        if (err instanceof ConfigError) {
          process.stderr.write(`rigbox: ${err.message}\n`)
          process.exit(2)
        }
        throw err
      }
    })
