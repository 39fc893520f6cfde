/**
 * One proxied call from start to ledger (docs/ai.md, "Metering"): who calls (the VM's channel,
 * nothing else), where it goes (plan.ts), a hold on the credits big enough for the worst case,
 * the relay, then the charge for what it really cost and one ledger row, whatever happened.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../../config/config.ts'
import { ApiError } from '../../http/errors.ts'
import type {
  CallSettings,
  CreditLedger,
  Reservation,
  SettingsSource,
  UsageLedger,
  UsageRecord,
} from '../types.ts'
import { asApiError, type Shape } from './errors.ts'
import { costMicro, type Endpoint, type Usage } from './meter.ts'
import { loadPriceFile, ModelCatalog, modelListBody } from './models.ts'
import { byokModelsTarget, planByok, planManaged, type Plan } from './plan.ts'
import { relay, sendError } from './relay.ts'
import { DEFAULT_TIMEOUTS, readBody, redact, requestUpstream, type Timeouts } from './upstream.ts'

export interface ProxyDeps {
  ai: Config['ai']
  settings: SettingsSource
  credits: CreditLedger
  usage: UsageLedger
  log?: Logger
  timeouts?: Partial<Timeouts>
}

type Booking = Pick<UsageRecord, 'status' | 'httpStatus'> & { usage: Usage }

/** Output tokens allowed when neither the request nor the model's listing says. */
export const DEFAULT_MAX_OUTPUT = 4096

/**
 * Upstream calls in flight per user, at most `max`. Counted per node, on purpose: the cap protects
 * this node's connections and memory from one runaway VM, and needs no shared state; the credit
 * hold is what bounds spending across nodes.
 */
export class ConcurrencyCap {
  private readonly inFlight = new Map<string, number>()
  constructor(private readonly max: number) {}

  acquire(userId: string): void {
    const n = this.inFlight.get(userId) ?? 0
    if (n >= this.max) {
      throw new ApiError(
        'AI_BUSY',
        `too many AI calls at once: at most ${this.max} per user are in flight; retry shortly`,
        undefined,
        { 'retry-after': '1' },
      )
    }
    this.inFlight.set(userId, n + 1)
  }

  release(userId: string): void {
    const n = (this.inFlight.get(userId) ?? 1) - 1
    if (n > 0) this.inFlight.set(userId, n)
    else this.inFlight.delete(userId)
  }
}

function parseBody(raw: unknown): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.isBuffer(raw) ? raw.toString() : '')
  } catch {
    throw new ApiError('INVALID_JSON', 'the request body is not valid JSON')
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError('INVALID_JSON', 'the request body must be a JSON object')
  }
  return value as Record<string, unknown>
}

function maxTokensOf(plan: Plan): number | null {
  const v =
    plan.endpoint === 'messages'
      ? plan.body.max_tokens
      : (plan.body.max_completion_tokens ?? plan.body.max_tokens)
  if (v === undefined || v === null) return null
  if (!Number.isSafeInteger(v) || (v as number) < 1) {
    throw new ApiError('VALIDATION_ERROR', 'max tokens must be a positive integer')
  }
  return v as number
}

export class AiProxy {
  private readonly catalog: ModelCatalog
  private readonly cap: ConcurrencyCap
  private readonly timeouts: Timeouts

  constructor(
    private readonly d: ProxyDeps,
    /** The workspace the request's connection belongs to (the bridge's channel tag). */
    private readonly workspaceOf: (req: FastifyRequest) => string | undefined,
  ) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...d.timeouts }
    const catalogTimeouts = { ...this.timeouts, firstByteMs: 15_000, idleMs: 15_000 }
    this.catalog = new ModelCatalog(d.ai, loadPriceFile(d.ai.priceFile), catalogTimeouts, d.log)
    this.cap = new ConcurrencyCap(d.ai.maxConcurrentPerUser)
    this.catalog.warm()
  }

  private async caller(req: FastifyRequest): Promise<CallSettings> {
    const id = this.workspaceOf(req)
    const settings = id ? await this.d.settings.forCall(id) : null
    if (!settings)
      throw new ApiError('UNAUTHORIZED', 'this connection does not come from a workspace')
    return settings
  }

  private static refuseWhenOff(settings: CallSettings): void {
    if (settings.mode !== 'off') return
    throw new ApiError(
      'AI_DISABLED',
      'AI is off for this workspace: its owner turns it on with PUT /api/v1/workspaces/{id}/ai-config ' +
        '(mode managed or byok)',
    )
  }

  async call(endpoint: Endpoint, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const started = performance.now()
    const shape: Shape = endpoint === 'messages' ? 'anthropic' : 'openai'
    let settings: CallSettings | null = null
    let plan: Plan | null = null
    let reservation: Reservation | null = null
    let holding = false
    let relaying = false
    try {
      settings = await this.caller(req)
      // After `settings` is known, so that the refusal is a ledger row too.
      AiProxy.refuseWhenOff(settings)
      const body = parseBody(req.body)
      plan =
        settings.mode === 'byok'
          ? planByok(this.d.ai, endpoint, settings, body)
          : await planManaged(this.d.ai, this.catalog, endpoint, settings, body)
      this.cap.acquire(settings.userId)
      holding = true
      reservation = plan.priced ? await this.hold(settings, plan) : null
      relaying = true
      const outcome = await relay(plan, req, reply, this.timeouts, this.d.log)
      this.cap.release(settings.userId)
      holding = false
      const cost = plan.priced
        ? Math.min(costMicro(plan.priced, outcome.usage), reservation?.micro ?? 0)
        : 0
      await this.book(settings, plan, endpoint, outcome, cost, reservation, started)
    } catch (err) {
      const e = asApiError(err)
      if (holding && settings) this.cap.release(settings.userId)
      sendError(reply, shape, e)
      if (settings) {
        const status = relaying ? 'error' : 'refused'
        const booking = {
          status,
          httpStatus: e.statusCode,
          usage: { input: 0, output: 0 },
        } as const
        await this.book(settings, plan, endpoint, booking, 0, reservation, started)
      }
    }
  }

  /**
   * Holds the most the call can cost: the prompt (estimated) at the prompt price plus every
   * output token allowed at the completion price. A request that sets no limit gets one: the
   * model's own (else DEFAULT_MAX_OUTPUT), or, when the balance cannot hold that, what the balance
   * covers, so no call can spend what the user lacks. The full hold is tried first: one query
   * fewer on the way of a user who has the credits.
   */
  private async hold(settings: CallSettings, plan: Plan): Promise<Reservation | null> {
    const model = plan.priced!
    const inputMicro = plan.inputEstimate * model.prompt
    // `n` choices may each use every output token allowed.
    const n = plan.body.n
    const perToken =
      model.completion * (Number.isSafeInteger(n) && (n as number) > 1 ? (n as number) : 1)
    const reserve = (maxOut: number) => {
      const micro = Math.min(Math.ceil(inputMicro + maxOut * perToken), Number.MAX_SAFE_INTEGER)
      return micro > 0 ? this.d.credits.reserve(settings.userId, micro) : Promise.resolve(null)
    }
    if (plan.endpoint === 'embeddings') return reserve(0)
    const asked = maxTokensOf(plan)
    if (asked !== null || model.completion === 0) return reserve(asked ?? 0)
    const cap = model.maxCompletionTokens ?? DEFAULT_MAX_OUTPUT
    plan.body.max_tokens = cap
    try {
      return await reserve(cap)
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'CREDITS_EXHAUSTED')) throw err
    }
    const available = await this.d.credits.available(settings.userId)
    // Below one token this hold fails too, with the ledger's own 402 and its message.
    const affordable = Math.max(1, Math.floor((available - inputMicro) / perToken))
    plan.body.max_tokens = Math.min(cap, affordable)
    return reserve(plan.body.max_tokens as number)
  }

  /** The charge and the ledger row; after the answer is out, so never on the client's time. */
  private async book(
    settings: CallSettings,
    plan: Plan | null,
    endpoint: Endpoint,
    outcome: Booking,
    charged: number,
    reservation: Reservation | null,
    started: number,
  ): Promise<void> {
    try {
      if (reservation) await this.d.credits.settle(reservation, charged)
      await this.d.usage.record({
        userId: settings.userId,
        workspaceId: settings.workspaceId,
        workspaceName: settings.workspaceName,
        mode: settings.mode,
        provider:
          plan?.provider ?? (settings.mode === 'byok' ? (settings.provider ?? 'none') : 'upstream'),
        model: plan?.model ?? settings.model ?? '',
        endpoint,
        inputTokens: outcome.usage.input,
        outputTokens: outcome.usage.output,
        creditsMicro: charged,
        status: outcome.status,
        httpStatus: outcome.httpStatus,
        durationMs: Math.round(performance.now() - started),
      })
    } catch (err) {
      this.d.log?.error(
        { err: (err as Error).message, workspaceId: settings.workspaceId },
        'AI ledger write failed',
      )
    }
  }

  /** GET /v1/models: the catalog (managed) or the provider's own list (BYOK). */
  async models(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const shape: Shape = req.headers['anthropic-version'] ? 'anthropic' : 'openai'
    try {
      const settings = await this.caller(req)
      AiProxy.refuseWhenOff(settings)
      if (settings.mode === 'byok') return await this.providerModels(settings, req, reply)
      const list = await this.catalog.list()
      if (!this.d.ai.upstream && list.length === 0) {
        throw new ApiError(
          'AI_NOT_CONFIGURED',
          'no AI upstream is configured on this server: the operator sets RIGBOX_AI_UPSTREAM_URL ' +
            '(or prices models in RIGBOX_AI_PRICE_FILE)',
        )
      }
      await reply.send(modelListBody(list))
    } catch (err) {
      sendError(reply, shape, asApiError(err))
    }
  }

  private async providerModels(settings: CallSettings, req: FastifyRequest, reply: FastifyReply) {
    const target = byokModelsTarget(this.d.ai, settings)
    if (!target)
      throw new ApiError('AI_DISABLED', 'this workspace brings its own key (BYOK) but has none set')
    const abort = new AbortController()
    reply.raw.once('close', () => abort.abort())
    const res = await requestUpstream({
      method: 'GET',
      ...target,
      incoming: req.headers,
      signal: abort.signal,
      timeouts: this.timeouts,
    })
    const text = redact(
      (await readBody(res, 8 << 20, this.timeouts.idleMs)).toString(),
      target.secrets,
    )
    await reply
      .code(res.statusCode && res.statusCode < 500 ? res.statusCode : 502)
      .header('content-type', res.headers['content-type'] ?? 'application/json')
      .send(text)
  }
}
