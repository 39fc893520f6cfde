import { z } from 'zod'
import { bearerToken } from '../auth/guard.ts'
import { defineRoute, messageSchema } from '../http/route.ts'
import { workspaceIdParams } from '../workspaces/schemas.ts'
import {
  appHealthResponse,
  appIdParams,
  appSchema,
  createAppRequest,
  exposePortRequest,
  exposePortResponse,
  getAppResponse,
  listAppsResponse,
  listeningPortsResponse,
  reconcileAppsResponse,
  serviceActionResponse,
  updateAppRequest,
  visibilityRequest,
} from './schemas.ts'
import type { AppControl } from './control.ts'
import type { AppService } from './service.ts'

const tag = 'apps'
const common = { tag, auth: 'user' as const, rateClass: 'apps' as const }

export function appRoutes(apps: AppService, control: AppControl) {
  const one = { schema: appSchema, from: (r: { app: z.infer<typeof appSchema> }) => r.app }
  const action = (verb: 'start' | 'stop' | 'restart', summary: string) =>
    defineRoute({
      ...common,
      method: 'POST',
      path: `/apps/:id/${verb}`,
      summary,
      params: appIdParams,
      response: serviceActionResponse,
      handler: ({ user, params }) => control.act(user, params.id, verb),
    })

  return [
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps',
      summary: 'List your apps',
      response: listAppsResponse,
      flat: { schema: z.array(appSchema), from: (r) => r.apps },
      handler: async ({ user }) => ({ apps: (await apps.list(user)).map((a) => apps.view(a)) }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/apps',
      summary: 'Expose a port of a workspace as <name>.<domain> (private until you change it)',
      body: createAppRequest,
      status: 201,
      response: getAppResponse,
      flat: one,
      handler: async ({ user, body }) => ({ app: apps.view(await apps.create(user, body)) }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id',
      summary: 'Get an app',
      params: appIdParams,
      response: getAppResponse,
      flat: one,
      handler: async ({ user, params }) => ({ app: apps.view(await apps.get(user, params.id)) }),
    }),
    defineRoute({
      ...common,
      method: 'PATCH',
      path: '/apps/:id',
      summary: 'Update an app (name = subdomain, port, visibility, route status…)',
      params: appIdParams,
      body: updateAppRequest,
      response: getAppResponse,
      flat: one,
      handler: async ({ user, params, body }) => ({
        app: apps.view(await apps.update(user, params.id, body)),
      }),
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/apps/:id',
      summary: 'Delete an app (its route; the service in the workspace is untouched)',
      params: appIdParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        await apps.remove(user, params.id)
        return { message: `app ${params.id} deleted` }
      },
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      path: '/apps/:id/visibility',
      summary: 'Set who may reach the app: private (owner), privileged (owner + emails), public',
      params: appIdParams,
      body: visibilityRequest,
      response: getAppResponse,
      flat: one,
      handler: async ({ user, params, body }) => ({
        app: apps.view(
          await apps.setVisibility(user, params.id, body.visibility, body.allowed_emails),
        ),
      }),
    }),
    action('start', "Start the app's systemd unit in its workspace and switch its route on"),
    action('stop', "Switch the app's route off (404 at the router) and stop its unit"),
    action('restart', "Restart the app's unit (its route stays on)"),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/apps/:id/login-link',
      summary: 'A 5-minute link that logs a browser in to a private or privileged app',
      params: appIdParams,
      body: z.object({ next: z.string().startsWith('/').max(2048).optional() }).optional(),
      response: z.object({ url: z.string(), expires_at: z.string() }).meta({ id: 'AppLoginLink' }),
      handler: async ({ user, params, body, request }) =>
        apps.loginLink(
          user,
          params.id,
          bearerToken(request.headers.authorization) ?? '',
          body?.next,
        ),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/health',
      summary: 'Is the app live (answers HTTP), is its port open, what runs it',
      params: appIdParams,
      response: appHealthResponse,
      handler: async ({ user, params }) => apps.health(user, params.id),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/listening-ports',
      summary: 'TCP ports listening in a running workspace',
      params: workspaceIdParams,
      response: listeningPortsResponse,
      handler: async ({ user, params }) => ({ ports: await apps.listeningPorts(user, params.id) }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/expose-port',
      summary: 'Detect the process on a port (step detect) or route it as an app (step wrap)',
      params: workspaceIdParams,
      body: exposePortRequest,
      response: exposePortResponse,
      handler: async ({ user, params, body }) => apps.exposePort(user, params.id, body),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/reconcile-apps',
      summary: "Create the template's expected apps that are missing (idempotent)",
      params: workspaceIdParams,
      response: reconcileAppsResponse,
      handler: async ({ user, params }) => {
        const { created, existing } = await apps.reconcile(user, params.id)
        return {
          created: created.map((a) => apps.view(a)),
          existing: existing.map((a) => apps.view(a)),
          install_jobs: {},
        }
      },
    }),
  ]
}
