import type { Command } from 'commander'
import { unwrap } from '../../client/index.ts'
import { action } from '../action.ts'
import { apiClient, CliError, wantsJson } from '../context.ts'
import { resolveWorkspace } from '../workspaces.ts'
import { int } from './workspace/sizes.ts'

export default (program: Command) =>
  program
    .command('exec <workspace> [command...]')
    .description('run a command in a workspace (bash -lc); exits with its exit code')
    .usage('<workspace> [options] -- <command...>')
    .option('--root', 'run as root instead of developer')
    .option('--timeout <ms>', 'kill the command after this long', int, 600_000)
    .option('--stdin', 'pass this process’s stdin to the command')
    .action(
      action(
        async (
          cmd,
          ref: string,
          words: string[],
          opts: { root?: boolean; timeout: number; stdin?: boolean },
        ) => {
          if (!words.length)
            throw new CliError('give a command after --, e.g. rig exec my-ws -- uname -a')
          const api = apiClient()
          const { id } = await resolveWorkspace(api, ref)
          let stdin: string | undefined
          if (opts.stdin) {
            const chunks: Buffer[] = []
            for await (const c of process.stdin) chunks.push(c as Buffer)
            stdin = Buffer.concat(chunks).toString('utf8')
          }
          const res = unwrap(
            await api.POST('/api/v1/workspaces/{id}/exec', {
              params: { path: { id } },
              body: {
                command: words.join(' '),
                user: opts.root ? 'root' : 'developer',
                timeout_ms: opts.timeout,
                stdin,
              },
            }),
          )
          if (wantsJson(cmd)) process.stdout.write(`${JSON.stringify(res)}\n`)
          else {
            process.stdout.write(res.stdout)
            process.stderr.write(res.stderr)
            if (res.timed_out)
              process.stderr.write(`rig: command timed out after ${opts.timeout} ms\n`)
          }
          process.exitCode = res.exit_code
        },
      ),
    )
