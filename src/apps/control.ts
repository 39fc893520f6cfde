import type { User } from '../auth/store.ts'
import { GuestUnits } from '../automation/guest.ts'
import { ApiError } from '../http/errors.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import type { AppService } from './service.ts'
import type { AppRow, AppStore } from './store.ts'

export interface AppControlDeps {
  apps: AppService
  store: AppStore
  workspaces: WorkspaceService
  node: NodeClient | null
}

export type AppVerb = 'start' | 'stop' | 'restart'

/** Units an app must never be allowed to stop: the guest's own plumbing. */
const PROTECTED_UNIT = /^(rigbox-agent|ssh|sshd|dbus|systemd-[\w-]+|getty@[\w-]*)\.service$/

/** How long start/restart wait for the app's port to listen again before answering. */
const PORT_WAIT_MS = 15_000

/**
 * Apps backed by a systemd unit in their VM: start/stop/restart act on the unit and switch the
 * route with it. The unit is the app's `service_unit`, or the one found serving its port (then
 * remembered).
 */
export class AppControl {
  constructor(private readonly d: AppControlDeps) {}

  /** The app's workspace, running, with its guest units; 409 otherwise. */
  async guest(user: User, app: AppRow): Promise<{ ws: WorkspaceRow; units: GuestUnits }> {
    const ws = await this.d.workspaces.get(user, app.workspace_id)
    if (ws.status !== 'running' || !this.d.node) {
      throw new ApiError(
        'INVALID_STATE',
        `workspace ${ws.id} is ${ws.status}; start it before acting on app ${app.name}`,
      )
    }
    return { ws, units: new GuestUnits(this.d.node, ws.id) }
  }

  /**
   * The unit serving the app: its recorded `service_unit`, else the unit of the process
   * listening on its port (persisted on the app). Null when none can be found.
   */
  async resolveUnit(ws: WorkspaceRow, app: AppRow): Promise<string | null> {
    if (app.service_unit) return app.service_unit
    const node = this.d.node
    if (!node) return null
    const listening = (await node.listeningPorts(ws.id)).find((p) => p.port === app.port)
    if (!listening?.pid) return null
    const unit = await this.d.apps.unitOf(ws, listening.pid)
    if (!unit || PROTECTED_UNIT.test(unit)) return null
    await this.d.store.update(app.id, { service_unit: unit })
    app.service_unit = unit
    return unit
  }

  async act(user: User, id: string, verb: AppVerb) {
    const app = await this.d.apps.get(user, id)
    const { ws, units } = await this.guest(user, app)
    const unit = await this.resolveUnit(ws, app)
    if (!unit) {
      throw new ApiError(
        'INVALID_STATE',
        `app ${app.name} has no systemd unit: nothing serving port ${app.port} in ${ws.name} ` +
          'runs as a unit (run it as a service spec, or as any systemd service, then retry)',
      )
    }
    if (PROTECTED_UNIT.test(unit)) {
      throw new ApiError('INVALID_STATE', `${unit} is part of the workspace itself; not touched`)
    }
    let row: AppRow
    if (verb === 'stop') {
      // The route first, so no request lands on a half-stopped app.
      row = await this.d.store.update(app.id, { status: 'inactive' })
      await units.systemctl('stop', [unit])
    } else {
      await units.systemctl(verb, [unit])
      await this.waitListening(ws, app.port)
      row = await this.d.store.update(app.id, { status: 'active' })
    }
    const done = { start: 'started', stop: 'stopped', restart: 'restarted' }[verb]
    const route = verb === 'stop' ? 'off' : 'on'
    return {
      message: `${unit} ${done}; the route for ${row.subdomain} is ${route}`,
      app: this.d.apps.view(row),
      service_name: unit,
    }
  }

  /** Best effort: a slow app still gets its route, the health endpoint tells the rest. */
  async waitListening(ws: WorkspaceRow, port: number) {
    const node = this.d.node!
    const until = Date.now() + PORT_WAIT_MS
    while (Date.now() < until) {
      const ports = await node.listeningPorts(ws.id).catch(() => [])
      if (ports.some((p) => p.port === port)) return
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}
