import { z } from 'zod'
import { defineRoute, messageSchema } from '../http/route.ts'
import {
  createWorkspaceRequest,
  flatWorkspace,
  getWorkspaceResponse,
  listWorkspacesResponse,
  resizeWorkspaceRequest,
  resizeWorkspaceResponse,
  toFlatWorkspace,
  updateEnvRequest,
  workspaceIdParams,
  type GetWorkspaceResponse,
} from './schemas.ts'
import type { WorkspaceService } from './service.ts'

const tag = 'workspaces'
const flat = { schema: flatWorkspace, from: toFlatWorkspace }

export function workspaceRoutes(ws: WorkspaceService) {
  const action = (
    verb: 'start' | 'stop' | 'cancel' | 'retry' | 'pause' | 'resume',
    summary: string,
  ) =>
    defineRoute({
      method: 'POST',
      path: `/workspaces/:id/${verb}`,
      summary,
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      response: getWorkspaceResponse,
      flat,
      handler: async ({ user, params }): Promise<GetWorkspaceResponse> =>
        ws.describe(await ws[verb](user, params.id)),
    })

  return [
    defineRoute({
      method: 'GET',
      path: '/workspaces',
      summary: 'List your workspaces',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      response: listWorkspacesResponse,
      flat: {
        schema: z.array(flatWorkspace),
        from: (r: z.infer<typeof listWorkspacesResponse>) =>
          r.vms.map((vm) => ({ ...vm, failure: null })),
      },
      handler: async ({ user }) => ({ vms: (await ws.list(user)).map((r) => ws.view(r)) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/workspaces',
      summary: 'Create a workspace (status provisioned; start it to boot the VM)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      body: createWorkspaceRequest,
      status: 201,
      response: getWorkspaceResponse,
      flat,
      handler: async ({ user, body }) => ws.describe(await ws.create(user, body)),
    }),
    defineRoute({
      method: 'GET',
      path: '/workspaces/:id',
      summary: 'Get a workspace',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      response: getWorkspaceResponse,
      flat,
      handler: async ({ user, params }) => ws.describe(await ws.get(user, params.id)),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/workspaces/:id',
      summary: 'Delete a workspace: its VM, disk and every file of it',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        await ws.remove(user, params.id)
        return { message: `workspace ${params.id} is being deleted` }
      },
    }),
    action('start', 'Start a workspace (boots its VM; poll until status is running)'),
    action('stop', 'Stop a workspace (the VM shuts down, the disk is kept)'),
    action('cancel', 'Cancel a start in progress'),
    action('retry', 'Retry a failed workspace'),
    action(
      'pause',
      'Pause a running workspace: memory and device state are saved and its RAM and CPU freed (poll until status is paused)',
    ),
    action(
      'resume',
      'Resume a paused workspace with every process where it was (poll until status is running)',
    ),
    defineRoute({
      method: 'PUT',
      path: '/workspaces/:id/resources',
      summary: 'Resize a stopped workspace (RAM, vCPUs, disk — the disk only grows)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      body: resizeWorkspaceRequest,
      response: resizeWorkspaceResponse,
      flat: { schema: flatWorkspace, from: (r) => ({ ...r.vm, failure: null }) },
      handler: async ({ user, params, body }) => ({
        vm: ws.view(await ws.resize(user, params.id, stripNull(body))),
        message: 'resources updated; they apply at the next start',
      }),
    }),
    defineRoute({
      method: 'POST',
      path: '/workspaces/:id/env',
      summary: 'Set the environment variables injected into the workspace (replaces the set)',
      tag,
      auth: 'user',
      rateClass: 'workspaces',
      params: workspaceIdParams,
      body: updateEnvRequest,
      response: messageSchema,
      handler: async ({ user, params, body }) => {
        const row = await ws.setEnv(user, params.id, body.env_vars)
        const n = Object.keys(body.env_vars).length
        return {
          message:
            row.status === 'running'
              ? `${n} environment variables set and applied to the running workspace`
              : `${n} environment variables set; they apply when the workspace starts`,
        }
      },
    }),
  ]
}

function stripNull<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v != null)) as never
}
