import type { SecretBox } from '../ai/secrets.ts'
import type { User } from '../auth/store.ts'
import { paramColumns, validateParamSpecs, validateParamValues } from '../apps/params.ts'
import type { AppService } from '../apps/service.ts'
import { ApiError } from '../http/errors.ts'
import { limitsFor } from '../limits/service.ts'
import type { CreateInput, WorkspaceService } from '../workspaces/service.ts'
import { findTemplate, type Template } from './catalog.ts'

export interface DeployDeps {
  workspaces: WorkspaceService
  apps: AppService
  /** Seals the sensitive values of app params. */
  secrets: SecretBox
}

export type QuickDeployInput = Omit<CreateInput, 'name'> & {
  template_id: string
  name?: string | null
  app_params?: Record<string, Record<string, string>> | null
}

/**
 * Quick deploy: the workspace (template image and floors), then the template's expected apps,
 * each backed by its template service and carrying its params. Everything that can refuse the
 * request is checked before anything is created; if the apps still fail, the workspace goes too,
 * so a refused deploy leaves nothing behind.
 */
export async function quickDeploy(d: DeployDeps, user: User, input: QuickDeployInput) {
  const { app_params, ...create } = input
  const template = findTemplate(input.template_id)
  const values = app_params ?? {}
  if (template) {
    checkAppParams(template, values)
    await checkAppLimit(d, user, template)
  }
  const row = await d.workspaces.quickDeploy(user, create)
  try {
    const params = Object.fromEntries(
      (template?.expected_apps ?? []).map((app) => [
        app.name,
        paramColumns(d.secrets, row.id, app.configurable_params ?? [], values[app.name] ?? {}),
      ]),
    )
    const { created } = await d.apps.reconcile(user, row.id, { params })
    return { row, apps: created, catalog: input.catalog_ids ?? [] }
  } catch (err) {
    await d.workspaces.remove(user, row.id).catch(() => undefined)
    throw err
  }
}

/** Values only for the template's apps and their declared params; required ones present. */
function checkAppParams(template: Template, values: Record<string, Record<string, string>>) {
  const names = template.expected_apps.map((a) => a.name)
  for (const name of Object.keys(values)) {
    if (!names.includes(name)) {
      throw new ApiError(
        'BAD_REQUEST',
        `app_params: template ${template.id} has no app "${name}" (its apps: ${names.join(', ') || 'none'})`,
      )
    }
  }
  for (const app of template.expected_apps) {
    const specs = validateParamSpecs(app.configurable_params ?? [])
    try {
      validateParamValues(specs, values[app.name] ?? {}, { requireAll: true })
    } catch (err) {
      if (err instanceof ApiError) {
        throw new ApiError(err.code, `app_params.${app.name}: ${err.message}`)
      }
      throw err
    }
  }
}

async function checkAppLimit(d: DeployDeps, user: User, template: Template) {
  const max = limitsFor(user).max_apps
  const requested = (await d.apps.list(user)).length + template.expected_apps.length
  if (template.expected_apps.length && requested > max) {
    throw new ApiError(
      'LIMIT_EXCEEDED',
      `plan limit max_apps exceeded: template ${template.id} brings ${template.expected_apps.length} app(s) and your plan allows ${max}`,
      { limit: 'max_apps', allowed: max, requested },
    )
  }
}
