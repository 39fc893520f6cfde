import { z } from 'zod'
import { workspaceIdParams } from '../workspaces/schemas.ts'
import { balanceOf, toCredits, type Balance } from './credits.ts'
import { ranges } from './usage.ts'

/** The reference's AI shapes (component names as the reference's), and our few additions. */

const micro = z.number().int()
const credits = z.number()

export const aiMode = z.enum(['managed', 'byok', 'off'])
export const aiProvider = z.enum(['google', 'openai', 'anthropic']).meta({ id: 'OpenClawProvider' })
/** A model id as an upstream lists it (`openai/gpt-4o-mini`) or an alias (`rigbox/default`). */
const modelId = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
/** A provider API key: printable ASCII, as every provider's keys are (it goes into env and headers). */
const apiKey = z
  .string()
  .trim()
  .min(8)
  .max(1024)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')

export const aiCredits = z
  .object({
    mode: z.string().describe('Your account-level AI mode: managed, byok or off'),
    remaining: credits,
    total: credits,
    remaining_micro: micro,
    total_micro: micro,
    used: credits,
    used_micro: micro,
    reserved_micro: micro.describe('held by calls in flight'),
    allowance_micro: micro.describe("this period's plan allowance"),
    granted_micro: micro.describe('granted by an administrator; carried over until spent'),
    period_start: z.string(),
    renews_at: z.string().describe('when the monthly allowance renews'),
  })
  .meta({ id: 'AiCredits', description: '1 credit = 1,000,000 micro-credits ≈ $0.01' })
export type AiCredits = z.infer<typeof aiCredits>

export function toAiCredits(b: Balance): AiCredits {
  return {
    mode: b.mode,
    remaining: toCredits(b.remaining_micro),
    total: toCredits(b.total_micro),
    remaining_micro: b.remaining_micro,
    total_micro: b.total_micro,
    used: toCredits(b.used_micro),
    used_micro: b.used_micro,
    reserved_micro: b.reserved_micro,
    allowance_micro: b.allowance_micro,
    granted_micro: b.granted_micro,
    period_start: b.period_start,
    renews_at: b.renews_at,
  }
}
export { balanceOf }

export const updateAiModeRequest = z.object({ mode: aiMode }).meta({ id: 'UpdateAiModeRequest' })

export const aiDefaults = z
  .object({ default_mode: aiMode, default_provider: aiProvider, default_model: z.string() })
  .meta({ id: 'GetAiDefaultsResponse' })
export const updateAiDefaultsRequest = z
  .strictObject({
    default_mode: aiMode.nullable().optional(),
    default_provider: aiProvider.nullable().optional(),
    default_model: modelId.nullable().optional(),
  })
  .meta({ id: 'UpdateAiDefaultsRequest', description: 'null: back to the built-in default' })

export const workspaceAiConfig = z
  .object({
    mode: aiMode.describe('effective mode (off is our addition to the reference enum)'),
    provider: aiProvider,
    model: z.string(),
    status: z
      .enum(['managed_active', 'byok_active', 'invalid_missing_key', 'disabled'])
      .describe('disabled (mode off) is our addition to the reference enum'),
    updated_at: z.string(),
  })
  .meta({ id: 'WorkspaceAiConfigResponse', description: 'Never contains the API key.' })
export const updateWorkspaceAiConfigRequest = z
  .strictObject({
    mode: aiMode.nullable().optional(),
    provider: aiProvider.nullable().optional(),
    model: modelId.nullable().optional(),
    api_key: apiKey
      .nullable()
      .optional()
      .describe('write-only; byok only; stored encrypted; null removes it'),
  })
  .meta({
    id: 'UpdateWorkspaceAiConfigRequest',
    description:
      'Omitted fields are kept, null clears one (back to your default); unknown fields are refused.',
  })

export const workspaceAiMode = z
  .object({ mode: aiMode, source: z.enum(['workspace', 'user_default']) })
  .meta({ id: 'WorkspaceAiModeResponse' })
export const updateWorkspaceAiModeRequest = z
  .strictObject({
    mode: aiMode.nullable().optional().describe('null clears the workspace override'),
  })
  .meta({ id: 'UpdateWorkspaceAiModeRequest' })

const usageTotals = {
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  credits,
  credits_micro: micro,
  requests: z.number().int(),
}
export const aiUsage = z
  .object({
    window_days: z.number().int(),
    daily: z.array(z.object({ day: z.string(), ...usageTotals }).meta({ id: 'AiUsageDaily' })),
    by_workspace: z.array(
      z
        .object({ workspace_id: z.string(), workspace_name: z.string(), ...usageTotals })
        .meta({ id: 'AiUsageWorkspaceTotal' }),
    ),
  })
  .meta({ id: 'GetAiUsageResponse' })

export const aiRange = z.enum(ranges).meta({ id: 'AiUsageMetricsRange' })
export const rangeQuery = z.object({
  range: aiRange.default('24h').describe('Metrics range: 1h, 6h, 24h, or 7d'),
})
const points = z.array(
  z
    .object({ t: z.number().int().describe('step start, Unix seconds'), v: z.number() })
    .meta({ id: 'AiMetricPoint' }),
)
export const aiMetrics = z
  .object({
    range: aiRange,
    step_seconds: z.number().int(),
    workspace_id: z.string().nullable(),
    series: z
      .object({ credits: points, requests: points, input_tokens: points, output_tokens: points })
      .meta({ id: 'AiUsageMetricsSeries' }),
  })
  .meta({ id: 'AiUsageMetricsResponse' })
export const aiMetricsSummary = z
  .object({
    range: aiRange,
    workspace_id: z.string().nullable(),
    total_credits: credits,
    total_credits_micro: micro,
    total_requests: z.number().int(),
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
  })
  .meta({ id: 'AiUsageMetricsSummaryResponse' })

export const grantRequest = z
  .object({
    credits: z
      .number()
      .positive()
      .max(1_000_000)
      .describe('credits to add (fractions allowed, down to a micro-credit)'),
  })
  .meta({ id: 'GrantCreditsRequest' })
export const userIdParams = z.object({ id: z.string().min(1).max(64).describe('User ID') })
export { workspaceIdParams }
