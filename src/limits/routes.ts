import { z } from 'zod'
import type { CreditStore } from '../ai/credits.ts'
import { aiCredits, toAiCredits } from '../ai/schemas.ts'
import { defineRoute } from '../http/route.ts'
import type { WorkspaceStore } from '../workspaces/store.ts'
import { limitsFor, usageOf } from './service.ts'

const limitsSchema = z.object({
  max_vms: z.number().int(),
  max_ram_per_vm_mb: z.number().int(),
  max_ram_total_mb: z.number().int(),
  max_disk_total_mb: z.number().int(),
  max_vcpu_per_vm: z.number().int(),
  max_running_vcpus: z.number().int(),
  max_disk_per_vm_mb: z.number().int(),
  max_apps: z.number().int(),
  max_snapshots_per_workspace: z.number().int(),
  max_ssh_keys: z.number().int(),
  ai_credits_monthly: z.number().int().describe('AI credits a month (1 credit ≈ $0.01)'),
})

const capacitySchema = z
  .object({
    total: z.number().int().describe('workspaces of the default size the node can run at once'),
    used: z.number().int(),
    available: z.number().int(),
    ram_mb: z.object({ total: z.number().int(), used: z.number().int() }),
    vcpus: z.object({ total: z.number().int(), used: z.number().int() }),
  })
  .meta({ id: 'Capacity' })

export function limitsRoutes(
  store: WorkspaceStore,
  capacity: { ramMb: number; vcpus: number },
  credits: CreditStore,
) {
  return [
    defineRoute({
      method: 'GET',
      path: '/users/me/limits',
      summary: 'Your plan limits and current usage',
      tag: 'account',
      auth: 'user',
      rateClass: 'auth',
      response: z
        .object({
          plan: z.string(),
          custom: z.boolean(),
          limits: limitsSchema,
          usage: z.object({
            workspace_count: z.number().int(),
            running_vcpus: z.number().int(),
            total_disk_mb: z.number().int(),
            total_ram_mb: z.number().int(),
          }),
          credits: aiCredits,
        })
        .meta({ id: 'GetUserLimitsResponse' }),
      handler: async ({ user }) => ({
        plan: user.plan,
        custom: false,
        limits: limitsFor(user),
        usage: usageOf(await store.listByUser(user.id)),
        credits: toAiCredits(await credits.balance(user.id)),
      }),
    }),
    defineRoute({
      method: 'GET',
      path: '/capacity',
      // Not public: the node's size and load tell an outsider how (and when) to exhaust it.
      summary: 'Free capacity of this deployment',
      tag: 'system',
      auth: 'user',
      rateClass: 'workspaces',
      response: capacitySchema,
      handler: async () => {
        const rows = (await store.listAll()).filter((w) =>
          ['starting', 'running', 'paused'].includes(w.status),
        )
        const ramUsed = rows.reduce((n, w) => n + w.ram_mb, 0)
        const vcpuUsed = rows.reduce((n, w) => n + w.vcpu_count, 0)
        // Counted in default-size workspaces (512 MiB, 1 vCPU) so the number means something.
        const total = Math.min(Math.floor(capacity.ramMb / 512), capacity.vcpus)
        const free = Math.min(
          Math.floor((capacity.ramMb - ramUsed) / 512),
          capacity.vcpus - vcpuUsed,
        )
        return {
          total,
          used: rows.length,
          available: Math.max(0, free),
          ram_mb: { total: capacity.ramMb, used: ramUsed },
          vcpus: { total: capacity.vcpus, used: vcpuUsed },
        }
      },
    }),
  ]
}
