import type { SecretBox } from '../ai/secrets.ts'
import type { User } from '../auth/store.ts'
import type { GuestUnits } from '../automation/guest.ts'
import type { AppControl } from './control.ts'
import {
  deliverParams,
  publicValues,
  sealValues,
  specsOf,
  storedOf,
  validateParamSpecs,
  validateParamValues,
  type ParamSpec,
} from './params.ts'
import type { AppService } from './service.ts'
import type { AppRow, AppStore } from './store.ts'

export interface AppParamsDeps {
  apps: AppService
  store: AppStore
  control: AppControl
  secrets: SecretBox
}

/**
 * GET|PATCH /apps/{id}/params: values are validated against the app's specs, stored (sensitive
 * ones sealed), and delivered at once to a running workspace (env file + drop-in + restart);
 * a stopped one gets them from the boot runner's deliverParams at its next start.
 */
export class AppParams {
  constructor(private readonly d: AppParamsDeps) {}

  async get(user: User, id: string) {
    const app = await this.d.apps.get(user, id)
    return { specs: specsOf(app), values: publicValues(app) }
  }

  async update(user: User, id: string, values: Record<string, string>): Promise<AppRow> {
    const app = await this.d.apps.get(user, id)
    const specs = specsOf(app)
    validateParamValues(specs, values)
    const stored = sealValues(this.d.secrets, app.workspace_id, specs, storedOf(app), values)
    const row = await this.d.store.update(app.id, { param_values: JSON.stringify(stored) })
    await this.deliverIfRunning(user, row)
    return this.d.store.getOwned(user.id, row.id).then((r) => r ?? row)
  }

  /** Replaces an app's specs (templates, catalog, `rig deploy`); values of dropped keys go. */
  async setSpecs(app: AppRow, specs: unknown, values: Record<string, string> = {}) {
    const checked: ParamSpec[] = validateParamSpecs(specs)
    const keys = new Set(checked.map((s) => s.key))
    const kept = Object.fromEntries(Object.entries(storedOf(app)).filter(([k]) => keys.has(k)))
    validateParamValues(checked, values)
    const stored = sealValues(this.d.secrets, app.workspace_id, checked, kept, values)
    return this.d.store.update(app.id, {
      params: JSON.stringify(checked),
      param_values: JSON.stringify(stored),
    })
  }

  /**
   * At a workspace's boot, before its services start: every app's params reach its unit (values
   * set while the workspace was stopped included). Idempotent, so it runs at every boot.
   */
  async deliverAll(workspaceId: string, units: GuestUnits) {
    for (const app of await this.d.store.listByWorkspace(workspaceId)) {
      if (app.service_unit && app.params !== '[]') await deliverParams(units, app, this.d.secrets)
    }
  }

  private async deliverIfRunning(user: User, app: AppRow) {
    const guest = await this.d.control.guest(user, app).catch(() => null)
    if (!guest) return
    await this.d.control.resolveUnit(guest.ws, app)
    const { restarted } = await deliverParams(guest.units, app, this.d.secrets)
    // Answer once the app serves again with its new env, as start/restart do.
    if (restarted) await this.d.control.waitListening(guest.ws, app.port)
  }
}
