import { defineRoute } from '../http/route.ts'
import { workspaceIdParams } from '../workspaces/schemas.ts'
import type { AppService } from '../apps/service.ts'
import {
  catalogResponse,
  installAppRequest,
  installAppResponse,
  jobParams,
  jobStatusResponse,
  launchRequest,
  toolInstallResponse,
  toolInstallStatusResponse,
  toolLaunchResponse,
  toolParams,
  toolsListResponse,
  toolStatusSchema,
  toolStopResponse,
} from './schemas.ts'
import type { CatalogService } from './catalog-service.ts'
import type { ToolService } from './service.ts'

const tag = 'tools'
const common = { tag, auth: 'user' as const, rateClass: 'workspaces' as const }

export function toolRoutes(tools: ToolService, catalog: CatalogService, apps: AppService) {
  return [
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/tools',
      summary: "The workspace's tools: installed, running, and their URLs",
      params: workspaceIdParams,
      response: toolsListResponse,
      handler: async ({ user, params }) => ({ tools: await tools.list(user, params.id) }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/tools/:tool/status',
      summary: "One tool's status",
      params: toolParams,
      response: toolStatusSchema,
      handler: ({ user, params }) => tools.status(user, params.id, params.tool),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/tools/:tool/install',
      summary: 'Install a tool in the running workspace (a background job; poll install-status)',
      params: toolParams,
      response: toolInstallResponse,
      handler: ({ user, params }) => tools.install(user, params.id, params.tool),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/tools/:tool/install-status',
      summary: "The tool's latest install job",
      params: toolParams,
      response: toolInstallStatusResponse,
      handler: ({ user, params }) => tools.installStatus(user, params.id, params.tool),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/tools/:tool/launch',
      summary: 'Start an installed tool and route it; answers with its URL',
      params: toolParams,
      body: launchRequest.nullish(),
      response: toolLaunchResponse,
      handler: ({ user, params }) => tools.launch(user, params.id, params.tool),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/tools/:tool/stop',
      summary: "Stop a tool's process and switch its route off",
      params: toolParams,
      response: toolStopResponse,
      handler: ({ user, params }) => tools.stop(user, params.id, params.tool),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/app-catalog',
      summary: 'Apps that can be installed into a workspace',
      response: catalogResponse,
      handler: async () => ({ items: catalog.catalog() }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/install-app',
      summary: 'Install a catalog app: the app is created at once, installed by a background job',
      params: workspaceIdParams,
      body: installAppRequest,
      response: installAppResponse,
      handler: async ({ user, params, body }) => {
        const r = await catalog.installApp(user, params.id, body.catalog_id, body.params)
        return {
          app: apps.view(r.app),
          job_id: r.job.id,
          live_installed: true,
          message: r.created
            ? `installing ${body.catalog_id}; poll GET /workspaces/${params.id}/jobs/${r.job.id}`
            : `${body.catalog_id} is already being installed`,
          credentials: r.credentials,
        }
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/jobs/:job_id',
      summary: 'A background job of the workspace (tool or catalog install)',
      params: jobParams,
      response: jobStatusResponse,
      handler: ({ user, params }) => catalog.job(user, params.id, params.job_id),
    }),
  ]
}
