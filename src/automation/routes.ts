import type { z } from 'zod'
import type { User } from '../auth/store.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { defineRoute, messageSchema } from '../http/route.ts'
import { newId, nowIso } from '../lib/ids.ts'
import { renderUnit } from './guest.ts'
import { specToPlanned, toUnitSpec } from './plan.ts'
import {
  createServiceSpecRequest,
  createSetupScriptRequest,
  idParams,
  serviceSpecResponse,
  serviceSpecsListResponse,
  setupScriptResponse,
  setupScriptsListResponse,
  updateServiceSpecRequest,
  updateSetupScriptRequest,
  type ServiceSpecView,
  type SetupScriptView,
} from './schemas.ts'
import type { AutomationStore, ServiceSpecRow, SetupScriptRow } from './store.ts'

const common = { tag: 'automation', auth: 'user', rateClass: 'workspaces' } as const

export const toScriptView = (r: SetupScriptRow): SetupScriptView => ({
  id: r.id,
  user_id: r.user_id,
  name: r.name,
  content: r.content,
  run_on: r.run_on,
  script_order: r.script_order,
  source: 'user',
  created_at: r.created_at,
  updated_at: r.updated_at,
})

export const toSpecView = (r: ServiceSpecRow): ServiceSpecView => ({
  id: r.id,
  user_id: r.user_id,
  name: r.name,
  exec_start: r.exec_start,
  env_vars: JSON.parse(r.env_vars) as Record<string, string>,
  environment_file: r.environment_file,
  restart_policy: r.restart_policy,
  auto_enable: r.auto_enable === 1,
  setup_script: r.setup_script || null,
  systemd_unit_preview: renderUnit(toUnitSpec(specToPlanned(r))),
  source: 'user',
  created_at: r.created_at,
  updated_at: r.updated_at,
})

/** Setup scripts and service specs: the user's library, attached to workspaces by id. */
export function automationRoutes(store: AutomationStore) {
  const script = async (user: User, id: string) => {
    const row = await store.getScript(user.id, id)
    if (!row) throw notFound('setup script', id)
    return row
  }
  const spec = async (user: User, id: string) => {
    const row = await store.getSpec(user.id, id)
    if (!row) throw notFound('service spec', id)
    return row
  }
  const nameFree = async (user: User, name: string, exceptId?: string) => {
    if (await store.specNameTaken(user.id, name, exceptId)) {
      throw new ApiError('NAME_TAKEN', `you already have a service spec named "${name}"`)
    }
  }
  // Two concurrent creates with one name: the unique constraint decides.
  const uniqueName = (name: string) => (err: unknown) => {
    if (String(err).includes('UNIQUE')) {
      throw new ApiError('NAME_TAKEN', `you already have a service spec named "${name}"`)
    }
    throw err
  }

  return [
    defineRoute({
      ...common,
      method: 'GET',
      path: '/setup-scripts',
      summary: 'List your setup scripts (by script_order, then name)',
      response: setupScriptsListResponse,
      handler: async ({ user }) => ({
        scripts: (await store.listScripts(user.id)).map(toScriptView),
      }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/setup-scripts',
      summary: 'Create a setup script (bash, run as developer with sudo in /home/developer)',
      body: createSetupScriptRequest,
      status: 201,
      response: setupScriptResponse,
      handler: async ({ user, body }) => {
        const now = nowIso()
        const row: SetupScriptRow = {
          id: newId('ss'),
          user_id: user.id,
          name: body.name,
          content: body.content,
          run_on: body.run_on,
          script_order: body.script_order ?? 0,
          created_at: now,
          updated_at: now,
        }
        await store.insertScript(row)
        return toScriptView(row)
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/setup-scripts/:id',
      summary: 'Get a setup script',
      params: idParams,
      response: setupScriptResponse,
      handler: async ({ user, params }) => toScriptView(await script(user, params.id)),
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      path: '/setup-scripts/:id',
      summary: 'Update a setup script (omitted or null fields are kept); applies at the next start',
      params: idParams,
      body: updateSetupScriptRequest,
      response: setupScriptResponse,
      handler: async ({ user, params, body }) => {
        await script(user, params.id)
        return toScriptView(await store.updateScript(params.id, defined(body)))
      },
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/setup-scripts/:id',
      summary: 'Delete a setup script (workspaces it is attached to skip it from then on)',
      params: idParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        if (!(await store.deleteScript(user.id, params.id)))
          throw notFound('setup script', params.id)
        return { message: `setup script ${params.id} deleted` }
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/service-specs',
      summary: 'List your service specs',
      response: serviceSpecsListResponse,
      handler: async ({ user }) => ({ services: (await store.listSpecs(user.id)).map(toSpecView) }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/service-specs',
      summary: 'Create a service spec (a systemd unit rigbox-svc-<name>.service run as developer)',
      body: createServiceSpecRequest,
      status: 201,
      response: serviceSpecResponse,
      handler: async ({ user, body }) => {
        await nameFree(user, body.name)
        const now = nowIso()
        const row: ServiceSpecRow = {
          id: newId('svc'),
          user_id: user.id,
          name: body.name,
          exec_start: body.exec_start,
          env_vars: JSON.stringify(body.env_vars ?? {}),
          environment_file: body.environment_file || null,
          restart_policy: body.restart_policy,
          auto_enable: body.auto_enable ? 1 : 0,
          setup_script: body.setup_script ?? '',
          created_at: now,
          updated_at: now,
        }
        await store.insertSpec(row).catch(uniqueName(body.name))
        return toSpecView(row)
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/service-specs/:id',
      summary: 'Get a service spec, with a preview of its systemd unit',
      params: idParams,
      response: serviceSpecResponse,
      handler: async ({ user, params }) => toSpecView(await spec(user, params.id)),
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      path: '/service-specs/:id',
      summary:
        'Update a service spec (omitted or null fields are kept; environment_file "" clears it); applies at the next start',
      params: idParams,
      body: updateServiceSpecRequest,
      response: serviceSpecResponse,
      handler: async ({ user, params, body }) => {
        await spec(user, params.id)
        if (body.name) await nameFree(user, body.name, params.id)
        const patch = specPatch(body)
        const row = await store
          .updateSpec(params.id, patch)
          .catch(uniqueName(body.name ?? params.id))
        return toSpecView(row)
      },
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/service-specs/:id',
      summary: 'Delete a service spec (its unit is removed from workspaces at their next start)',
      params: idParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        if (!(await store.deleteSpec(user.id, params.id))) throw notFound('service spec', params.id)
        return { message: `service spec ${params.id} deleted` }
      },
    }),
  ]
}

/** PUT keeps what is omitted or null, as the reference's all-nullable update bodies mean. */
function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], null | undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v != null)) as never
}

function specPatch(body: z.infer<typeof updateServiceSpecRequest>) {
  const b = defined(body)
  return {
    ...(b.name !== undefined && { name: b.name }),
    ...(b.exec_start !== undefined && { exec_start: b.exec_start }),
    ...(b.env_vars !== undefined && { env_vars: JSON.stringify(b.env_vars) }),
    ...(b.environment_file !== undefined && { environment_file: b.environment_file || null }),
    ...(b.restart_policy !== undefined && { restart_policy: b.restart_policy }),
    ...(b.auto_enable !== undefined && { auto_enable: b.auto_enable ? 1 : 0 }),
    ...(b.setup_script !== undefined && { setup_script: b.setup_script }),
  }
}
