/**
 * Where a call goes and how (docs/ai.md, "The proxy"): managed OpenAI-shaped calls to the
 * configured gateway with its key, managed `/v1/messages` to the Anthropic-compatible upstream,
 * BYOK calls to the workspace's provider with the workspace's own key. The VM's own credentials
 * (the `managed-by-rigbox` placeholders, or anything else) are never passed on: `auth` replaces them.
 */
import type { Config } from '../../config/config.ts'
import { ApiError } from '../../http/errors.ts'
import type { CallSettings } from '../types.ts'
import { modelNotFound } from './errors.ts'
import { estimateInput, type Endpoint } from './meter.ts'
import type { ModelCatalog, ModelInfo } from './models.ts'

export const ANTHROPIC_VERSION = '2023-06-01'

export interface Plan {
  endpoint: Endpoint
  mode: 'managed' | 'byok'
  provider: string
  /** The model as the request named it (an alias stays an alias in the ledger). */
  model: string
  url: string
  auth: Record<string, string>
  /** Headers the client's own override (the Anthropic API version). */
  defaults: Record<string, string>
  /** The request body as it goes upstream (model resolved, usage asked for, max tokens set). */
  body: Record<string, unknown>
  /** Prices of a managed call; null for BYOK (recorded, not charged). */
  priced: ModelInfo | null
  stream: boolean
  /** We asked for the usage chunk, so the client must not see it. */
  hideUsageChunk: boolean
  inputEstimate: number
  /** What must never reach a client or a log: the credential this call uses. */
  secrets: string[]
}

const bearer = (key: string | null): Record<string, string> =>
  key ? { authorization: `Bearer ${key}` } : {}

function requestedModel(body: Record<string, unknown>, settings: CallSettings): string {
  const model = body.model ?? settings.model ?? 'rigbox/default'
  if (typeof model !== 'string' || !model) {
    throw new ApiError('VALIDATION_ERROR', '`model` must be a non-empty string')
  }
  return model
}

const vendorOf = (id: string, fallback: string) => (id.includes('/') ? id.split('/')[0] : fallback)

export async function planManaged(
  ai: Config['ai'],
  catalog: ModelCatalog,
  endpoint: Endpoint,
  settings: CallSettings,
  body: Record<string, unknown>,
): Promise<Plan> {
  const model = requestedModel(body, settings)
  const stream = body.stream === true
  if (endpoint === 'messages') {
    if (!ai.anthropic) {
      throw new ApiError(
        'AI_NOT_CONFIGURED',
        'no Anthropic-compatible AI upstream is configured on this server: the operator sets ' +
          'RIGBOX_AI_ANTHROPIC_URL (and RIGBOX_AI_ANTHROPIC_KEY); /v1/chat/completions may work',
      )
    }
    // A direct Anthropic id (claude-…) is priced by the gateway's anthropic/… entry.
    const found = (await catalog.find(model)) ?? (await catalog.find(`anthropic/${model}`))
    if (!found) throw modelNotFound(model)
    const upstreamId = model.startsWith('rigbox/') ? found.upstreamId : model
    const key = ai.anthropic.key
    return {
      endpoint,
      mode: 'managed',
      provider: 'anthropic',
      model,
      url: `${ai.anthropic.url}/v1/messages`,
      // Anthropic's API takes x-api-key, Anthropic-compatible gateways (OpenRouter) a bearer token.
      auth: key ? { 'x-api-key': key, ...bearer(key) } : {},
      defaults: { 'anthropic-version': ANTHROPIC_VERSION },
      body: { ...body, model: upstreamId },
      priced: found.info,
      stream,
      hideUsageChunk: false,
      inputEstimate: estimateInput(endpoint, body),
      secrets: key ? [key] : [],
    }
  }
  if (!ai.upstream) {
    throw new ApiError(
      'AI_NOT_CONFIGURED',
      'no AI upstream is configured on this server: the operator sets RIGBOX_AI_UPSTREAM_URL ' +
        '(an OpenAI-compatible base URL ending in /v1) and RIGBOX_AI_UPSTREAM_KEY',
    )
  }
  const found = await catalog.find(model)
  if (!found) throw modelNotFound(model)
  const out: Record<string, unknown> = { ...body, model: found.upstreamId }
  const options = body.stream_options as { include_usage?: unknown } | undefined
  const hideUsageChunk = stream && options?.include_usage !== true
  if (hideUsageChunk) out.stream_options = { ...options, include_usage: true }
  return {
    endpoint,
    mode: 'managed',
    provider: vendorOf(found.upstreamId, 'upstream'),
    model,
    url: `${ai.upstream.url}/${endpoint === 'embeddings' ? 'embeddings' : 'chat/completions'}`,
    auth: bearer(ai.upstream.key),
    defaults: {},
    body: out,
    priced: found.info,
    stream,
    hideUsageChunk,
    inputEstimate: estimateInput(endpoint, body),
    secrets: ai.upstream.key ? [ai.upstream.key] : [],
  }
}

/** The workspace's own provider and key; a call in the other provider's shape is a clear 400. */
export function planByok(
  ai: Config['ai'],
  endpoint: Endpoint,
  settings: CallSettings,
  body: Record<string, unknown>,
): Plan {
  const provider = settings.provider
  const key = settings.apiKey
  if (!provider || !key) {
    throw new ApiError(
      'AI_DISABLED',
      'this workspace brings its own key (BYOK) but has none set: set it with ' +
        '`rig ai config <workspace> --byok <provider>` or PUT /api/v1/workspaces/{id}/ai-config',
    )
  }
  const anthropic = endpoint === 'messages'
  if (anthropic !== (provider === 'anthropic')) {
    throw new ApiError(
      'BAD_REQUEST',
      anthropic
        ? `this workspace uses its own ${provider} key (BYOK), which does not serve /v1/messages: ` +
            'call /v1/chat/completions, or set the workspace to an anthropic key'
        : `this workspace uses its own anthropic key (BYOK), which serves /v1/messages only: ` +
            'call /v1/messages, or set the workspace to an openai or google key',
    )
  }
  const model = requestedModel(body, settings)
  const base = ai.byokUrls[provider]
  return {
    endpoint,
    mode: 'byok',
    provider,
    model,
    url: anthropic
      ? `${base}/v1/messages`
      : `${base}/${endpoint === 'embeddings' ? 'embeddings' : 'chat/completions'}`,
    auth: anthropic ? { 'x-api-key': key } : { authorization: `Bearer ${key}` },
    defaults: anthropic ? { 'anthropic-version': ANTHROPIC_VERSION } : {},
    body: { ...body, model },
    priced: null,
    stream: body.stream === true,
    hideUsageChunk: false,
    inputEstimate: estimateInput(endpoint, body),
    secrets: [key],
  }
}

/** GET /v1/models of a BYOK workspace goes to its provider, with its key. */
export function byokModelsTarget(
  ai: Config['ai'],
  settings: CallSettings,
): {
  url: string
  auth: Record<string, string>
  defaults: Record<string, string>
  secrets: string[]
} | null {
  const { provider, apiKey: key } = settings
  if (!provider || !key) return null
  return provider === 'anthropic'
    ? {
        url: `${ai.byokUrls.anthropic}/v1/models`,
        auth: { 'x-api-key': key },
        defaults: { 'anthropic-version': ANTHROPIC_VERSION },
        secrets: [key],
      }
    : {
        url: `${ai.byokUrls[provider]}/models`,
        auth: { authorization: `Bearer ${key}` },
        defaults: {},
        secrets: [key],
      }
}
