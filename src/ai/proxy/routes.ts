/**
 * The AI proxy's routes on the VM bridge (docs/ai.md, "The proxy"): OpenAI-shaped
 * `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`, Anthropic-shaped
 * `POST /v1/messages`. In their own scope: bodies up to 8 MiB (images inline), read as raw JSON
 * whatever content type a client claims (`curl -d` says form-urlencoded), and every failure,
 * Fastify's own included, answered in the shape the client's SDK parses.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ApiError } from '../../http/errors.ts'
import { asApiError, type Shape } from './errors.ts'
import { AiProxy, type ProxyDeps } from './proxy.ts'
import { sendError } from './relay.ts'

export type { ProxyDeps } from './proxy.ts'

/** Room for vision payloads (base64 images) while keeping one VM from filling the node's memory. */
export const PROXY_BODY_LIMIT = 8 * 2 ** 20

const shapeOfRequest = (req: FastifyRequest): Shape =>
  req.url.startsWith('/v1/messages') || req.headers['anthropic-version'] ? 'anthropic' : 'openai'

export async function registerAiProxy(
  app: FastifyInstance,
  deps: ProxyDeps | undefined,
  workspaceOf: (req: FastifyRequest) => string | undefined,
): Promise<void> {
  const proxy = deps ? new AiProxy(deps, workspaceOf) : null
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: PROXY_BODY_LIMIT },
      (_req, body, done) => done(null, body),
    )
    scope.setErrorHandler((err, req, reply) =>
      sendError(reply, shapeOfRequest(req), asApiError(err)),
    )
    const unavailable = () => {
      throw new ApiError('AI_NOT_CONFIGURED', 'the AI proxy is not set up on this node')
    }
    const opts = { bodyLimit: PROXY_BODY_LIMIT }
    scope.post('/v1/chat/completions', opts, (req, reply) =>
      proxy ? proxy.call('chat.completions', req, reply) : unavailable(),
    )
    scope.post('/v1/embeddings', opts, (req, reply) =>
      proxy ? proxy.call('embeddings', req, reply) : unavailable(),
    )
    scope.post('/v1/messages', opts, (req, reply) =>
      proxy ? proxy.call('messages', req, reply) : unavailable(),
    )
    scope.get('/v1/models', (req, reply) => (proxy ? proxy.models(req, reply) : unavailable()))
  })
}
