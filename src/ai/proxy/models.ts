/**
 * What managed calls may use and what they cost (docs/ai.md, "Models and prices"): the upstream's
 * model list (OpenRouter's shape: `pricing.prompt|completion` in USD per token, `context_length`,
 * `top_provider.max_completion_tokens`), kept for `modelsTtlMs` and refreshed behind the callers'
 * backs (an unreachable upstream keeps the last good list), merged with the optional price file,
 * plus the aliases rigbox/default|fast|free. A model without a known price is not offered: a
 * managed call must always be chargeable.
 */
import fs from 'node:fs'
import type { Logger } from 'pino'
import { z } from 'zod'
import type { Config } from '../../config/config.ts'
import { MICRO_PER_USD } from '../types.ts'
import { modelNotFound } from './errors.ts'
import { readBody, requestUpstream, type Timeouts } from './upstream.ts'

export interface ModelInfo {
  id: string
  /** Micro-credits per token (fractions allowed; a call's total is rounded up). */
  prompt: number
  completion: number
  contextLength: number | null
  maxCompletionTokens: number | null
  created: number
  ownedBy: string
}

/** A model a call resolved to: `upstreamId` is what the upstream is asked for. */
export interface Resolved {
  upstreamId: string
  info: ModelInfo
}

const ALIASES = ['default', 'fast', 'free'] as const

/** Drops binary floating-point dust (5e-6 × 1e8 = 500.00000000000006), which ceil would charge. */
const tidy = (micro: number) => Math.round(micro * 1e9) / 1e9

const usd = z
  .union([z.number(), z.string().regex(/^\d+(\.\d+)?([eE]-?\d+)?$/)])
  .transform(Number)
  .pipe(z.number().nonnegative().finite())
const count = z.number().int().positive()
const filePrice = z
  .object({
    prompt: usd.optional(),
    completion: usd.optional(),
    prompt_per_million: usd.optional(),
    completion_per_million: usd.optional(),
    context_length: count.optional(),
    max_completion_tokens: count.optional(),
  })
  .strict()
  .refine((p) => (p.prompt === undefined) !== (p.prompt_per_million === undefined), {
    message: 'give exactly one of prompt (USD per token) and prompt_per_million',
  })
  .refine((p) => p.completion === undefined || p.completion_per_million === undefined, {
    message: 'give at most one of completion and completion_per_million',
  })
/** The price file (RIGBOX_AI_PRICE_FILE): `{"models": {"<model id>": {...}}}`, documented in docs/ai.md. */
export const priceFileSchema = z.object({ models: z.record(z.string().min(1), filePrice) }).strict()

/** Reads and checks the price file once, at start; a bad file stops the server with the reason. */
export function loadPriceFile(file: string | null): Map<string, ModelInfo> {
  const out = new Map<string, ModelInfo>()
  if (!file) return out
  let raw: unknown
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (err) {
    throw new Error(`invalid AI price file ${file}: ${(err as Error).message}`)
  }
  const parsed = priceFileSchema.safeParse(raw)
  if (!parsed.success) {
    throw new Error(`invalid AI price file ${file}: ${z.prettifyError(parsed.error)}`)
  }
  for (const [id, p] of Object.entries(parsed.data.models)) {
    const perToken = (u?: number, m?: number) =>
      tidy(u !== undefined ? u * MICRO_PER_USD : ((m ?? 0) * MICRO_PER_USD) / 1e6)
    out.set(id, {
      id,
      prompt: perToken(p.prompt, p.prompt_per_million),
      completion: perToken(p.completion, p.completion_per_million),
      contextLength: p.context_length ?? null,
      maxCompletionTokens: p.max_completion_tokens ?? null,
      created: 0,
      ownedBy: 'rigbox',
    })
  }
  return out
}

type UpstreamEntry = {
  id?: unknown
  created?: unknown
  owned_by?: unknown
  context_length?: unknown
  pricing?: { prompt?: unknown; completion?: unknown }
  top_provider?: { max_completion_tokens?: unknown }
}

const price = (v: unknown): number | null => {
  const n = typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN
  return Number.isFinite(n) && n >= 0 ? tidy(n * MICRO_PER_USD) : null
}
const positive = (v: unknown): number | null => (typeof v === 'number' && v > 0 ? v : null)

/** The priced entries of an upstream's model list. */
export function parseModelList(body: unknown): Map<string, ModelInfo> {
  const out = new Map<string, ModelInfo>()
  const data = (body as { data?: unknown })?.data
  for (const m of Array.isArray(data) ? (data as UpstreamEntry[]) : []) {
    if (typeof m?.id !== 'string') continue
    const prompt = price(m.pricing?.prompt)
    const completion = price(m.pricing?.completion ?? 0)
    if (prompt === null || completion === null) continue
    out.set(m.id, {
      id: m.id,
      prompt,
      completion,
      contextLength: positive(m.context_length),
      maxCompletionTokens: positive(m.top_provider?.max_completion_tokens),
      created: typeof m.created === 'number' ? m.created : 0,
      ownedBy: typeof m.owned_by === 'string' ? m.owned_by : (m.id.split('/')[0] ?? 'upstream'),
    })
  }
  return out
}

/** How long a failed fetch is not retried (calls meanwhile use what is known). */
const RETRY_MS = 5_000

export class ModelCatalog {
  private models: Map<string, ModelInfo>
  private fetchedAt = 0
  private retryAt = 0
  private refreshing: Promise<void> | null = null

  constructor(
    private readonly ai: Pick<Config['ai'], 'upstream' | 'aliases' | 'modelsTtlMs'>,
    private readonly prices: Map<string, ModelInfo>,
    private readonly timeouts: Timeouts,
    private readonly log?: Logger,
  ) {
    this.models = new Map(prices)
  }

  /** The known models, aliases first; waits only for the very first fetch. */
  async list(): Promise<ModelInfo[]> {
    const models = await this.current()
    const aliases = ALIASES.flatMap((a) => {
      const r = this.alias(models, a)
      return r ? [{ ...r.info, id: `rigbox/${a}`, ownedBy: 'rigbox' }] : []
    })
    return [...aliases, ...models.values()]
  }

  /** The model a request names, or null when it is unknown (a misconfigured alias throws). */
  async find(id: string): Promise<Resolved | null> {
    const models = await this.current()
    const alias = /^rigbox\/(default|fast|free)$/.exec(id)?.[1] as (typeof ALIASES)[number]
    if (alias) {
      const r = this.alias(models, alias)
      if (r) return r
      const target = this.ai.aliases[alias]
      throw modelNotFound(
        id,
        target
          ? `points at ${target}, which has no known price`
          : `is not configured on this server (RIGBOX_AI_MODEL_${alias.toUpperCase()})`,
      )
    }
    const info = models.get(id)
    return info ? { upstreamId: id, info } : null
  }

  /** Starts the first fetch early, so the first call need not wait for it. */
  warm(): void {
    if (this.ai.upstream) void this.refresh()
  }

  private alias(models: Map<string, ModelInfo>, alias: (typeof ALIASES)[number]): Resolved | null {
    const target = this.ai.aliases[alias]
    const info = target ? models.get(target) : undefined
    if (!target || !info) return null
    // rigbox/free costs nothing, whatever the model behind it.
    return {
      upstreamId: target,
      info: alias === 'free' ? { ...info, prompt: 0, completion: 0 } : info,
    }
  }

  private async current(): Promise<Map<string, ModelInfo>> {
    if (!this.ai.upstream) return this.models
    const now = Date.now()
    if (this.fetchedAt === 0 && now >= this.retryAt) await this.refresh()
    else if (now - this.fetchedAt > this.ai.modelsTtlMs && now >= this.retryAt) void this.refresh()
    return this.models
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.fetch().finally(() => (this.refreshing = null))
    return this.refreshing
  }

  private async fetch(): Promise<void> {
    const upstream = this.ai.upstream!
    try {
      const res = await requestUpstream({
        method: 'GET',
        url: `${upstream.url}/models`,
        auth: upstream.key ? { authorization: `Bearer ${upstream.key}` } : {},
        incoming: {},
        signal: AbortSignal.timeout(this.timeouts.firstByteMs),
        timeouts: this.timeouts,
      })
      const body = await readBody(res, 32 * 2 ** 20, this.timeouts.idleMs)
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
      const listed = parseModelList(JSON.parse(body.toString()))
      // The price file wins: it corrects or adds to what the upstream says.
      for (const [id, p] of this.prices) {
        const u = listed.get(id)
        listed.set(
          id,
          u
            ? {
                ...u,
                prompt: p.prompt,
                completion: p.completion,
                contextLength: p.contextLength ?? u.contextLength,
                maxCompletionTokens: p.maxCompletionTokens ?? u.maxCompletionTokens,
              }
            : p,
        )
      }
      this.models = listed
      this.fetchedAt = Date.now()
    } catch (err) {
      this.retryAt = Date.now() + RETRY_MS
      this.log?.warn({ err: (err as Error).message }, 'AI proxy: model list fetch failed')
    }
  }
}

/** The list as both SDKs read it: OpenAI's `{object, data[]}` and Anthropic's paging fields. */
export function modelListBody(models: ModelInfo[]): object {
  const usdPerToken = (micro: number) => String(micro / MICRO_PER_USD)
  return {
    object: 'list',
    data: models.map((m) => ({
      id: m.id,
      object: 'model',
      type: 'model',
      display_name: m.id,
      created: m.created,
      created_at: new Date(m.created * 1000).toISOString(),
      owned_by: m.ownedBy,
      context_length: m.contextLength,
      max_completion_tokens: m.maxCompletionTokens,
      pricing: { prompt: usdPerToken(m.prompt), completion: usdPerToken(m.completion) },
    })),
    has_more: false,
    first_id: models[0]?.id ?? null,
    last_id: models.at(-1)?.id ?? null,
  }
}
