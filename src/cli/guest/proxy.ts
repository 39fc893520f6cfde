/**
 * `rig proxy on|off|status`: the managed AI proxy's variables for the current shell. A program
 * cannot change its parent shell's environment, so `on` and `off` print what to evaluate:
 * `eval "$(rig proxy on)"`. Login shells of a managed workspace have them already.
 */
import type { Command } from 'commander'
import { MANAGED_AI_ENV } from '../../ai/vm-env.ts'
import { bridge, out, run } from './bridge.ts'
import type { GuestStatus } from './status.ts'

const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`

function hint(line: string) {
  if (process.stdout.isTTY) process.stderr.write(`# to apply in this shell: ${line}\n`)
}

export function registerProxy(program: Command) {
  const proxy = program
    .command('proxy')
    .description('point AI SDKs in this shell at the managed proxy (eval "$(rig proxy on)")')
  proxy
    .command('on')
    .description('print the exports that point OpenAI, OpenRouter and Anthropic SDKs at the proxy')
    .action(
      run(async () => {
        const lines = Object.entries(MANAGED_AI_ENV).map(([k, v]) => `export ${k}=${quote(v)}`)
        process.stdout.write(`${lines.join('\n')}\n`)
        hint('eval "$(rig proxy on)"')
      }),
    )
  proxy
    .command('off')
    .description('print the unsets that take those variables away again')
    .action(
      run(async () => {
        process.stdout.write(`unset ${Object.keys(MANAGED_AI_ENV).join(' ')}\n`)
        hint('eval "$(rig proxy off)"')
      }),
    )
  proxy
    .command('status')
    .description("whether this shell uses the proxy, and the workspace's AI mode")
    .action(
      run(async (cmd) => {
        const set = Object.entries(MANAGED_AI_ENV).filter(([k, v]) => process.env[k] === v)
        const shell =
          set.length === Object.keys(MANAGED_AI_ENV).length
            ? 'on'
            : set.length
              ? 'partly on'
              : 'off'
        const { ai } = await bridge<GuestStatus>('GET', '/rig/v1/status')
        out(cmd, { shell, mode: ai.mode, status: ai.status }, () =>
          [
            `this shell: ${shell}${shell === 'on' ? '' : ' (eval "$(rig proxy on)")'}`,
            `workspace AI mode: ${ai.mode} (${ai.status})`,
          ].join('\n'),
        )
      }),
    )
}
