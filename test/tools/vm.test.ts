import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { packagesEnv } from '../helpers/packages.ts'
import { referenceErrors } from '../helpers/reference.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/** A request to the router for the app at `url`, as a browser would send it. */
function viaRouter(
  routerPort: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port: routerPort,
        path: u.pathname,
        headers: { host: u.host, ...headers },
      },
      (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
      },
    )
    req.on('error', reject)
  })
}

/**
 * One real VM installs the web terminal (a tool) and Syncthing (a catalog app) from Debian's
 * packages through the egress proxy, and both answer through the router at their URLs.
 */
describe('tools and catalog apps in a real VM', { timeout: 20 * 60_000 }, () => {
  let release = () => {}
  let vmp: VmPlatform
  let key: string
  let ws: { id: string }
  const api = (method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) =>
    vmp.api(key, method, `/api/v1${url}`, body)

  /** Polls a job until it ends; returns it with how long it took. */
  async function waitJob(jobId: string) {
    const t0 = Date.now()
    for (;;) {
      const res = await api('GET', `/workspaces/${ws.id}/jobs/${jobId}`)
      assert.equal(res.status, 200, res.body)
      if (res.json.status === 'succeeded' || res.json.status === 'failed') {
        assert.deepEqual(referenceErrors('JobStatusResponse', res.json), [])
        return { job: res.json, ms: Date.now() - t0 }
      }
      if (Date.now() - t0 > 12 * 60_000) throw new Error(`job ${jobId} still ${res.json.status}`)
      await new Promise((r) => setTimeout(r, 2000))
    }
  }

  before(async () => {
    release = await holdVmLock()
    vmp = await startVmPlatform(await packagesEnv())
    key = await vmp.makeUser('tools-vm@example.com')
    ws = (await vmp.api(key, 'POST', '/api/v1/workspaces', { name: 'tools-vm' })).json.vm
    await api('POST', `/workspaces/${ws.id}/start`)
    await waitStatus(vmp.platform.app, key, ws.id, ['running'])
  })
  after(async () => {
    await vmp?.platform.app.rigbox.tools.idle()
    await vmp?.close()
    release()
  })

  it('installs the web terminal, launches it as developer and serves it at its URL', async () => {
    const install = await api('POST', `/workspaces/${ws.id}/tools/terminal/install`)
    assert.equal(install.status, 200, install.body)
    const { job, ms } = await waitJob(install.json.job_id)
    console.log(`# terminal install job: ${ms} ms`)
    assert.equal(job.status, 'succeeded', `${job.stdout}\n${job.stderr}`)

    const launch = await api('POST', `/workspaces/${ws.id}/tools/terminal/launch`, {})
    assert.equal(launch.status, 200, launch.body)
    assert.deepEqual(referenceErrors('ToolLaunchResponse', launch.json), [])
    const page = await viaRouter(vmp.routerPort, launch.json.url, {
      authorization: `Bearer ${key}`,
    })
    assert.equal(page.status, 200, page.body.slice(0, 500))
    assert.match(page.body, /shell ?in ?a ?box/i, 'the page comes from shellinaboxd itself')
    // It runs as developer, from its own unit; the package's root daemon stays off.
    const ps = await api('POST', `/workspaces/${ws.id}/exec`, {
      command: 'ps -o user= -C shellinaboxd | sort -u; systemctl is-active shellinabox || true',
      user: 'root',
    })
    assert.deepEqual(ps.json.stdout.trim().split('\n'), ['developer', 'inactive'])
    const status = await api('GET', `/workspaces/${ws.id}/tools/terminal/status`)
    assert.deepEqual(referenceErrors('ToolStatus', status.json), [])
    assert.equal(status.json.running, true)
    assert.equal(status.json.url, launch.json.url)

    const stop = await api('POST', `/workspaces/${ws.id}/tools/terminal/stop`)
    assert.equal(stop.status, 200, stop.body)
    const after = await api('GET', `/workspaces/${ws.id}/tools/terminal/status`)
    assert.equal(after.json.running, false)
    const gone = await viaRouter(vmp.routerPort, launch.json.url, {
      authorization: `Bearer ${key}`,
    })
    assert.notEqual(gone.status, 200, 'a stopped tool is not served')
  })

  it('installs Syncthing from the catalog: its unit runs and its UI answers with the credentials', async () => {
    const res = await api('POST', `/workspaces/${ws.id}/install-app`, {
      catalog_id: 'syncthing',
      params: { gui_user: 'alice' },
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('InstallAppResponse', res.json), [])
    assert.equal(res.json.app.status, 'installing')
    const password = res.json.credentials.password as string
    const { job, ms } = await waitJob(res.json.job_id)
    console.log(`# syncthing install job: ${ms} ms`)
    assert.equal(job.status, 'succeeded', `${job.stdout}\n${job.stderr}`)
    assert.equal(job.app_status, 'active')

    const app = (await api('GET', `/apps/${res.json.app.id}`)).json.app
    assert.equal(app.status, 'active')
    const unit = await api('POST', `/workspaces/${ws.id}/exec`, {
      command: `systemctl is-active rigbox-app-${app.name}.service; ps -o user= -C syncthing | sort -u`,
      user: 'root',
    })
    assert.deepEqual(unit.json.stdout.trim().split('\n'), ['active', 'developer'])
    // Public, so the app's own login is what guards it here.
    await api('PUT', `/apps/${app.id}/visibility`, { visibility: 'public' })
    const anon = await viaRouter(vmp.routerPort, app.url)
    assert.equal(anon.status, 401, 'Syncthing asks for its own login')
    const basic = Buffer.from(`alice:${password}`).toString('base64')
    const ui = await viaRouter(vmp.routerPort, app.url, { authorization: `Basic ${basic}` })
    assert.equal(ui.status, 200, ui.body.slice(0, 300))
    assert.match(ui.body, /Syncthing/)
    const wrong = Buffer.from('alice:wrong').toString('base64')
    assert.equal(
      (await viaRouter(vmp.routerPort, app.url, { authorization: `Basic ${wrong}` })).status,
      401,
    )
  })
})
