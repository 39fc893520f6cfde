import { ApiError } from '../http/errors.ts'
import { findTemplate } from '../templates/catalog.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import { unitName, type RestartPolicy, type UnitSpec } from './guest.ts'
import type { AutomationStore, ServiceSpecRow } from './store.ts'
import type { PlannedScript, PlannedService } from './types.ts'

/** What a workspace's boot runs: scripts in order, then its services. */
export interface Plan {
  scripts: PlannedScript[]
  services: PlannedService[]
}

export const SERVICE_UNIT_PREFIX = 'rigbox-svc-'
export const HOME = '/home/developer'

export function specToPlanned(spec: ServiceSpecRow): PlannedService {
  return {
    name: spec.name,
    exec_start: spec.exec_start,
    env_vars: JSON.parse(spec.env_vars) as Record<string, string>,
    environment_file: spec.environment_file,
    restart_policy: spec.restart_policy as RestartPolicy,
    auto_enable: spec.auto_enable === 1,
    setup_script: spec.setup_script,
    working_directory: HOME,
    port: null,
    source: 'user',
  }
}

/** The unit a planned service becomes (the workspace env comes from the manager's own). */
export function toUnitSpec(s: PlannedService): UnitSpec {
  return {
    unit: unitName('svc', s.name),
    description: `Rigbox service ${s.name}`,
    execStart: s.exec_start,
    user: 'developer',
    workingDirectory: s.working_directory || HOME,
    environment: s.env_vars,
    environmentFiles: s.environment_file ? [s.environment_file] : [],
    restart: s.restart_policy,
  }
}

/**
 * The template's automation first, then the user's attached scripts by `script_order` (then
 * name) and attached specs. What was deleted since it was attached is simply not there; a user
 * spec named like one of the template's services gives way to it (the template's apps use it).
 */
export async function planFor(row: WorkspaceRow, store: AutomationStore): Promise<Plan> {
  const template = row.template_id ? findTemplate(row.template_id) : undefined
  const auto = template?.automation
  const scriptIds = [...new Set(JSON.parse(row.setup_script_ids) as string[])]
  const specIds = [...new Set(JSON.parse(row.service_spec_ids) as string[])]
  const userScripts = (await store.scriptsByIds(row.user_id, scriptIds)).sort(
    (a, b) => a.script_order - b.script_order || a.name.localeCompare(b.name),
  )
  const scripts: PlannedScript[] = [
    ...(auto?.setup_scripts ?? []).map((s) => ({
      id: `tpl:${template!.id}:${s.name}`,
      name: s.name,
      content: s.content,
      run_on: s.run_on,
      source: 'template' as const,
    })),
    ...userScripts.map((s) => ({
      id: s.id,
      name: s.name,
      content: s.content,
      run_on: s.run_on,
      source: 'user' as const,
    })),
  ]
  const services: PlannedService[] = (auto?.services ?? []).map((s) => ({
    ...s,
    source: 'template' as const,
  }))
  const specs = (await store.specsByIds(row.user_id, specIds)).sort((a, b) =>
    a.name.localeCompare(b.name),
  )
  for (const spec of specs) {
    if (!services.some((s) => s.name === spec.name)) services.push(specToPlanned(spec))
  }
  return { scripts, services }
}

const MAX_ATTACHED = 50

/**
 * For WorkspaceService's create (and so quick deploy): every attached id must be one of the
 * user's own scripts or specs, so a typo is a 400 naming it instead of a silent no-op at boot.
 */
export function attachmentChecker(store: AutomationStore) {
  return async (
    user: { id: string },
    input: { setup_script_ids?: string[] | null; service_spec_ids?: string[] | null },
  ) => {
    const check = async (
      ids: string[] | null | undefined,
      field: string,
      what: string,
      find: (userId: string, ids: string[]) => Promise<{ id: string }[]>,
    ) => {
      if (!ids?.length) return
      if (ids.length > MAX_ATTACHED) {
        throw new ApiError('VALIDATION_ERROR', `${field}: at most ${MAX_ATTACHED} ids`)
      }
      const found = new Set((await find(user.id, ids)).map((r) => r.id))
      const missing = ids.filter((id) => !found.has(id))
      if (missing.length) {
        throw new ApiError(
          'VALIDATION_ERROR',
          `${field}: no ${what} ${missing.map((m) => `"${m}"`).join(', ')} in your library`,
        )
      }
    }
    await check(input.setup_script_ids, 'setup_script_ids', 'setup script', (u, ids) =>
      store.scriptsByIds(u, ids),
    )
    await check(input.service_spec_ids, 'service_spec_ids', 'service spec', (u, ids) =>
      store.specsByIds(u, ids),
    )
  }
}
