import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { User } from '../auth/store.ts'

declare module 'fastify' {
  interface FastifyRequest {
    caller: User | null
  }
}

export type AuthMode = 'public' | 'user' | 'admin'
export type RateClass = 'auth' | 'workspaces' | 'apps'

export const errorBodySchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .meta({ id: 'ApiErrorBody' })

export const messageSchema = z.object({ message: z.string() }).meta({ id: 'MessageResponse' })

type Schema = z.ZodType | undefined
type Infer<S> = S extends z.ZodType ? z.infer<S> : undefined

export interface RouteContext<B extends Schema, P extends Schema, Q extends Schema> {
  user: User
  body: Infer<B>
  params: Infer<P>
  query: Infer<Q>
  request: FastifyRequest
  reply: FastifyReply
}

/**
 * One route, served on two surfaces: `/api/v1/…` answers with the reference envelopes and
 * `/api/…` with the flat shapes the seed documents read. The handler runs once; `flat` only
 * reshapes its result.
 */
export interface RouteSpec<B extends Schema, P extends Schema, Q extends Schema, R> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  path: string
  summary: string
  tag: string
  auth: AuthMode
  rateClass: RateClass
  body?: B
  params?: P
  querystring?: Q
  status?: number
  response: z.ZodType<R>
  flat?: { schema: z.ZodType; from: (result: R) => unknown }
  /** Served under /api/v1 only (our own endpoints the seeds never used unversioned). */
  v1Only?: boolean
  /** The handler sends its own reply (streams, raw bytes). */
  raw?: boolean
  handler: (ctx: RouteContext<B, P, Q>) => Promise<R>
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteSpec<any, any, any, any>

export const defineRoute = <B extends Schema, P extends Schema, Q extends Schema, R>(
  spec: RouteSpec<B, P, Q, R>,
): AnyRoute => spec

export interface Surface {
  prefix: string
  flat: boolean
}
export const surfaces: Surface[] = [
  { prefix: '/api/v1', flat: false },
  { prefix: '/api', flat: true },
]

/** e.g. `post_workspaces_id_start`, and `flat_…` for the unversioned twin. */
function operationId(spec: AnyRoute, surface: Surface) {
  const words = spec.path.replace(/[^a-z0-9]+/gi, '_').replace(/^_|_$/g, '')
  return `${surface.flat ? 'flat_' : ''}${spec.method.toLowerCase()}_${words}`
}

export function registerRoutes(
  app: FastifyInstance,
  routes: AnyRoute[],
  guard: (req: FastifyRequest, auth: AuthMode, rateClass: RateClass) => Promise<User | null>,
) {
  const typed = app.withTypeProvider<ZodTypeProvider>()
  app.decorateRequest('caller', null)
  for (const spec of routes) {
    for (const surface of surfaces) {
      if (surface.flat && spec.v1Only) continue
      const status = spec.status ?? 200
      const successSchema = surface.flat && spec.flat ? spec.flat.schema : spec.response
      typed.route({
        method: spec.method,
        url: `${surface.prefix}${spec.path}`,
        schema: {
          summary: spec.summary,
          tags: [surface.flat ? `${spec.tag} (unversioned)` : spec.tag],
          operationId: operationId(spec, surface),
          security: spec.auth === 'public' ? [] : [{ bearer: [] }],
          // Only the parts a route has: an explicit undefined makes Fastify warn at start-up.
          ...(spec.body && { body: spec.body }),
          ...(spec.params && { params: spec.params }),
          ...(spec.querystring && { querystring: spec.querystring }),
          response: spec.raw
            ? { '4xx': errorBodySchema, '5xx': errorBodySchema }
            : { [status]: successSchema, '4xx': errorBodySchema, '5xx': errorBodySchema },
        },
        // Authentication runs first, so a caller without a valid key learns nothing from
        // validation errors, and rate limits count requests before any parsing work.
        onRequest: async (request) => {
          request.caller = await guard(request, spec.auth, spec.rateClass)
        },
        handler: async (request, reply) => {
          const result = await spec.handler({
            user: request.caller as User,
            body: request.body,
            params: request.params,
            query: request.query,
            request,
            reply,
          })
          if (spec.raw) return reply
          reply.code(status)
          return surface.flat && spec.flat ? spec.flat.from(result) : result
        },
      })
    }
  }
}
