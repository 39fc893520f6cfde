/**
 * One call's way through: the request goes upstream, the answer comes back to the client as it
 * arrives. A stream is passed on event by event (headers flushed at once, nothing compressed or
 * gathered), read for its usage on the way; a client that hangs up aborts the upstream request at
 * once. Every credential the call used is cut out of whatever reaches the client.
 */
import type http from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { ApiError } from '../../http/errors.ts'
import { errorBody, type Shape } from './errors.ts'
import { answerText, SseSplitter, StreamMeter, usageOf, type Usage } from './meter.ts'
import type { Plan } from './plan.ts'
import {
  readBody,
  redact,
  requestUpstream,
  returnedHeaders,
  upstreamError,
  type Timeouts,
} from './upstream.ts'
import { countTokens } from 'gpt-tokenizer'

export interface Outcome {
  status: 'ok' | 'error' | 'cancelled'
  httpStatus: number
  usage: Usage
}

/** nginx's code for "the client closed the request", as recorded in the ledger. */
export const CLIENT_CLOSED = 499
const ERROR_BODY_LIMIT = 1 << 20
const ANSWER_LIMIT = 64 << 20
const NO_USAGE: Usage = { input: 0, output: 0 }

export const shapeOf = (plan: Pick<Plan, 'endpoint'>): Shape =>
  plan.endpoint === 'messages' ? 'anthropic' : 'openai'

/** Answers an error in the client's shape, whatever state the reply is in. */
export function sendError(reply: FastifyReply, shape: Shape, err: ApiError): void {
  const res = reply.raw
  if (res.headersSent || res.destroyed) return void res.destroy()
  if (!reply.sent) reply.hijack()
  const body = JSON.stringify(errorBody(shape, err))
  res.writeHead(err.statusCode, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...err.headers,
  })
  res.end(body)
}

/** The upstream's error message, for a 5xx we answer ourselves. */
function upstreamMessage(text: string): string {
  try {
    const e = (JSON.parse(text) as { error?: { message?: unknown } }).error
    return typeof e?.message === 'string' ? `: ${e.message.slice(0, 300)}` : ''
  } catch {
    return ''
  }
}

export async function relay(
  plan: Plan,
  req: FastifyRequest,
  reply: FastifyReply,
  timeouts: Timeouts,
  log?: Logger,
): Promise<Outcome> {
  const res = reply.raw
  const shape = shapeOf(plan)
  // Charged if the client leaves once the prompt went out: the upstream has read it.
  const cancelled = (output = 0): Outcome => ({
    status: 'cancelled',
    httpStatus: CLIENT_CLOSED,
    usage: { input: plan.inputEstimate, output },
  })
  if (res.destroyed) return { ...cancelled(), usage: NO_USAGE }
  reply.hijack()
  const abort = new AbortController()
  let upstream: http.IncomingMessage | null = null
  let clientGone = false
  res.once('close', () => {
    if (res.writableFinished) return
    clientGone = true
    abort.abort()
    upstream?.destroy()
  })

  try {
    upstream = await requestUpstream({
      method: 'POST',
      url: plan.url,
      auth: plan.auth,
      defaults: plan.defaults,
      incoming: req.headers,
      body: Buffer.from(JSON.stringify(plan.body)),
      signal: abort.signal,
      timeouts,
    })
  } catch (err) {
    if (clientGone) return cancelled()
    const e = upstreamError(err)
    log?.warn(
      { endpoint: plan.endpoint, model: plan.model, reason: e.message },
      'AI upstream failed',
    )
    sendError(reply, shape, e)
    return { status: 'error', httpStatus: e.statusCode, usage: NO_USAGE }
  }

  const status = upstream.statusCode ?? 502
  if (status >= 400) {
    const text = redact(
      (
        await readBody(upstream, ERROR_BODY_LIMIT, timeouts.idleMs).catch(() => Buffer.alloc(0))
      ).toString(),
      plan.secrets,
    )
    if (clientGone) return { ...cancelled(), usage: NO_USAGE }
    log?.warn(
      { endpoint: plan.endpoint, model: plan.model, status },
      'AI upstream answered an error',
    )
    if (status >= 500) {
      const e = new ApiError(
        'AI_UPSTREAM_ERROR',
        `the AI upstream failed (HTTP ${status})${upstreamMessage(text)}`,
      )
      sendError(reply, shape, e)
      return { status: 'error', httpStatus: e.statusCode, usage: NO_USAGE }
    }
    // A 4xx is about the request (bad parameters, the upstream's own limits): the client's to see.
    res.writeHead(status, {
      'content-type': upstream.headers['content-type'] ?? 'application/json',
      'content-length': Buffer.byteLength(text),
      ...returnedHeaders(upstream),
    })
    res.end(text)
    return { status: 'error', httpStatus: status, usage: NO_USAGE }
  }

  if (String(upstream.headers['content-type']).includes('text/event-stream')) {
    return relayStream(plan, upstream, res, timeouts, () => clientGone, cancelled)
  }

  let body: Buffer
  try {
    body = await readBody(upstream, ANSWER_LIMIT, timeouts.idleMs)
  } catch (err) {
    if (clientGone) return cancelled()
    const e = upstreamError(err)
    sendError(reply, shape, e)
    return { status: 'error', httpStatus: e.statusCode, usage: NO_USAGE }
  }
  const text = redact(body.toString(), plan.secrets)
  let parsed: unknown = null
  try {
    parsed = JSON.parse(text)
  } catch {
    // Not JSON: passed on as is, counted as the prompt alone.
  }
  const usage = usageOf(plan.endpoint, parsed) ?? {
    input: plan.inputEstimate,
    output: countTokens(answerText(plan.endpoint, parsed)),
  }
  if (clientGone) return cancelled()
  res.writeHead(status, {
    'content-type': upstream.headers['content-type'] ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    ...returnedHeaders(upstream),
  })
  res.end(text)
  return { status: 'ok', httpStatus: status, usage }
}

function streamError(shape: Shape, message: string): string {
  const body = JSON.stringify(errorBody(shape, new ApiError('AI_UPSTREAM_ERROR', message)))
  return shape === 'anthropic' ? `event: error\ndata: ${body}\n\n` : `data: ${body}\n\n`
}

function relayStream(
  plan: Plan,
  upstream: http.IncomingMessage,
  res: http.ServerResponse,
  timeouts: Timeouts,
  clientGone: () => boolean,
  cancelled: (output: number) => Outcome,
): Promise<Outcome> {
  const meter = new StreamMeter(
    plan.endpoint === 'messages' ? 'messages' : 'chat.completions',
    plan.hideUsageChunk,
  )
  const split = new SseSplitter()
  const secrets = plan.secrets
  res.writeHead(upstream.statusCode ?? 200, {
    'content-type': upstream.headers['content-type'] ?? 'text/event-stream',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    ...returnedHeaders(upstream),
  })
  res.flushHeaders()
  upstream.setEncoding('utf8')

  return new Promise<Outcome>((resolve) => {
    let done = false
    const finish = (status: 'ok' | 'error') => {
      if (done) return
      done = true
      clearTimeout(idle)
      if (clientGone()) {
        const outcome = cancelled(meter.deliveredOutput())
        return resolve({
          ...outcome,
          usage: { ...outcome.usage, input: meter.input ?? plan.inputEstimate },
        })
      }
      const complete = status === 'ok' && meter.output !== null
      resolve({
        status,
        httpStatus: res.statusCode,
        usage: {
          input: meter.input ?? plan.inputEstimate,
          output: complete ? meter.output! : meter.deliveredOutput(),
        },
      })
    }
    const stalled = () => upstream.destroy(new Error('idle'))
    let idle = setTimeout(stalled, timeouts.idleMs)
    const send = (text: string) => {
      if (!text || res.destroyed) return
      if (!res.write(secrets.length ? redact(text, secrets) : text)) {
        upstream.pause()
        res.once('drain', () => upstream.resume())
      }
    }
    upstream.on('data', (chunk: string) => {
      clearTimeout(idle)
      idle = setTimeout(stalled, timeouts.idleMs)
      let out = ''
      for (const event of split.push(chunk)) out += meter.pass(event) ?? ''
      send(out)
    })
    upstream.on('end', () => {
      send(split.rest())
      res.end()
      finish('ok')
    })
    upstream.on('error', () => {})
    upstream.on('close', () => {
      if (done) return
      if (!clientGone()) {
        // The upstream broke off: the client learns it in its own stream's error form.
        res.end(streamError(shapeOf(plan), 'the AI upstream stream broke off'))
      }
      finish('error')
    })
    res.once('close', () => {
      if (!res.writableFinished) finish('error')
    })
  })
}
