import type { AppStore } from '../apps/store.ts'
import type { User } from '../auth/store.ts'
import { ApiError, notFound } from '../http/errors.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import { GuestUnits, unitName, type UnitState } from './guest.ts'
import { planFor } from './plan.ts'
import type { AutomationStore } from './store.ts'
import type { WorkspaceServiceView } from './schemas.ts'

export interface ServicesDeps {
  workspaces: WorkspaceService
  automation: AutomationStore
  apps: AppStore
  node: NodeClient | null
}

interface Entry {
  name: string
  unit: string
  port: number | null
  source: string
  exposed: boolean
  created_at: string
  updated_at: string
}

/** systemd's states as the services list words them. */
export function serviceStatus(st: UnitState | undefined, portOpen: boolean | null): string {
  if (!st || !st.loaded) return 'not_installed'
  if (st.active === 'active') return portOpen === false ? 'starting' : 'running'
  if (st.active === 'activating') return st.sub === 'auto-restart' ? 'restarting' : 'starting'
  if (st.active === 'deactivating') return 'stopping'
  if (st.active === 'failed') return 'failed'
  return 'stopped'
}

/**
 * A workspace's services: its planned ones (template and attached specs) and the apps served by
 * a unit, with their live state from the guest's systemd and whether their port answers.
 */
export class WorkspaceServices {
  constructor(private readonly d: ServicesDeps) {}

  private async entries(row: WorkspaceRow): Promise<Entry[]> {
    const plan = await planFor(row, this.d.automation)
    const apps = await this.d.apps.listByWorkspace(row.id)
    const out: Entry[] = plan.services.map((s) => {
      const unit = unitName('svc', s.name)
      const app = apps.find((a) => a.service_unit === unit || (s.port && a.port === s.port))
      return {
        name: s.name,
        unit,
        port: s.port ?? app?.port ?? null,
        source: s.source,
        exposed: Boolean(app),
        created_at: row.created_at,
        updated_at: row.updated_at,
      }
    })
    for (const a of apps) {
      if (!a.service_unit || out.some((e) => e.unit === a.service_unit || e.name === a.name)) {
        continue
      }
      out.push({
        name: a.name,
        unit: a.service_unit,
        port: a.port,
        source: 'app',
        exposed: true,
        created_at: a.created_at,
        updated_at: a.updated_at,
      })
    }
    return out
  }

  private async view(row: WorkspaceRow, entries: Entry[]): Promise<WorkspaceServiceView[]> {
    let states = new Map<string, UnitState>()
    let ports: Set<number> | null = null
    // A stopped workspace runs nothing: no guest call to say so.
    const running = row.status === 'running' && this.d.node
    if (running && entries.length) {
      states = await new GuestUnits(this.d.node!, row.id).states(entries.map((e) => e.unit))
      if (entries.some((e) => e.port)) {
        ports = new Set((await this.d.node!.listeningPorts(row.id)).map((p) => p.port))
      }
    }
    return entries.map((e) => ({
      id: `${row.id}:${e.name}`,
      workspace_id: row.id,
      name: e.name,
      kind: 'service',
      health_cmd:
        `systemctl is-active ${e.unit}` +
        (e.port ? ` && curl -fsS -o /dev/null http://127.0.0.1:${e.port}/` : ''),
      status: running
        ? serviceStatus(states.get(e.unit), e.port && ports ? ports.has(e.port) : null)
        : 'stopped',
      exposed: e.exposed,
      source: e.source,
      port: e.port,
      unit_name: e.unit,
      log_sources: [
        { source_type: 'systemd_unit', source_ref: e.unit, display_name: null, is_primary: true },
      ],
      created_at: e.created_at,
      updated_at: e.updated_at,
    }))
  }

  async list(user: User, id: string) {
    const row = await this.d.workspaces.get(user, id)
    return this.view(row, await this.entries(row))
  }

  async get(user: User, id: string, name: string) {
    const row = await this.d.workspaces.get(user, id)
    const entry = (await this.entries(row)).find((e) => e.name === name)
    if (!entry) throw notFound('service', name)
    return (await this.view(row, [entry]))[0]
  }

  async logs(user: User, id: string, name: string, lines: number) {
    const row = await this.d.workspaces.get(user, id)
    const entry = (await this.entries(row)).find((e) => e.name === name)
    if (!entry) throw notFound('service', name)
    if (!this.d.node) throw new ApiError('NODE_UNAVAILABLE', 'no compute node is available')
    if (row.status !== 'running') {
      throw new ApiError('INVALID_STATE', `workspace ${id} is ${row.status}; start it first`)
    }
    const got = await new GuestUnits(this.d.node, row.id).logs(entry.unit, lines + 1)
    const page = got.slice(-lines)
    return {
      lines: page.map((l, i) => ({ line_number: i, message: l.message, timestamp: l.timestamp })),
      has_more: got.length > lines,
      cursor: page.at(-1)?.cursor ?? null,
    }
  }
}
