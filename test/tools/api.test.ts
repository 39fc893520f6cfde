import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ExecResult, ExecSpec } from '../../src/node/types.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

const ok = (stdout = ''): ExecResult => ({ exit_code: 0, stdout, stderr: '' }) as ExecResult

/**
 * A fake guest that answers the commands the tool jobs send: apt installs a binary, `systemctl
 * enable --now` opens the unit's port, the probe reports both. `gate` holds apt (a job running).
 */
class GuestFake extends FakeNode {
  commands: ExecSpec[] = []
  binaries = new Set<string>()
  activeUnits = new Set<string>()
  failApt = false
  /** Units that start but never listen (a broken app). */
  deaf = new Set<string>()
  gate: Promise<void> = Promise.resolve()
  private portOf: Record<string, number> = {
    'rigbox-tool-terminal.service': 4201,
  }

  // Rest parameters: FakeNode declares exec without any.
  override async exec(...args: unknown[]): Promise<ExecResult> {
    const spec = args[1] as ExecSpec
    this.commands.push(spec)
    const c = spec.command
    if (c.includes('apt-get')) {
      await this.gate
      if (this.failApt)
        return { exit_code: 100, stdout: '', stderr: 'E: Unable to locate package' } as ExecResult
      for (const b of ['shellinaboxd', 'syncthing'])
        if (c.includes(b.replace(/d$/, ''))) this.binaries.add(b)
      return ok('Setting up package ...\n')
    }
    if (c.includes('command -v')) {
      const have = [...c.matchAll(/command -v '([^']+)'[^\n]*echo 'have ([^']+)'/g)]
        .filter((m) => this.binaries.has(m[1]))
        .map((m) => `have ${m[2]}\n`)
        .join('')
      const units = [...c.matchAll(/'(rigbox-tool-[a-z-]+\.service)'/g)].map((m) => m[1])
      const show = units
        .map(
          (u) =>
            `Id=${u}\nActiveState=${this.activeUnits.has(u) ? 'active' : 'inactive'}\nActiveEnterTimestamp=${this.activeUnits.has(u) ? '@1700000000' : ''}`,
        )
        .join('\n\n')
      return ok(`${have}\n${show}\n`)
    }
    const enable = /systemctl enable --now '([^']+)'/.exec(c)
    if (enable) {
      this.activeUnits.add(enable[1])
      const port = this.portOf[enable[1]] ?? (enable[1].startsWith('rigbox-app-sync') ? 8384 : 0)
      if (port && !this.deaf.has(enable[1])) this.ports.set(port, { host: '127.0.0.1', port: 1 })
      return ok()
    }
    const disable = /systemctl disable --now (\S+)/.exec(c)
    if (disable) {
      this.activeUnits.delete(disable[1])
      if (disable[1] === 'rigbox-tool-terminal.service') this.ports.delete(4201)
      return ok()
    }
    return ok('changed=1\n')
  }
  override async writeFile() {}
}

describe('tools, catalog and install jobs (API, fake guest)', () => {
  let t: TestApp
  let node: GuestFake
  let key: string
  let otherKey: string
  let ws: { id: string }
  let stopped: { id: string }
  const api = (method: 'GET' | 'POST', url: string, body?: unknown, k = key) =>
    call(t.app, k, method, `/api/v1${url}`, body)

  before(async () => {
    node = new GuestFake()
    t = await makeApp({ node })
    key = (await makeUser(t, 'tools@example.com', 'pro')).key
    otherKey = (await makeUser(t, 'tools-other@example.com', 'pro')).key
    ws = (await api('POST', '/workspaces', { name: 'tooled' })).json.vm
    stopped = (await api('POST', '/workspaces', { name: 'idle' })).json.vm
    await api('POST', `/workspaces/${ws.id}/start`)
    for (let i = 0; i < 100; i++) {
      if ((await api('GET', `/workspaces/${ws.id}`)).json.vm.status === 'running') break
      await new Promise((r) => setTimeout(r, 20))
    }
  })
  after(() => t.close())

  it('lists the catalog as the reference shapes it', async () => {
    const res = await call(t.app, key, 'GET', '/api/v1/app-catalog')
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('CatalogResponse', res.json), [])
    const sync = res.json.items.find((i: { id: string }) => i.id === 'syncthing')
    assert.ok(sync, 'syncthing is in the catalog')
    assert.ok(sync.configurable_params.some((p: { key: string }) => p.key === 'gui_user'))
  })

  it('answers 404 for unknown tools, catalog ids, jobs and foreign workspaces', async () => {
    for (const [method, url] of [
      ['GET', `/workspaces/${ws.id}/tools/nope/status`],
      ['POST', `/workspaces/${ws.id}/tools/nope/install`],
      ['GET', `/workspaces/${ws.id}/tools/nope/install-status`],
      ['POST', `/workspaces/${ws.id}/tools/nope/launch`],
      ['POST', `/workspaces/${ws.id}/tools/nope/stop`],
      ['GET', `/workspaces/${ws.id}/jobs/job-zzzzzzzz`],
    ] as const) {
      const res = await api(method, url)
      assert.equal(res.status, 404, `${method} ${url}: ${res.body}`)
      assert.equal(res.json.error.code, 'NOT_FOUND')
    }
    const cat = await api('POST', `/workspaces/${ws.id}/install-app`, { catalog_id: 'nope' })
    assert.equal(cat.status, 404)
    assert.match(cat.json.error.message, /catalog app nope/)
    const foreign = await api('GET', `/workspaces/${ws.id}/tools`, undefined, otherKey)
    assert.equal(foreign.status, 404)
  })

  it('shows tools of a stopped workspace as unavailable and refuses to act there (409)', async () => {
    const list = await api('GET', `/workspaces/${stopped.id}/tools`)
    assert.equal(list.status, 200, list.body)
    assert.deepEqual(referenceErrors('ToolsListResponse', list.json), [])
    const term = list.json.tools.find((x: { id: string }) => x.id === 'terminal')
    assert.equal(term.available, false)
    assert.match(term.unavailable_reason, /not running/)
    for (const url of [
      '/tools/terminal/install',
      '/tools/terminal/launch',
      '/tools/terminal/stop',
    ]) {
      const res = await api('POST', `/workspaces/${stopped.id}${url}`)
      assert.equal(res.status, 409, `${url}: ${res.body}`)
      assert.equal(res.json.error.code, 'INVALID_STATE')
    }
    const app = await api('POST', `/workspaces/${stopped.id}/install-app`, {
      catalog_id: 'syncthing',
    })
    assert.equal(app.status, 409)
  })

  it('installs a tool as a job (a second install joins it), launches it at its URL and stops it', async () => {
    const before = await api('GET', `/workspaces/${ws.id}/tools/terminal/status`)
    assert.deepEqual(referenceErrors('ToolStatus', before.json), [])
    assert.equal(before.json.needs_install, true)
    const notYet = await api('POST', `/workspaces/${ws.id}/tools/terminal/launch`, {})
    assert.equal(notYet.status, 409, 'launch before install')

    let release = () => {}
    node.gate = new Promise((r) => (release = r))
    const first = await api('POST', `/workspaces/${ws.id}/tools/terminal/install`)
    assert.equal(first.status, 200, first.body)
    assert.deepEqual(referenceErrors('ToolInstallResponse', first.json), [])
    const second = await api('POST', `/workspaces/${ws.id}/tools/terminal/install`)
    assert.equal(second.json.job_id, first.json.job_id, 'the running job is returned')
    const during = await api('GET', `/workspaces/${ws.id}/jobs/${first.json.job_id}`)
    assert.deepEqual(referenceErrors('JobStatusResponse', during.json), [])
    assert.ok(['queued', 'running'].includes(during.json.status), during.body)
    const listed = await api('GET', `/workspaces/${ws.id}/tools`)
    assert.equal(listed.json.tools[0].status_sys, 'installing')
    release()
    await t.app.rigbox.tools.idle()

    const job = await api('GET', `/workspaces/${ws.id}/jobs/${first.json.job_id}`)
    assert.equal(job.json.status, 'succeeded', job.body)
    assert.equal(job.json.exit_code, 0)
    assert.match(job.json.stdout, /Setting up/)
    const st = await api('GET', `/workspaces/${ws.id}/tools/terminal/install-status`)
    assert.deepEqual(referenceErrors('ToolInstallStatusResponse', st.json), [])
    assert.equal(st.json.status, 'succeeded')
    assert.equal(st.json.available, true)
    const apt = node.commands.find((c) => c.command.includes('apt-get'))!
    assert.equal(apt.user, 'root')
    assert.match(apt.command, /install -y --no-install-recommends shellinabox/)

    const launch = await api('POST', `/workspaces/${ws.id}/tools/terminal/launch`, {})
    assert.equal(launch.status, 200, launch.body)
    assert.deepEqual(referenceErrors('ToolLaunchResponse', launch.json), [])
    assert.equal(launch.json.url, `http://term-${ws.id.slice(3)}.localhost:8081`)
    assert.equal(launch.json.started_at_ms, 1_700_000_000_000)
    const apps = (await api('GET', '/apps')).json.apps
    const app = apps.find((a: { system_tags: string[] }) => a.system_tags.includes('tool'))
    assert.equal(app.status, 'active')
    assert.equal(app.port, 4201)
    const running = await api('GET', `/workspaces/${ws.id}/tools/terminal/status`)
    assert.equal(running.json.running, true)
    assert.equal(running.json.url, launch.json.url)

    const stop = await api('POST', `/workspaces/${ws.id}/tools/terminal/stop`)
    assert.equal(stop.status, 200, stop.body)
    assert.deepEqual(referenceErrors('ToolStopResponse', stop.json), [])
    assert.equal((await api('GET', `/apps/${app.id}`)).json.app.status, 'inactive')
    const after = await api('GET', `/workspaces/${ws.id}/tools/terminal/status`)
    assert.equal(after.json.running, false)
    assert.equal(after.json.url, null)
    // A second launch routes the same app again.
    const again = await api('POST', `/workspaces/${ws.id}/tools/terminal/launch`, {})
    assert.equal(again.json.url, launch.json.url)
    assert.equal((await api('GET', `/apps/${app.id}`)).json.app.status, 'active')
  })

  it('shows a failed install with its exit code and output', async () => {
    node.failApt = true
    node.binaries.delete('shellinaboxd')
    try {
      const res = await api('POST', `/workspaces/${ws.id}/tools/terminal/install`)
      await t.app.rigbox.tools.idle()
      const job = await api('GET', `/workspaces/${ws.id}/jobs/${res.json.job_id}`)
      assert.equal(job.json.status, 'failed')
      assert.equal(job.json.exit_code, 100)
      assert.match(job.json.stderr, /Unable to locate package/)
      const st = await api('GET', `/workspaces/${ws.id}/tools/terminal/install-status`)
      assert.equal(st.json.status, 'failed')
      assert.equal(st.json.available, false)
    } finally {
      node.failApt = false
    }
  })

  it('installs a catalog app: app installing → active, params as env, credentials once', async () => {
    const bad = await api('POST', `/workspaces/${ws.id}/install-app`, {
      catalog_id: 'syncthing',
      params: { gui_user: 'has space' },
    })
    assert.equal(bad.status, 400, bad.body)
    const unknownParam = await api('POST', `/workspaces/${ws.id}/install-app`, {
      catalog_id: 'syncthing',
      params: { nope: 'x' },
    })
    assert.equal(unknownParam.status, 400)

    const res = await api('POST', `/workspaces/${ws.id}/install-app`, {
      catalog_id: 'syncthing',
      params: { gui_user: 'alice' },
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('InstallAppResponse', res.json), [])
    assert.equal(res.json.app.status, 'installing')
    assert.ok(res.json.app.system_tags.includes('catalog'))
    assert.match(res.json.credentials.password, /^[A-Za-z0-9]{20}$/)
    await t.app.rigbox.tools.idle()
    const job = await api('GET', `/workspaces/${ws.id}/jobs/${res.json.job_id}`)
    assert.equal(job.json.status, 'succeeded', job.body)
    assert.equal(job.json.app_status, 'active')
    assert.equal((await api('GET', `/apps/${res.json.app.id}`)).json.app.status, 'active')
    const script = node.commands.find((c) => c.env?.PARAM_GUI_USER)!
    assert.equal(script.env!.PARAM_GUI_USER, 'alice')
    assert.equal(script.env!.PARAM_DISCOVERY, 'false', 'a default fills an unset param')
    assert.equal(script.env!.CRED_PASSWORD, res.json.credentials.password)
    assert.ok(!script.command.includes(res.json.credentials.password), 'secrets never in the text')
    const enable = node.commands.find((c) => c.command.includes('enable --now'))
    assert.ok(enable)
    const again = await api('POST', `/workspaces/${ws.id}/install-app`, { catalog_id: 'syncthing' })
    assert.equal(again.status, 409, 'installed once per workspace')
  })

  it('marks the app error when the install fails, and lets it be retried', async () => {
    const other = (await api('POST', '/workspaces', { name: 'broken' })).json.vm
    await api('POST', `/workspaces/${other.id}/start`)
    for (let i = 0; i < 100; i++) {
      if ((await api('GET', `/workspaces/${other.id}`)).json.vm.status === 'running') break
      await new Promise((r) => setTimeout(r, 20))
    }
    node.failApt = true
    const res = await api('POST', `/workspaces/${other.id}/install-app`, {
      catalog_id: 'syncthing',
    })
    await t.app.rigbox.tools.idle()
    node.failApt = false
    const job = await api('GET', `/workspaces/${other.id}/jobs/${res.json.job_id}`)
    assert.equal(job.json.status, 'failed')
    assert.equal(job.json.app_status, 'error')
    assert.match(job.json.stderr, /installing packages failed/)
    const retry = await api('POST', `/workspaces/${other.id}/install-app`, {
      catalog_id: 'syncthing',
    })
    assert.equal(retry.status, 200, retry.body)
    assert.equal(retry.json.app.id, res.json.app.id, 'the same app row is reused')
    await t.app.rigbox.tools.idle()
    assert.equal((await api('GET', `/apps/${res.json.app.id}`)).json.app.status, 'active')
  })

  it('shows a job of a previous server process as failed (interrupted)', async () => {
    const now = new Date().toISOString()
    await t.app.rigbox.db
      .insertInto('workspace_jobs')
      .values({
        id: 'job-orphaned',
        workspace_id: ws.id,
        user_id: (await api('GET', `/workspaces/${ws.id}`)).json.vm.user_id ?? 'x',
        kind: 'tool_install',
        target: 'terminal',
        app_id: null,
        status: 'running',
        exit_code: null,
        stdout: null,
        stderr: null,
        created_at: now,
        updated_at: now,
      })
      .execute()
    const job = await api('GET', `/workspaces/${ws.id}/jobs/job-orphaned`)
    assert.equal(job.json.status, 'failed')
    assert.match(job.json.stderr, /interrupted/)
  })

  it('installPending installs quick-deploy catalog ids once, skipping unknown ones', async () => {
    const fresh = (await api('POST', '/workspaces', { name: 'quick' })).json.vm
    await api('POST', `/workspaces/${fresh.id}/start`)
    for (let i = 0; i < 100; i++) {
      if ((await api('GET', `/workspaces/${fresh.id}`)).json.vm.status === 'running') break
      await new Promise((r) => setTimeout(r, 20))
    }
    const row = (await t.app.rigbox.store.get(fresh.id))!
    const withIds = { ...row, catalog_ids: JSON.stringify(['syncthing', 'no-such-app']) }
    const started = await t.app.rigbox.catalog.installPending(withIds)
    assert.deepEqual(
      started.map((s) => s.catalog_id),
      ['syncthing'],
    )
    await t.app.rigbox.tools.idle()
    assert.deepEqual(await t.app.rigbox.catalog.installPending(withIds), [], 'only once')
    const job = await api('GET', `/workspaces/${fresh.id}/jobs/${started[0].job_id}`)
    assert.equal(job.json.status, 'succeeded')
  })
})
