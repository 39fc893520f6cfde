import type { AppRow } from '../apps/store.ts'
import type { User } from '../auth/store.ts'
import { GuestUnits, unitName } from '../automation/guest.ts'
import { ApiError, notFound } from '../http/errors.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import { WorkspaceInstaller, HOME } from './base.ts'
import { aptInstallScript, findTool, TOOLS, toolView, type ToolDef } from './catalog.ts'
import { JobFailed } from './jobs.ts'
import { probeTools, waitListening, type ToolProbe } from './probe.ts'

/** Workspace tools: installed by a job, launched as a unit of their own, served as an app. */
export class ToolService extends WorkspaceInstaller {
  async list(user: User, workspaceId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    const probes = await this.probe(ws, TOOLS)
    return Promise.all(TOOLS.map((t) => this.statusOf(ws, t, probes.get(t.id))))
  }

  async status(user: User, workspaceId: string, toolId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    const tool = toolOf(toolId)
    return this.statusOf(ws, tool, (await this.probe(ws, [tool])).get(tool.id))
  }

  async install(user: User, workspaceId: string, toolId: string) {
    const tool = toolOf(toolId)
    const ws = this.running(await this.d.workspaces.get(user, workspaceId))
    const { job, created } = await this.d.jobs.start({
      workspaceId: ws.id,
      userId: user.id,
      kind: 'tool_install',
      target: tool.id,
      work: async (ctx) => {
        ctx.note(`installing ${tool.packages.join(' ')}`)
        await ctx.run('installing packages', aptInstallScript(tool.packages))
        if (tool.post_install) await ctx.run('post-install', tool.post_install)
        const probe = (await probeTools(this.node, ws.id, [tool])).get(tool.id)
        if (!probe?.available) throw new JobFailed(`${tool.name} is still not available`)
        ctx.note(`${tool.name} is installed`)
      },
    })
    return {
      job_id: job.id,
      status: job.status,
      message: created
        ? `installing ${tool.name}; poll GET /workspaces/${ws.id}/tools/${tool.id}/install-status`
        : `${tool.name} is already being installed`,
    }
  }

  async installStatus(user: User, workspaceId: string, toolId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    const tool = toolOf(toolId)
    const job = await this.d.jobs.latest(ws.id, 'tool_install', tool.id)
    const available =
      ws.status === 'running' && this.d.node
        ? Boolean((await this.probe(ws, [tool])).get(tool.id)?.available)
        : null
    const done = job?.status === 'succeeded' || job?.status === 'failed'
    return {
      status: job?.status ?? 'none',
      exit_code: done ? job.exit_code : null,
      stdout_tail: done ? job.stdout : null,
      available,
    }
  }

  /** Starts the tool's unit (as developer) and routes it; answers once it listens. */
  async launch(user: User, workspaceId: string, toolId: string) {
    const tool = toolOf(toolId)
    const ws = this.running(await this.d.workspaces.get(user, workspaceId))
    const probe = (await this.probe(ws, [tool])).get(tool.id)
    if (!probe?.available) {
      throw new ApiError(
        'INVALID_STATE',
        `${tool.name} is not installed in ${ws.name}; POST /workspaces/${ws.id}/tools/${tool.id}/install first`,
      )
    }
    const units = new GuestUnits(this.node, ws.id)
    const unit = toolUnit(tool)
    await units.install([
      {
        unit,
        description: `Rigbox tool: ${tool.name}`,
        execStart: tool.exec_start,
        user: 'developer',
        workingDirectory: HOME,
        restart: 'on-failure',
      },
    ])
    // Enabled: the route outlives a restart of the workspace, so the tool does too.
    await units.systemctl('enable', [unit])
    if (!(await waitListening(this.node, ws.id, tool.port, 60_000))) {
      const log = (await units.logs(unit, 5)).map((l) => l.message).join('; ')
      throw new ApiError('GUEST_ERROR', `${tool.name} did not start listening: ${log}`)
    }
    const app = await this.toolApp(user, ws, tool)
    const after = (await this.probe(ws, [tool])).get(tool.id)
    return {
      status: 'running',
      message: `${tool.name} is running at ${this.d.apps.view(app).url}`,
      url: this.d.apps.view(app).url,
      started_at_ms: after?.startedAtMs ?? null,
    }
  }

  async stop(user: User, workspaceId: string, toolId: string) {
    const tool = toolOf(toolId)
    const ws = this.running(await this.d.workspaces.get(user, workspaceId))
    await new GuestUnits(this.node, ws.id).sh(
      `systemctl disable --now ${toolUnit(tool)} 2>&1 || true`,
    )
    const app = await this.findApp(ws, (a) => a.service_unit === toolUnit(tool))
    if (app) await this.d.apps.setRouted(user, app.id, false)
    return { status: 'stopped', message: `${tool.name} is stopped` }
  }

  private async probe(ws: WorkspaceRow, tools: readonly ToolDef[]) {
    if (ws.status !== 'running' || !this.d.node) return new Map<string, ToolProbe>()
    return probeTools(this.d.node, ws.id, tools)
  }

  private async statusOf(ws: WorkspaceRow, tool: ToolDef, probe: ToolProbe | undefined) {
    const app = await this.findApp(ws, (a) => a.service_unit === toolUnit(tool))
    const job = await this.d.jobs.active(ws.id, 'tool_install', tool.id)
    const available = Boolean(probe?.available)
    const running = Boolean(probe?.active)
    return {
      ...toolView(tool),
      available,
      needs_install: probe ? !available : true,
      running,
      project_roots: [],
      project_roots_truncated: false,
      url: running && app?.status === 'active' ? this.d.apps.view(app).url : null,
      status_sys: job ? 'installing' : null,
      started_at_ms: running ? (probe?.startedAtMs ?? null) : null,
      unavailable_reason: !probe
        ? `workspace ${ws.id} is not running (${ws.status})`
        : available
          ? null
          : `not installed: POST /workspaces/${ws.id}/tools/${tool.id}/install`,
    }
  }

  /** The tool's app (`<suffix>-<workspace>`), created on its first launch, routed on each. */
  private async toolApp(user: User, ws: WorkspaceRow, tool: ToolDef): Promise<AppRow> {
    const existing = await this.findApp(ws, (a) => a.service_unit === toolUnit(tool))
    if (existing) return this.d.apps.setRouted(user, existing.id, true)
    return this.d.apps.create(user, {
      name: await this.freeName(`${tool.subdomain_suffix}-${ws.id.slice(3)}`),
      workspace_id: ws.id,
      port: tool.port,
      description: tool.description,
      metadata: { tool: tool.id },
      managed: true,
      system_tags: ['tool', `tool:${tool.id}`],
      service_unit: toolUnit(tool),
    })
  }
}

function toolOf(id: string): ToolDef {
  const tool = findTool(id)
  if (!tool) throw notFound('tool', id)
  return tool
}

const toolUnit = (t: ToolDef) => unitName('tool', t.id)
