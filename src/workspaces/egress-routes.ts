import { z } from 'zod'
import { validatePolicy } from '../egress/policy.ts'
import { ApiError } from '../http/errors.ts'
import { defineRoute } from '../http/route.ts'
import { workspaceIdParams } from './schemas.ts'
import type { WorkspaceService } from './service.ts'

const policySchema = z
  .object({
    allow: z
      .array(z.string())
      .describe('hosts, *.domains, IPs or CIDRs (optionally :port) let through'),
    deny: z.array(z.string()).describe('always refused, before anything else'),
  })
  .meta({ id: 'EgressPolicy' })

/** The workspace's outbound policy (ours): what its egress proxy lets through. */
export function egressRoutes(ws: WorkspaceService) {
  return [
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id/egress',
      summary: "The workspace's egress policy",
      tag: 'workspaces',
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      response: policySchema,
      handler: async ({ user, params }) =>
        JSON.parse((await ws.get(user, params.id)).egress_policy) as z.infer<typeof policySchema>,
    }),
    defineRoute({
      method: 'PUT',
      path: '/workspaces/:id/egress',
      summary:
        'Set the egress policy: deny wins, then allow; private addresses open only when allowed explicitly',
      tag: 'workspaces',
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      body: policySchema,
      response: policySchema,
      handler: async ({ user, params, body }) => {
        const checked = validatePolicy(body)
        if (!checked.ok) {
          throw new ApiError(
            'VALIDATION_ERROR',
            `invalid egress policy: ${checked.errors.join('; ')}`,
            checked.errors,
          )
        }
        const row = await ws.setEgress(user, params.id, checked.policy)
        return JSON.parse(row.egress_policy) as z.infer<typeof policySchema>
      },
    }),
  ]
}
