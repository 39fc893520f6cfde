import type { Duplex } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod'
import { z } from 'zod'
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
}

export interface Bridge {
  /** Serves one connection from inside a VM; `workspaceId` is the channel's, never the VM's word. */
  handle(conn: Duplex, workspaceId: string): void
  app: FastifyInstance
  close(): Promise<void>
}

/**
 * The VM bridge (`http://172.16.0.1:9090` inside every VM): the workspace-scoped `/rig/v1` API
 * the in-VM `rig` uses with no login. Who is calling is decided by which VM's tunnel the
 * connection arrived on; headers, bodies and the VM's own files change nothing.
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

  const r = app.withTypeProvider<ZodTypeProvider>()
  r.get('/rig/v1/whoami', async (req) => {
    const { user, workspaceId } = await caller(req)
    const ws = await d.workspaces.get(user, workspaceId)
    return { user: publicUser(user), workspace: { id: ws.id, name: ws.name } }
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

  return {
    app,
    handle(conn, workspaceId) {
      ;(conn as Tagged)[WORKSPACE] = workspaceId
      app.server.emit('connection', conn)
    },
    close: () => app.close(),
  }
}
