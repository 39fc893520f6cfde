import type net from 'node:net'
import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod'
import { z } from 'zod'
import { toCredits, type CreditStore } from '../ai/credits.ts'
import { registerAiProxy, type ProxyDeps } from '../ai/proxy/routes.ts'
import type { SettingsStore } from '../ai/settings.ts'
import type { UsageStore } from '../ai/usage.ts'
import type { AppService } from '../apps/service.ts'
import { subdomainSchema } from '../apps/schemas.ts'
import type { AuthStore, User } from '../auth/store.ts'
import { publicUser } from '../auth/routes.ts'
import { ApiError } from '../http/errors.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { WorkspaceStore } from '../workspaces/store.ts'

/** The workspace a tunnelled connection came from, set by the node when it hands it over. */
const WORKSPACE = Symbol('rigbox.workspace')
type Tagged = Duplex & { [WORKSPACE]?: string }

export interface BridgeDeps {
  store: WorkspaceStore
  auth: AuthStore
  workspaces: WorkspaceService
  apps: AppService
  credits: CreditStore
  usage: UsageStore
  aiSettings: SettingsStore
  /** The AI proxy's parts (`/v1/*`); without them those routes answer AI_NOT_CONFIGURED. */
  aiProxy?: ProxyDeps
}

export interface Bridge {
  /** Serves one connection from inside a VM; `workspaceId` is the channel's, never the VM's word. */
  handle(conn: Duplex, workspaceId: string): void
  app: FastifyInstance
  close(): Promise<void>
}

/**
 * The VM bridge (`http://172.16.0.1:9090` inside every VM): the workspace-scoped `/rig/v1` API
 * the in-VM `rig` uses with no login, and the AI proxy's `/v1/*` (src/ai/proxy/). Who is calling
 * is decided by which VM's tunnel the connection arrived on; headers, bodies and the VM's own
 * files change nothing.
 */
export async function createBridge(d: BridgeDeps): Promise<Bridge> {
  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.statusCode).send({ error: { code: err.code, message: err.message } })
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      return reply.code(400).send({ error: { code: 'VALIDATION_ERROR', message: err.message } })
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500
    return reply.code(status).send({
      error: {
        code: status < 500 ? 'BAD_REQUEST' : 'INTERNAL',
        message: status < 500 ? (err as Error).message : 'internal error',
      },
    })
  })
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }),
  )

  /** The calling workspace and its owner, from the connection alone. */
  const caller = async (req: FastifyRequest): Promise<{ user: User; workspaceId: string }> => {
    const id = (req.raw.socket as Tagged)[WORKSPACE]
    const row = id ? await d.store.get(id) : undefined
    if (!row) throw new ApiError('UNAUTHORIZED', 'this connection does not come from a workspace')
    const user = await d.auth.findUserById(row.user_id)
    if (!user) throw new ApiError('UNAUTHORIZED', 'the workspace has no owner')
    return { user, workspaceId: row.id }
  }

  await registerAiProxy(app, d.aiProxy, (req) => (req.raw.socket as Tagged)[WORKSPACE])

  const r = app.withTypeProvider<ZodTypeProvider>()
  r.get('/rig/v1/whoami', async (req) => {
    const { user, workspaceId } = await caller(req)
    const ws = await d.workspaces.get(user, workspaceId)
    return { user: publicUser(user), workspace: { id: ws.id, name: ws.name } }
  })
  // What `rig status` shows inside the VM: plan, AI mode, credits, this workspace's last day.
  r.get('/rig/v1/status', async (req) => {
    const { user, workspaceId } = await caller(req)
    const ws = await d.workspaces.get(user, workspaceId)
    const [ai, balance, day] = await Promise.all([
      d.aiSettings.config(workspaceId),
      d.credits.balance(user.id),
      d.usage.summary({ workspaceId }, '24h'),
    ])
    return {
      workspace: { id: ws.id, name: ws.name },
      user: { email: user.email, plan: user.plan },
      ai: {
        mode: ai.mode,
        status: ai.status,
        credits: {
          remaining: toCredits(balance.remaining_micro),
          total: toCredits(balance.total_micro),
          renews_at: balance.renews_at,
        },
        usage_24h: {
          total_requests: day.requests,
          input_tokens: day.input_tokens,
          output_tokens: day.output_tokens,
          total_credits: toCredits(day.credits_micro),
        },
      },
    }
  })
  r.get('/rig/v1/workspace', async (req) => {
    const { user, workspaceId } = await caller(req)
    return { vm: d.workspaces.view(await d.workspaces.get(user, workspaceId)) }
  })
  r.get('/rig/v1/env', async (req) => {
    const { user, workspaceId } = await caller(req)
    return { env_vars: JSON.parse((await d.workspaces.get(user, workspaceId)).env_vars) as object }
  })
  r.get('/rig/v1/apps', async (req) => {
    const { user, workspaceId } = await caller(req)
    const apps = (await d.apps.list(user)).filter((a) => a.workspace_id === workspaceId)
    return { apps: apps.map((a) => d.apps.view(a)) }
  })
  r.post(
    '/rig/v1/apps',
    {
      schema: {
        body: z.object({
          name: subdomainSchema,
          port: z.number().int().min(1).max(65535),
          description: z.string().max(1000).optional(),
        }),
      },
    },
    async (req, reply) => {
      const { user, workspaceId } = await caller(req)
      // workspace_id is never taken from the request: an app is always made for the caller.
      const app = await d.apps.create(user, { ...req.body, workspace_id: workspaceId })
      return reply.code(201).send({ app: d.apps.view(app) })
    },
  )
  r.delete(
    '/rig/v1/apps/:id',
    { schema: { params: z.object({ id: z.string().min(1).max(64) }) } },
    async (req) => {
      const { user, workspaceId } = await caller(req)
      const app = await d.apps.get(user, req.params.id)
      if (app.workspace_id !== workspaceId) {
        throw new ApiError('NOT_FOUND', `app ${req.params.id} not found in this workspace`)
      }
      await d.apps.remove(user, app.id)
      return { message: `app ${app.subdomain} deleted` }
    },
  )
  await app.ready()
  const conns = new Set<Duplex>()

  return {
    app,
    handle(conn, workspaceId) {
      ;(conn as Tagged)[WORKSPACE] = workspaceId
      conns.add(conn)
      conn.once('close', () => conns.delete(conn))
      // As http.Server does for the TCP connections it accepts itself: a streamed answer's small
      // writes must not wait out Nagle (tunnel streams have no such delay; loopback TCP does).
      ;(conn as Partial<net.Socket>).setNoDelay?.(true)
      app.server.emit('connection', conn)
    },
    async close() {
      // Connections handed over are not the server's own accepts: it would wait for each client's
      // keep-alive to run out (72 s). Closing the bridge ends them, streams in flight included.
      const closing = app.close()
      for (const conn of conns) conn.destroy()
      await closing
    },
  }
}
