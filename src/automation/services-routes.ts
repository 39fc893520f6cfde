import { z } from 'zod'
import { defineRoute } from '../http/route.ts'
import { workspaceIdParams } from '../workspaces/schemas.ts'
import {
  serviceLogsResponse,
  serviceParams,
  workspaceServiceResponse,
  workspaceServicesResponse,
} from './schemas.ts'
import type { WorkspaceServices } from './services.ts'

const common = { tag: 'workspaces', auth: 'user', rateClass: 'workspaces' } as const

export function workspaceServicesRoutes(services: WorkspaceServices) {
  return [
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/services',
      summary:
        "The workspace's services (its template's, its service specs', apps served by a unit) with their live state",
      params: workspaceIdParams,
      response: workspaceServicesResponse,
      handler: async ({ user, params }) => ({ services: await services.list(user, params.id) }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/services/:name',
      summary: 'One service of the workspace, with its live state',
      params: serviceParams,
      response: workspaceServiceResponse,
      handler: async ({ user, params }) => services.get(user, params.id, params.name),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/services/:name/logs',
      summary: "A service's journal (newest last); the workspace must be running",
      params: serviceParams,
      querystring: z.object({ lines: z.coerce.number().int().min(1).max(5000).default(200) }),
      response: serviceLogsResponse,
      handler: async ({ user, params, query }) =>
        services.logs(user, params.id, params.name, query.lines),
    }),
  ]
}
