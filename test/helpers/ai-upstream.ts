/**
 * A local AI upstream for tests and benches: a real HTTP server on 127.0.0.1 speaking both the
 * OpenAI shape (an OpenRouter-like gateway: `/v1/chat/completions`, `/v1/embeddings`,
 * `/v1/models` with pricing) and the Anthropic shape (`/v1/messages`), with deterministic replies
 * and usage. Self-contained: start it with `startAiUpstream()`, point the proxy's config at
 * `openaiUrl` (RIGBOX_AI_UPSTREAM_URL) and `url` (RIGBOX_AI_ANTHROPIC_URL).
 *
 * The reply is the text of `reply` (default REPLY), cut to the request's max tokens, one token per
 * chunk when streamed; usage counts tokens with gpt-tokenizer (prompt: the text of the messages).
 * Every request is kept in `requests` (headers included) so tests can assert what reached it.
 * Knobs, changeable at any time through `knobs`: `chunkDelayMs` (slow streaming), `failAfterChunks`
 * (the connection is cut after n chunks), `errorStatus` (every call answers this status, with a
 * message that echoes the credential it got, as real providers do), `firstByteDelayMs`.
 */
import http from 'node:http'
import type net from 'node:net'
import { countTokens, decode, encode } from 'gpt-tokenizer'

export const REPLY =
  'The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun.'

export interface UpstreamModel {
  id: string
  /** USD per token, as OpenRouter gives it. */
  prompt: string
  completion: string
  context_length?: number
  max_completion_tokens?: number
}

export const MODELS: UpstreamModel[] = [
  { id: 'test/small', prompt: '0.000001', completion: '0.000002', context_length: 8192 },
  {
    id: 'test/big',
    prompt: '0.00001',
    completion: '0.00003',
    context_length: 200_000,
    max_completion_tokens: 1000,
  },
  { id: 'test/free', prompt: '0', completion: '0' },
  { id: 'test/embed', prompt: '0.0000001', completion: '0' },
]

export interface UpstreamKnobs {
  reply: string
  chunkDelayMs: number
  failAfterChunks: number | null
  errorStatus: number | null
  /** A wait before anything is answered (headers included). */
  firstByteDelayMs: number
  models: UpstreamModel[]
}

export interface RecordedRequest {
  method: string
  path: string
  headers: http.IncomingHttpHeaders
  body: Record<string, unknown> | null
  /** The client went away before the answer was complete. */
  aborted: boolean
  done: Promise<void>
}

export interface AiUpstream {
  /** Base URL as the Anthropic SDK takes it (no /v1). */
  url: string
  /** Base URL as the OpenAI SDK takes it (with /v1). */
  openaiUrl: string
  requests: RecordedRequest[]
  knobs: UpstreamKnobs
  /** Requests being answered right now, and the most at once since start. */
  inFlight: number
  maxInFlight: number
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type Msg = { role?: string; content?: unknown }
/** The text of a message list (string contents and text parts), as the usage counts it. */
export function promptText(messages: unknown, system?: unknown): string {
  const parts: string[] = typeof system === 'string' ? [system] : []
  for (const m of Array.isArray(messages) ? (messages as Msg[]) : []) {
    if (typeof m.content === 'string') parts.push(m.content)
    else if (Array.isArray(m.content)) {
      for (const p of m.content as { text?: unknown }[]) {
        if (typeof p.text === 'string') parts.push(p.text)
      }
    }
  }
  return parts.join('\n')
}

export async function startAiUpstream(knobs: Partial<UpstreamKnobs> = {}): Promise<AiUpstream> {
  const up: AiUpstream = {
    url: '',
    openaiUrl: '',
    requests: [],
    knobs: {
      reply: REPLY,
      chunkDelayMs: 0,
      failAfterChunks: null,
      errorStatus: null,
      firstByteDelayMs: 0,
      models: MODELS,
      ...knobs,
    },
    inFlight: 0,
    maxInFlight: 0,
    close: async () => {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }

  const server = http.createServer(async (req, res) => {
    up.inFlight++
    up.maxInFlight = Math.max(up.maxInFlight, up.inFlight)
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks).toString()
    const rec: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: raw ? (JSON.parse(raw) as Record<string, unknown>) : null,
      aborted: false,
      done: new Promise((resolve) => {
        res.on('close', () => {
          up.inFlight--
          rec.aborted = !res.writableFinished
          resolve()
        })
      }),
    }
    up.requests.push(rec)
    try {
      await answer(up.knobs, rec, res)
    } catch {
      res.destroy()
    }
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  up.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  up.openaiUrl = `${up.url}/v1`
  return up
}

function json(res: http.ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

async function answer(k: UpstreamKnobs, rec: RecordedRequest, res: http.ServerResponse) {
  const anthropic = rec.path === '/v1/messages'
  if (k.firstByteDelayMs) await sleep(k.firstByteDelayMs)
  if (res.destroyed) return
  if (k.errorStatus) {
    const credential = rec.headers['x-api-key'] ?? rec.headers.authorization ?? 'none'
    const message = `Incorrect API key provided: ${String(credential)}`
    return json(
      res,
      k.errorStatus,
      anthropic
        ? { type: 'error', error: { type: 'authentication_error', message } }
        : { error: { message, type: 'invalid_request_error', code: 'invalid_api_key' } },
    )
  }
  if (rec.method === 'GET' && rec.path === '/v1/models') {
    return json(res, 200, {
      data: k.models.map((m) => ({
        id: m.id,
        name: m.id,
        created: 1_700_000_000,
        context_length: m.context_length ?? null,
        pricing: { prompt: m.prompt, completion: m.completion },
        top_provider: { max_completion_tokens: m.max_completion_tokens ?? null },
      })),
    })
  }
  const body = rec.body ?? {}
  if (rec.path === '/v1/embeddings') return embeddings(body, res)
  if (rec.path !== '/v1/chat/completions' && !anthropic) {
    return json(res, 404, { error: { message: `no route ${rec.path}`, type: 'not_found' } })
  }
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? Infinity)
  const tokens = encode(k.reply).slice(0, max)
  const pieces = tokens.map((t) => decode([t]))
  const input = countTokens(promptText(body.messages, body.system))
  const model = String(body.model)
  const stop = tokens.length < encode(k.reply).length ? 'length' : 'stop'
  if (anthropic) return messages(k, res, body, model, pieces, input, stop)
  const id = 'chatcmpl-test'
  if (!body.stream) {
    return json(res, 200, {
      id,
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: pieces.join('') },
          finish_reason: stop,
        },
      ],
      usage: {
        prompt_tokens: input,
        completion_tokens: tokens.length,
        total_tokens: input + tokens.length,
      },
    })
  }
  const withUsage = Boolean((body.stream_options as { include_usage?: boolean })?.include_usage)
  const chunk = (choices: unknown[], usage?: unknown) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1_700_000_000, model, choices, ...(withUsage && { usage: usage ?? null }) })}\n\n`
  const events = [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
    ...pieces.map((p) => chunk([{ index: 0, delta: { content: p }, finish_reason: null }])),
    chunk([{ index: 0, delta: {}, finish_reason: stop }]),
    ...(withUsage
      ? [
          chunk([], {
            prompt_tokens: input,
            completion_tokens: tokens.length,
            total_tokens: input + tokens.length,
          }),
        ]
      : []),
    'data: [DONE]\n\n',
  ]
  await stream(k, res, events)
}

async function messages(
  k: UpstreamKnobs,
  res: http.ServerResponse,
  body: Record<string, unknown>,
  model: string,
  pieces: string[],
  input: number,
  stop: string,
) {
  const stopReason = stop === 'length' ? 'max_tokens' : 'end_turn'
  const message = {
    id: 'msg_test',
    type: 'message',
    role: 'assistant',
    model,
    content: [] as unknown[],
    stop_reason: null as string | null,
    stop_sequence: null,
    usage: { input_tokens: input, output_tokens: 1 },
  }
  if (!body.stream) {
    return json(res, 200, {
      ...message,
      content: [{ type: 'text', text: pieces.join('') }],
      stop_reason: stopReason,
      usage: { input_tokens: input, output_tokens: pieces.length },
    })
  }
  const ev = (type: string, data: object) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  await stream(k, res, [
    ev('message_start', { message }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    ev('ping', {}),
    ...pieces.map((p) =>
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } }),
    ),
    ev('content_block_stop', { index: 0 }),
    ev('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: pieces.length },
    }),
    ev('message_stop', {}),
  ])
}

async function stream(k: UpstreamKnobs, res: http.ServerResponse, events: string[]) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.flushHeaders()
  let sent = 0
  for (const e of events) {
    if (res.destroyed) return
    // Cut the connection once what was written is out (a destroy would drop it unsent).
    if (k.failAfterChunks !== null && sent >= k.failAfterChunks) return void res.socket?.end()
    if (k.chunkDelayMs) await sleep(k.chunkDelayMs)
    res.write(e)
    sent++
  }
  res.end()
}

function embeddings(body: Record<string, unknown>, res: http.ServerResponse) {
  const inputs = Array.isArray(body.input) ? (body.input as unknown[]) : [body.input]
  const tokens = inputs.reduce<number>((n, i) => n + countTokens(String(i)), 0)
  const data = inputs.map((input, index) => {
    // A deterministic 8-dimensional vector from the text's length and index.
    const v = Float32Array.from(
      { length: 8 },
      (_, d) => (((String(input).length + index) * (d + 1)) % 7) / 7,
    )
    return {
      object: 'embedding',
      index,
      embedding:
        body.encoding_format === 'base64'
          ? Buffer.from(v.buffer).toString('base64')
          : Array.from(v),
    }
  })
  json(res, 200, {
    object: 'list',
    data,
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  })
}
