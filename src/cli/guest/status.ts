/** `rig status`: this workspace, its owner's plan, AI mode, credits and recent usage. */
import type { Command } from 'commander'
import { bridge, out, run } from './bridge.ts'

/** What the bridge's `/rig/v1/status` answers (src/bridge/server.ts). */
export interface GuestStatus {
  workspace: { id: string; name: string }
  user: { email: string; plan: string }
  ai: {
    mode: string
    status: string
    credits: { remaining: number; total: number; renews_at: string | null }
    usage_24h: {
      total_requests: number
      input_tokens: number
      output_tokens: number
      total_credits: number
    }
  }
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 2 })

export function registerStatus(program: Command) {
  program
    .command('status')
    .description('this workspace, plan, AI mode, credits and the last 24 h of AI usage')
    .action(
      run(async (cmd) => {
        const s = await bridge<GuestStatus>('GET', '/rig/v1/status')
        const { credits, usage_24h: u } = s.ai
        out(cmd, s, () =>
          [
            `workspace  ${s.workspace.name} (${s.workspace.id})`,
            `owner      ${s.user.email}, plan ${s.user.plan}`,
            `AI mode    ${s.ai.mode} (${s.ai.status})`,
            `credits    ${fmt(credits.remaining)} of ${fmt(credits.total)} left` +
              (credits.renews_at ? `, renews ${credits.renews_at.slice(0, 10)}` : ''),
            `last 24 h  ${fmt(u.total_requests)} requests, ${fmt(u.input_tokens)} tokens in, ` +
              `${fmt(u.output_tokens)} out, ${fmt(u.total_credits)} credits`,
          ].join('\n'),
        )
      }),
    )
}
