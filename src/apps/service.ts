import http from 'node:http'
import type { User } from '../auth/store.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { newId, nowIso } from '../lib/ids.ts'
import { limitsFor } from '../limits/service.ts'
import type { GuestPortTarget, NodeClient } from '../node/types.ts'
import { unitName } from '../automation/guest.ts'
import { findTemplate } from '../templates/catalog.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import type { App } from './schemas.ts'
import type { AppRow, AppStore } from './store.ts'
import { issueLoginToken } from '../router/tokens.ts'
import type { AppLoginStore } from './logins.ts'

export interface AppDeps {
  store: AppStore
  workspaces: WorkspaceService
  node: NodeClient | null
  /** `http://{sub}.localhost:8081`-style template of public URLs. */
  urlOf: (subdomain: string) => string
  /** Signs browser login links the router accepts. */
  sessionSecret: Buffer
  /** Records each link, so it works once and dies with the key that made it. */
  logins: AppLoginStore
}

const LOGIN_LINK_TTL_MS = 5 * 60_000

export interface CreateAppInput {
  name: string
  workspace_id: string
  port?: number | null
  protocol?: string | null
  description?: string | null
  metadata?: unknown
  app_kind?: string
  managed?: boolean
  system_tags?: string[]
  /** The unit serving it in the VM (start/stop/restart act on it). */
  service_unit?: string | null
  /** JSON ParamSpec[] / sealed values, as src/apps/params.ts stores them. */
  params?: string
  param_values?: string
  depends_on?: string[]
  status?: AppRow['status']
}

const DEFAULT_PORT = 3000

export class AppService {
  constructor(private readonly d: AppDeps) {}

  view(row: AppRow): App {
    return {
      id: row.id,
      name: row.name,
      subdomain: row.subdomain,
      url: this.d.urlOf(row.subdomain),
      user_id: row.user_id,
      node_id: row.node_id,
      workspace_id: row.workspace_id,
      port: row.port,
      protocol: row.protocol,
      visibility: row.visibility,
      allowed_emails: JSON.parse(row.allowed_emails) as string[],
      status: row.status,
      description: row.description,
      metadata: JSON.parse(row.metadata) as unknown,
      system_tags: JSON.parse(row.system_tags) as string[],
      app_kind: row.app_kind,
      managed: row.managed === 1,
      depends_on: JSON.parse(row.depends_on) as string[],
      custom_domain: null,
      custom_domain_verified: false,
      created_at: row.created_at,
      updated_at: row.updated_at,
    }
  }

  list(user: User) {
    return this.d.store.listByUser(user.id)
  }

  async get(user: User, id: string): Promise<AppRow> {
    const row = await this.d.store.getOwned(user.id, id)
    if (!row) throw notFound('resource', id)
    return row
  }

  async create(user: User, input: CreateAppInput): Promise<AppRow> {
    const ws = await this.d.workspaces.get(user, input.workspace_id)
    const count = (await this.d.store.listByUser(user.id)).length
    const max = limitsFor(user).max_apps
    if (count + 1 > max) {
      throw new ApiError(
        'LIMIT_EXCEEDED',
        `plan limit max_apps exceeded: your plan allows ${max}`,
        {
          limit: 'max_apps',
          allowed: max,
          requested: count + 1,
        },
      )
    }
    await this.ensureFree(input.name)
    const now = nowIso()
    const row: AppRow = {
      id: newId('app'),
      user_id: user.id,
      workspace_id: ws.id,
      node_id: ws.node_id,
      name: input.name,
      subdomain: input.name,
      port: input.port ?? DEFAULT_PORT,
      protocol: input.protocol ?? 'http',
      visibility: 'private',
      allowed_emails: '[]',
      status: input.status ?? 'active',
      description: input.description ?? null,
      metadata: JSON.stringify(input.metadata ?? {}),
      managed: input.managed ? 1 : 0,
      system_tags: JSON.stringify(input.system_tags ?? []),
      app_kind: input.app_kind ?? 'service',
      service_unit: input.service_unit ?? null,
      params: input.params ?? '[]',
      param_values: input.param_values ?? '{}',
      depends_on: JSON.stringify(input.depends_on ?? []),
      created_at: now,
      updated_at: now,
    }
    await this.d.store.insert(row).catch((err: unknown) => {
      if (String(err).includes('UNIQUE')) throw taken(input.name)
      throw err
    })
    return row
  }

  async update(user: User, id: string, patch: Partial<Record<string, unknown>>): Promise<AppRow> {
    const row = await this.get(user, id)
    const next: Parameters<AppStore['update']>[1] = {}
    if (typeof patch.name === 'string' && patch.name !== row.name) {
      await this.ensureFree(patch.name)
      next.name = patch.name
      next.subdomain = patch.name
    }
    if (typeof patch.port === 'number') next.port = patch.port
    if (patch.description !== undefined) next.description = (patch.description as string) ?? null
    if (patch.metadata !== undefined) next.metadata = JSON.stringify(patch.metadata)
    if (patch.status === 'active' || patch.status === 'inactive') next.status = patch.status
    if (patch.visibility) next.visibility = patch.visibility as AppRow['visibility']
    if (Array.isArray(patch.allowed_emails)) {
      next.allowed_emails = JSON.stringify(normalizeEmails(patch.allowed_emails as string[]))
    }
    if (patch.custom_domain) {
      throw new ApiError('BAD_REQUEST', 'custom domains are not supported by this server')
    }
    return this.d.store.update(row.id, next).catch((err: unknown) => {
      if (String(err).includes('UNIQUE')) throw taken(String(patch.name))
      throw err
    })
  }

  async setVisibility(
    user: User,
    id: string,
    visibility: AppRow['visibility'],
    emails?: string[] | null,
  ) {
    const row = await this.get(user, id)
    const allowed = emails ?? (visibility === 'privileged' ? JSON.parse(row.allowed_emails) : [])
    return this.d.store.update(row.id, {
      visibility,
      allowed_emails: JSON.stringify(normalizeEmails(allowed as string[])),
    })
  }

  /**
   * A short-lived, single-use link that logs a browser in to one app: the router checks it, sets
   * an HttpOnly cookie for that app's host only, and redirects to the app. `apiKey` is the key
   * the caller authenticated with: the link and the session it starts end when it is revoked.
   */
  async loginLink(user: User, id: string, apiKey: string, next?: string) {
    const row = await this.get(user, id)
    const now = Date.now()
    const expiresAt = now + LOGIN_LINK_TTL_MS
    const linkId = await this.d.logins.createLink({
      userId: user.id,
      apiKey,
      subdomain: row.subdomain,
      expiresAt,
    })
    if (!linkId) throw new ApiError('UNAUTHORIZED', 'invalid or revoked API key')
    const token = issueLoginToken(this.d.sessionSecret, {
      id: linkId,
      subdomain: row.subdomain,
      userId: user.id,
      email: user.email,
      ttlMs: LOGIN_LINK_TTL_MS,
      now,
    })
    const query = new URLSearchParams({ token, ...(next ? { next } : {}) })
    return {
      url: `${this.d.urlOf(row.subdomain)}/__rigbox/login?${query}`,
      expires_at: new Date(expiresAt).toISOString(),
    }
  }

  async setRouted(user: User, id: string, on: boolean) {
    const row = await this.get(user, id)
    return this.d.store.update(row.id, { status: on ? 'active' : 'inactive' })
  }

  async remove(user: User, id: string) {
    const row = await this.get(user, id)
    await this.d.store.remove(row.id)
  }

  /** Live (answers HTTP), port open (listening in the guest), and the serving process's unit. */
  async health(user: User, id: string) {
    const row = await this.get(user, id)
    const ws = await this.d.workspaces.get(user, row.workspace_id)
    const node = this.d.node
    if (ws.status !== 'running' || !node) {
      return {
        live: false,
        port_open: false,
        port_drift: false,
        service_status: 'stopped',
        status: 'down' as const,
      }
    }
    const listening = (await node.listeningPorts(ws.id)).find((p) => p.port === row.port)
    const unit = listening?.pid ? await this.unitOf(ws, listening.pid) : null
    const service_status = unit
      ? await this.unitState(ws, unit)
      : listening
        ? 'unmanaged'
        : 'unknown'
    const live = listening ? await probeHttp(await node.forwardPort(ws.id, row.port)) : false
    const port_open = Boolean(listening)
    const status = live && port_open ? 'healthy' : port_open ? 'degraded' : 'down'
    return {
      live,
      port_open,
      port_drift: service_status === 'active' && !port_open,
      service_status,
      status,
    } as const
  }

  async listeningPorts(user: User, workspaceId: string) {
    const ws = await this.running(user, workspaceId)
    const exposed = new Set((await this.d.store.listByWorkspace(ws.id)).map((a) => a.port))
    const ports = await this.d.node!.listeningPorts(ws.id)
    const seen = new Set<number>()
    return ports
      .filter((p) => !seen.has(p.port) && seen.add(p.port))
      .map((p) => ({
        port: p.port,
        address: p.address,
        process: p.process,
        already_exposed: exposed.has(p.port),
      }))
  }

  /** Finds the process listening on a port (step detect), or routes it as a new app (wrap). */
  async exposePort(
    user: User,
    workspaceId: string,
    input: { port: number; step: 'detect' | 'wrap'; name?: string | null },
  ) {
    const ws = await this.running(user, workspaceId)
    const listening = (await this.d.node!.listeningPorts(ws.id)).find((p) => p.port === input.port)
    if (!listening?.pid) {
      throw new ApiError('BAD_REQUEST', `nothing is listening on port ${input.port} in ${ws.name}`)
    }
    const info = await this.processInfo(ws, listening.pid)
    const suggested = suggestName(info.processName, input.port, ws.name)
    if (input.step === 'detect') {
      return {
        step: 'detect' as const,
        port: input.port,
        pid: listening.pid,
        ...info.public,
        suggested_name: suggested,
      }
    }
    const app = await this.create(user, {
      name: input.name ?? suggested,
      workspace_id: ws.id,
      port: input.port,
    })
    return {
      step: 'wrap' as const,
      message: `port ${input.port} is routed at ${this.d.urlOf(app.subdomain)}`,
      app: this.view(app),
      service_name: info.public.systemd_unit ?? info.processName,
      needs_restart: false,
    }
  }

  /**
   * Creates the template's expected apps that do not exist yet; safe to repeat. Each is backed by
   * the template service serving it (`app_services`) and declares the template's params;
   * `params` gives an app's checked and sealed columns (src/apps/params.ts paramColumns), else its
   * specs with no values set (the defaults apply).
   */
  async reconcile(
    user: User,
    workspaceId: string,
    opts: { params?: Record<string, { params: string; param_values: string }> } = {},
  ) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    const template = ws.template_id ? findTemplate(ws.template_id) : undefined
    const existing = await this.d.store.listByWorkspace(ws.id)
    const created: AppRow[] = []
    for (const want of template?.expected_apps ?? []) {
      if (existing.some((a) => a.port === want.port && a.managed === 1)) continue
      const name = await this.freeName(`${want.name}-${ws.id.slice(3)}`)
      const service = template?.app_services?.[want.name]
      created.push(
        await this.create(user, {
          name,
          workspace_id: ws.id,
          port: want.port,
          protocol: want.protocol,
          managed: true,
          system_tags: want.system_tags,
          service_unit: service ? unitName('svc', service) : null,
          ...(opts.params?.[want.name] ?? {
            params: JSON.stringify(want.configurable_params ?? []),
            param_values: '{}',
          }),
          depends_on: want.depends_on,
        }),
      )
    }
    return { created, existing }
  }

  private async running(user: User, workspaceId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    if (ws.status !== 'running' || !this.d.node) {
      throw new ApiError('INVALID_STATE', `workspace ${ws.id} is ${ws.status}; start it first`)
    }
    return ws
  }

  private async ensureFree(subdomain: string) {
    if (await this.d.store.bySubdomain(subdomain)) throw taken(subdomain)
  }

  private async freeName(base: string) {
    for (let i = 0; ; i++) {
      const name = i ? `${base}-${i}` : base
      if (!(await this.d.store.bySubdomain(name))) return name
    }
  }

  private async rootExec(ws: WorkspaceRow, command: string) {
    return this.d.node!.exec(ws.id, { command, user: 'root', timeoutMs: 10_000 }, 64 * 1024)
  }

  /** The systemd (system) unit a guest process runs in, from its cgroup; null if none. */
  async unitOf(ws: WorkspaceRow, pid: number): Promise<string | null> {
    const r = await this.rootExec(ws, `cat /proc/${pid}/cgroup 2>/dev/null`)
    const unit = /\/system\.slice\/([^/\s]+\.service)/.exec(r.stdout)?.[1]
    return unit ?? null
  }

  private async unitState(ws: WorkspaceRow, unit: string) {
    const r = await this.rootExec(ws, `systemctl is-active ${JSON.stringify(unit)}`)
    return r.stdout.trim() || 'unknown'
  }

  private async processInfo(ws: WorkspaceRow, pid: number) {
    const r = await this.rootExec(
      ws,
      `cd /proc/${pid} && tr '\\0' ' ' < cmdline; echo; readlink cwd; cat comm; tr '\\0' '\\n' < environ | cut -d= -f1 | tr '\\n' ' '`,
    )
    const [command = '', cwd = '', comm = '', envNames = ''] = r.stdout.split('\n')
    const unit = await this.unitOf(ws, pid)
    return {
      processName: comm.trim() || 'app',
      public: {
        command: command.trim(),
        cwd: cwd.trim(),
        env_vars: envNames.trim().split(/\s+/).filter(Boolean),
        is_systemd: Boolean(unit),
        systemd_unit: unit,
        process_name: comm.trim(),
      },
    }
  }
}

const taken = (name: string) =>
  new ApiError('CONFLICT', `the subdomain "${name}" is taken; choose another app name`)

const normalizeEmails = (xs: string[]) => [...new Set(xs.map((e) => e.trim().toLowerCase()))]

function suggestName(processName: string, port: number, workspace: string) {
  const base = `${processName}-${port}-${workspace}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-')
  return (
    base
      .replace(/^-+|-+$/g, '')
      .slice(0, 63)
      .replace(/-+$/, '') || `app-${port}`
  )
}

/** Any HTTP answer counts as live; a refused or silent port does not. */
function probeHttp(target: GuestPortTarget): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(
      { createConnection: () => target.connect(), path: '/', timeout: 3000 },
      (res) => {
        res.resume()
        resolve(true)
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
  })
}
