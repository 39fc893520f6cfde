import {
  deliverParams,
  envNameOf,
  paramColumns,
  validateParamValues,
  type ParamSpec,
} from '../apps/params.ts'
import type { AppRow } from '../apps/store.ts'
import type { User } from '../auth/store.ts'
import { GuestUnits, unitName, type UnitSpec } from '../automation/guest.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { newBase62 } from '../lib/ids.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import { HOME, WorkspaceInstaller } from './base.ts'
import {
  aptInstallScript,
  CATALOG,
  catalogView,
  findCatalogApp,
  type CatalogAppDef,
} from './catalog.ts'
import { JobFailed, type JobContext, type JobRow } from './jobs.ts'
import { waitListening } from './probe.ts'

/** The app catalog: an install creates the app, a job installs and starts its unit. */
export class CatalogService extends WorkspaceInstaller {
  catalog() {
    return CATALOG.map(catalogView)
  }

  /**
   * Creates the app (installing), and installs it in the background: packages, its install
   * script, its unit `rigbox-app-<name>.service`; the app turns active once it listens.
   */
  async installApp(
    user: User,
    workspaceId: string,
    catalogId: string,
    params?: Record<string, string> | null,
  ) {
    const item = findCatalogApp(catalogId)
    if (!item) throw notFound('catalog app', catalogId)
    const ws = this.running(await this.d.workspaces.get(user, workspaceId))
    const values = validateParamValues(item.configurable_params, params ?? {}, { requireAll: true })
    const tag = catalogTag(item, ws)
    let app = await this.findApp(ws, (a) => tagsOf(a).includes(tag))
    if (app) {
      const running = await this.d.jobs.active(ws.id, 'app_install', item.id)
      if (running) return { app, job: running, credentials: null, created: false }
      if (app.status !== 'error') {
        throw new ApiError(
          'CONFLICT',
          `${item.name} is already installed in ${ws.name} as ${app.name}`,
        )
      }
    }
    const columns = paramColumns(this.d.secrets, ws.id, item.configurable_params, values)
    if (app) app = await this.d.appStore.update(app.id, { status: 'installing', ...columns })
    else {
      const name = await this.freeName(`${item.subdomain_suffix}-${ws.id.slice(3)}`)
      app = await this.d.apps.create(user, {
        name,
        workspace_id: ws.id,
        port: item.port,
        description: item.description,
        metadata: { catalog_id: item.id },
        managed: true,
        app_kind: 'service',
        system_tags: [tag, 'catalog', ...item.system_tags],
        service_unit: unitName('app', name),
        status: 'installing',
        ...columns,
      })
    }
    const credentials = item.credentials(() => newBase62(20))
    const installed = app
    const { job } = await this.d.jobs.start({
      workspaceId: ws.id,
      userId: user.id,
      kind: 'app_install',
      target: item.id,
      appId: app.id,
      work: (ctx) => this.installWork(ctx, ws, item, installed, values, credentials),
      finish: async (ok) => {
        await this.d.appStore.update(installed.id, { status: ok ? 'active' : 'error' })
      },
    })
    return {
      app,
      job,
      credentials: Object.keys(credentials).length ? credentials : null,
      created: true,
    }
  }

  private async installWork(
    ctx: JobContext,
    ws: WorkspaceRow,
    item: CatalogAppDef,
    app: AppRow,
    values: Record<string, string>,
    credentials: Record<string, string>,
  ) {
    ctx.note(`installing ${item.packages.join(' ')}`)
    await ctx.run('installing packages', aptInstallScript(item.packages))
    ctx.note(`configuring ${item.name}`)
    await ctx.run('install script', item.install_script, {
      env: { ...installEnv(item.configurable_params, values), ...credEnv(credentials) },
      timeoutMs: 5 * 60_000,
    })
    const units = new GuestUnits(this.node, ws.id)
    const unit: UnitSpec = {
      unit: app.service_unit!,
      description: `Rigbox app ${app.name} (${item.name})`,
      execStart: item.exec_start,
      user: 'developer',
      workingDirectory: HOME,
      restart: 'on-failure',
    }
    ctx.note(`starting ${unit.unit}`)
    await units.install([unit])
    // Its params reach it as env (a drop-in loading a root-only file), as for every app.
    await deliverParams(units, app, this.d.secrets, { restart: false })
    await units.systemctl('enable', [unit.unit])
    if (!(await waitListening(this.node, ws.id, item.port, 120_000))) {
      const log = (await units.logs(unit.unit, 10)).map((l) => l.message).join('\n')
      throw new JobFailed(`${item.name} did not listen on port ${item.port}:\n${log}`)
    }
    ctx.note(`${item.name} is listening on port ${item.port}`)
  }

  async job(user: User, workspaceId: string, jobId: string) {
    const ws = await this.d.workspaces.get(user, workspaceId)
    const job = await this.d.jobs.get(ws.id, jobId)
    if (!job) throw notFound('job', jobId)
    return this.jobView(job)
  }

  async jobView(job: JobRow) {
    const app = job.app_id ? await this.d.appStore.getOwned(job.user_id, job.app_id) : undefined
    return {
      status: job.status,
      exit_code: job.exit_code,
      stdout: job.stdout,
      stderr: job.stderr,
      app_status: app?.status ?? null,
    }
  }

  /**
   * Quick-deploy's catalog_ids: installs each listed app once (the boot runner calls this after
   * the first boot's setup). An id already installed, or unknown, is skipped. Returns what was
   * started, with the generated credentials (nobody else will see them).
   */
  async installPending(row: WorkspaceRow) {
    const ids = JSON.parse(row.catalog_ids || '[]') as string[]
    const user = ids.length ? await this.d.findUser(row.user_id) : undefined
    const started: {
      catalog_id: string
      app_id: string
      job_id: string
      credentials: Record<string, string> | null
    }[] = []
    if (!user) return started
    for (const id of ids) {
      const item = findCatalogApp(id)
      if (!item) {
        this.d.log.warn({ workspaceId: row.id, catalogId: id }, 'unknown catalog id skipped')
        continue
      }
      if (await this.findApp(row, (a) => tagsOf(a).includes(catalogTag(item, row)))) continue
      try {
        const r = await this.installApp(user, row.id, id, {})
        started.push({
          catalog_id: id,
          app_id: r.app.id,
          job_id: r.job.id,
          credentials: r.credentials,
        })
      } catch (err) {
        this.d.log.warn({ err, workspaceId: row.id, catalogId: id }, 'catalog install not started')
      }
    }
    return started
  }
}

const catalogTag = (item: CatalogAppDef, ws: WorkspaceRow) => `catalog:${item.id}-${ws.id}`
const tagsOf = (a: AppRow) => JSON.parse(a.system_tags) as string[]

/** PARAM_<KEY> for every declared param: the submitted value, else its default. */
function installEnv(specs: ParamSpec[], values: Record<string, string>) {
  return Object.fromEntries(
    specs.map((s) => [`PARAM_${envNameOf(s.key)}`, values[s.key] || s.default || '']),
  )
}

const credEnv = (c: Record<string, string>) =>
  Object.fromEntries(Object.entries(c).map(([k, v]) => [`CRED_${envNameOf(k)}`, v]))
