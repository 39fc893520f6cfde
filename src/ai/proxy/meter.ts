/**
 * Counting tokens (docs/ai.md, "Metering"): the upstream's own usage wherever it gives one; the
 * tokenizer (gpt-tokenizer, o200k) for the upper bound held before a call, and for the part of a
 * stream a client really got when the stream ended early.
 */
import { countTokens } from 'gpt-tokenizer'
import type { ModelInfo } from './models.ts'

export type Endpoint = 'chat.completions' | 'embeddings' | 'messages'

export interface Usage {
  input: number
  output: number
}

/**
 * What an inline image, audio clip or file is counted as before the call (the upstream's usage
 * settles it): about a high-detail image. Tokenizing base64 would cost seconds and mean nothing.
 */
const BINARY_TOKENS = 1_600
/** Per object (message, part, tool): roles, separators and framing the text alone misses. */
const OBJECT_TOKENS = 3

/** Every string in a request part counted with the tokenizer, binaries at a flat rate. */
function walk(value: unknown, key: string): number {
  if (typeof value === 'string') {
    if (key === 'data' || key === 'file_data' || (key === 'url' && value.startsWith('data:'))) {
      return BINARY_TOKENS
    }
    return countTokens(value)
  }
  // An embeddings input may be token ids already.
  if (typeof value === 'number') return 1
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + walk(v, key), 0)
  if (value && typeof value === 'object') {
    let n = OBJECT_TOKENS
    for (const [k, v] of Object.entries(value)) n += walk(v, k)
    return n
  }
  return 0
}

/** An upper-bound estimate of a request's input tokens. */
export function estimateInput(endpoint: Endpoint, body: Record<string, unknown>): number {
  if (endpoint === 'embeddings') return walk(body.input, 'input')
  return (
    walk(body.messages, '') +
    walk(body.system, '') +
    walk(body.tools, '') +
    walk(body.functions, '')
  )
}

/** Micro-credits for a call, rounded up to a whole micro-credit. */
export function costMicro(model: Pick<ModelInfo, 'prompt' | 'completion'>, usage: Usage): number {
  // The epsilon keeps float dust in an exact product (3 × 0.1) from costing a whole micro-credit.
  return Math.ceil(usage.input * model.prompt + usage.output * model.completion - 1e-6)
}

const int = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0)

/** Anthropic counts cache writes and reads apart from input_tokens; all were read as input. */
function anthropicInput(u: Record<string, unknown>): number {
  return int(u.input_tokens) + int(u.cache_creation_input_tokens) + int(u.cache_read_input_tokens)
}

/** The usage a non-streamed answer states, or null when it states none. */
export function usageOf(endpoint: Endpoint, body: unknown): Usage | null {
  const u = (body as { usage?: Record<string, unknown> } | null)?.usage
  if (!u || typeof u !== 'object') return null
  if (endpoint === 'messages') return { input: anthropicInput(u), output: int(u.output_tokens) }
  if (endpoint === 'embeddings') return { input: int(u.prompt_tokens ?? u.total_tokens), output: 0 }
  return { input: int(u.prompt_tokens), output: int(u.completion_tokens) }
}

/** The text of a non-streamed answer, for counting when it states no usage. */
export function answerText(endpoint: Endpoint, body: unknown): string {
  const b = body as {
    choices?: { message?: { content?: unknown } }[]
    content?: { text?: unknown }[]
  }
  if (endpoint === 'messages') return (b?.content ?? []).map((c) => String(c?.text ?? '')).join('')
  return (b?.choices ?? []).map((c) => String(c?.message?.content ?? '')).join('')
}

/** The JSON of an SSE event's data lines; null for none, `[DONE]` or anything unparsable. */
export function eventData(event: string): Record<string, unknown> | null {
  let data = ''
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(line[5] === ' ' ? 6 : 5)
  }
  if (!data || data === '[DONE]') return null
  try {
    const v = JSON.parse(data) as unknown
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

const OPENAI_USAGE = /"usage"\s*:\s*\{/
const ANTHROPIC_USAGE = /"type"\s*:\s*"message_(start|delta)"/

/**
 * Reads a stream's events as they pass: takes the usage, hides the usage chunk the client did not
 * ask for (we asked for it), and keeps what was forwarded, to count it if the stream ends early.
 */
export class StreamMeter {
  input: number | null = null
  output: number | null = null
  private readonly forwarded: string[] = []

  constructor(
    private readonly endpoint: 'chat.completions' | 'messages',
    private readonly hideUsageChunk: boolean,
  ) {}

  /** The event to forward, or null to drop it. */
  pass(event: string): string | null {
    if (this.endpoint === 'messages') {
      if (ANTHROPIC_USAGE.test(event)) this.anthropicUsage(eventData(event))
    } else if (OPENAI_USAGE.test(event)) {
      const data = eventData(event)
      const u = data?.usage as Record<string, unknown> | undefined
      if (u && typeof u === 'object') {
        this.input = int(u.prompt_tokens)
        this.output = int(u.completion_tokens)
        const choices = data?.choices
        if (this.hideUsageChunk && Array.isArray(choices) && choices.length === 0) return null
      }
    }
    this.forwarded.push(event)
    return event
  }

  /** The output tokens of what was forwarded, counted with the tokenizer. */
  deliveredOutput(): number {
    let text = ''
    for (const event of this.forwarded) {
      const data = eventData(event)
      if (!data) continue
      if (this.endpoint === 'messages') {
        const d = data.delta as Record<string, unknown> | undefined
        if (data.type === 'content_block_delta' && d) {
          text += String(d.text ?? d.partial_json ?? d.thinking ?? '')
        }
        continue
      }
      for (const c of (data.choices as { delta?: Record<string, unknown> }[] | undefined) ?? []) {
        const d = c?.delta
        if (!d) continue
        text += String(d.content ?? '') + String(d.reasoning ?? '') + String(d.refusal ?? '')
        for (const t of (d.tool_calls as { function?: { arguments?: unknown } }[] | undefined) ??
          []) {
          text += String(t?.function?.arguments ?? '')
        }
      }
    }
    return text ? countTokens(text) : 0
  }

  private anthropicUsage(data: Record<string, unknown> | null) {
    const u = (
      data?.type === 'message_start'
        ? (data.message as { usage?: unknown } | undefined)?.usage
        : data?.usage
    ) as Record<string, unknown> | undefined
    if (!u || typeof u !== 'object') return
    if (data?.type === 'message_start' || u.input_tokens !== undefined)
      this.input = anthropicInput(u)
    if (u.output_tokens !== undefined) this.output = int(u.output_tokens)
  }
}

/** Splits a byte stream into whole SSE events (each with its blank-line terminator). */
export class SseSplitter {
  private pending = ''

  push(chunk: string): string[] {
    this.pending += chunk
    const events: string[] = []
    const boundary = /\r?\n\r?\n/g
    let start = 0
    for (let m = boundary.exec(this.pending); m; m = boundary.exec(this.pending)) {
      events.push(this.pending.slice(start, m.index + m[0].length))
      start = m.index + m[0].length
    }
    this.pending = this.pending.slice(start)
    return events
  }

  /** Whatever trailing bytes never got their terminator. */
  rest(): string {
    const r = this.pending
    this.pending = ''
    return r
  }
}
