import { z } from 'zod'
import type { AuthStore } from '../auth/store.ts'
import { ApiError } from '../http/errors.ts'
import { defineRoute } from '../http/route.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { CreditStore } from './credits.ts'
import {
  aiCredits,
  aiDefaults,
  aiMetrics,
  aiMetricsSummary,
  aiUsage,
  grantRequest,
  rangeQuery,
  toAiCredits,
  updateAiDefaultsRequest,
  updateAiModeRequest,
  updateWorkspaceAiConfigRequest,
  updateWorkspaceAiModeRequest,
  userIdParams,
  workspaceAiConfig,
  workspaceAiMode,
  workspaceIdParams,
} from './schemas.ts'
import type { SettingsStore } from './settings.ts'
import { type Range, type Scope, type UsageStore } from './usage.ts'
import { MICRO_PER_CREDIT } from './types.ts'

export interface AiRouteDeps {
  credits: CreditStore
  usage: UsageStore
  settings: SettingsStore
  workspaces: WorkspaceService
  auth: AuthStore
}

/** The window of GET /users/me/ai-usage. */
export const USAGE_WINDOW_DAYS = 30

const account = { tag: 'ai', auth: 'user', rateClass: 'auth' } as const
const workspace = { tag: 'ai', auth: 'user', rateClass: 'workspaces' } as const

export function aiRoutes(d: AiRouteDeps) {
  const metrics = async (scope: Scope, range: Range, workspaceId: string | null) => ({
    range,
    workspace_id: workspaceId,
    ...(await d.usage.metrics(scope, range)),
  })
  const summary = async (scope: Scope, range: Range, workspaceId: string | null) => {
    const t = await d.usage.summary(scope, range)
    return {
      range,
      workspace_id: workspaceId,
      total_credits: t.credits_micro / MICRO_PER_CREDIT,
      total_credits_micro: t.credits_micro,
      total_requests: t.requests,
      input_tokens: t.input_tokens,
      output_tokens: t.output_tokens,
    }
  }
  /** The caller's own workspace, else 404 (another user's is simply not found). */
  const owned = async (user: Parameters<WorkspaceService['get']>[0], id: string) =>
    (await d.workspaces.get(user, id)).id

  return [
    defineRoute({
      ...account,
      method: 'GET',
      path: '/users/me/credits',
      summary: 'Your AI credit balance this period',
      response: aiCredits,
      handler: async ({ user }) => toAiCredits(await d.credits.balance(user.id)),
    }),
    defineRoute({
      ...account,
      method: 'PUT',
      path: '/users/me/ai-mode',
      summary: 'Set your account-level AI mode (workspaces without their own mode follow it)',
      body: updateAiModeRequest,
      response: aiCredits,
      handler: async ({ user, body }) => {
        await d.settings.updateDefaults(user.id, { default_mode: body.mode })
        return toAiCredits(await d.credits.balance(user.id))
      },
    }),
    defineRoute({
      ...account,
      method: 'GET',
      path: '/users/me/ai-defaults',
      summary: 'Your account-level AI defaults',
      response: aiDefaults,
      handler: async ({ user }) => d.settings.defaults(user.id),
    }),
    defineRoute({
      ...account,
      method: 'PUT',
      path: '/users/me/ai-defaults',
      summary: 'Update your AI defaults (null: back to the built-in default; omitted: kept)',
      body: updateAiDefaultsRequest,
      response: aiDefaults,
      handler: async ({ user, body }) => d.settings.updateDefaults(user.id, body),
    }),
    defineRoute({
      ...account,
      method: 'GET',
      path: '/users/me/ai-usage',
      summary: `Your AI usage of the last ${USAGE_WINDOW_DAYS} days: per day and per workspace`,
      response: aiUsage,
      handler: async ({ user }) => ({
        window_days: USAGE_WINDOW_DAYS,
        daily: await d.usage.daily(user.id, USAGE_WINDOW_DAYS),
        by_workspace: await d.usage.byWorkspace(user.id, USAGE_WINDOW_DAYS),
      }),
    }),
    defineRoute({
      ...account,
      method: 'GET',
      path: '/users/me/ai-usage/metrics',
      summary: 'Your AI usage as series (credits, requests, tokens) over a range',
      querystring: rangeQuery,
      response: aiMetrics,
      handler: async ({ user, query }) => metrics({ userId: user.id }, query.range, null),
    }),
    defineRoute({
      ...account,
      method: 'GET',
      path: '/users/me/ai-usage/metrics/summary',
      summary: 'Your AI usage totals over a range',
      querystring: rangeQuery,
      response: aiMetricsSummary,
      handler: async ({ user, query }) => summary({ userId: user.id }, query.range, null),
    }),
    defineRoute({
      ...workspace,
      method: 'GET',
      path: '/workspaces/:id/ai-config',
      summary: 'A workspace’s effective AI configuration (never its API key)',
      params: workspaceIdParams,
      response: workspaceAiConfig,
      handler: async ({ user, params }) => d.settings.config(await owned(user, params.id)),
    }),
    defineRoute({
      ...workspace,
      method: 'PUT',
      path: '/workspaces/:id/ai-config',
      summary:
        'Update a workspace’s AI configuration: omitted fields kept, null clears, BYOK key write-only',
      params: workspaceIdParams,
      body: updateWorkspaceAiConfigRequest,
      response: workspaceAiConfig,
      handler: async ({ user, params, body }) =>
        d.settings.updateConfig(await owned(user, params.id), body),
    }),
    defineRoute({
      ...workspace,
      method: 'GET',
      path: '/workspaces/:id/mode',
      summary: 'A workspace’s effective AI mode and where it comes from',
      params: workspaceIdParams,
      response: workspaceAiMode,
      handler: async ({ user, params }) => d.settings.mode(await owned(user, params.id)),
    }),
    defineRoute({
      ...workspace,
      method: 'PUT',
      path: '/workspaces/:id/mode',
      summary: 'Set or clear (null) a workspace’s own AI mode; it applies to the next call',
      params: workspaceIdParams,
      body: updateWorkspaceAiModeRequest,
      response: workspaceAiMode,
      handler: async ({ user, params, body }) => {
        const id = await owned(user, params.id)
        if (body.mode !== undefined) await d.settings.updateConfig(id, { mode: body.mode })
        return d.settings.mode(id)
      },
    }),
    defineRoute({
      ...workspace,
      method: 'GET',
      path: '/workspaces/:id/ai-usage/metrics',
      summary: 'A workspace’s AI usage as series over a range',
      params: workspaceIdParams,
      querystring: rangeQuery,
      response: aiMetrics,
      handler: async ({ user, params, query }) => {
        const id = await owned(user, params.id)
        return metrics({ workspaceId: id }, query.range, id)
      },
    }),
    defineRoute({
      ...workspace,
      method: 'GET',
      path: '/workspaces/:id/ai-usage/metrics/summary',
      summary: 'A workspace’s AI usage totals over a range',
      params: workspaceIdParams,
      querystring: rangeQuery,
      response: aiMetricsSummary,
      handler: async ({ user, params, query }) => {
        const id = await owned(user, params.id)
        return summary({ workspaceId: id }, query.range, id)
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/admin/users/:id/credits',
      summary: 'Grant a user AI credits, kept across periods until spent (administrators only)',
      tag: 'admin',
      auth: 'admin',
      rateClass: 'auth',
      v1Only: true,
      params: userIdParams,
      body: grantRequest,
      response: aiCredits.extend({ user_id: z.string() }).meta({ id: 'GrantCreditsResponse' }),
      handler: async ({ params, body }) => {
        if (!(await d.auth.findUserById(params.id))) {
          throw new ApiError('NOT_FOUND', `user ${params.id} not found`)
        }
        const micro = Math.round(body.credits * MICRO_PER_CREDIT)
        if (micro < 1) throw new ApiError('VALIDATION_ERROR', 'credits must be at least 0.000001')
        return { user_id: params.id, ...toAiCredits(await d.credits.grant(params.id, micro)) }
      },
    }),
  ]
}
