import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { referenceErrors } from '../helpers/reference.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/**
 * One real VM with attached setup scripts and a service spec, booted twice: what runs once, what
 * runs at every start, how a failure shows, and the service as systemd runs it.
 */
// The timeout allows for waiting on the VM lock behind other suites; the VM work takes ~4 min.
describe('automation in a real VM', { timeout: 40 * 60_000 }, () => {
  let releaseVms = () => {}
  let env: VmPlatform
  let key: string
  let ws: { id: string }
  const UNIT = 'rigbox-svc-web.service'

  const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown) =>
    env.api(key, method, url, body)
  const sh = async (command: string) => {
    const res = await api('POST', `/api/v1/workspaces/${ws.id}/exec`, { command, user: 'root' })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }
  /**
   * Polls until the setup of the boot after `since` is over (until it begins, the workspace
   * still shows the previous boot's); returns the workspace as the API shows it.
   */
  const setupDone = async (since: string) => {
    const deadline = Date.now() + 180_000
    for (;;) {
      const vm = (await api('GET', `/api/v1/workspaces/${ws.id}`)).json.vm
      if (vm.setup_status?.finished_at && vm.setup_status.started_at > since) return vm
      if (Date.now() > deadline) throw new Error(`setup still ${JSON.stringify(vm.setup_status)}`)
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
  const boot = async () => {
    const since = new Date().toISOString()
    const res = await api('POST', `/api/v1/workspaces/${ws.id}/start`)
    assert.equal(res.status, 200, res.body)
    await waitStatus(env.platform.app, key, ws.id, ['running'])
    return setupDone(since)
  }
  const mainPid = async () =>
    Number((await sh(`systemctl show -p MainPID --value ${UNIT}`)).stdout.trim())

  before(async () => {
    releaseVms = await holdVmLock()
    env = await startVmPlatform()
    key = await env.makeUser('automation@example.com')
    const script = async (body: object) => {
      const res = await api('POST', '/api/v1/setup-scripts', body)
      assert.equal(res.status, 201, res.body)
      return res.json.id as string
    }
    const once = await script({
      name: 'once',
      run_on: 'first_boot',
      content: 'echo "once as $(whoami) in $PWD" >> first.log\n',
    })
    const every = await script({
      name: 'every',
      run_on: 'every_start',
      script_order: 1,
      content: 'echo start >> every.log\nsudo touch /root/sudo-works\n',
    })
    const failing = await script({
      name: 'failing',
      run_on: 'every_start',
      script_order: 2,
      content: 'echo "about to fail: marker-7f3a"\nexit 3\n',
    })
    const spec = await api('POST', '/api/v1/service-specs', {
      name: 'web',
      exec_start: 'python3 -u -m http.server 8123',
      env_vars: { SPEC_VAR: 'from the spec' },
      restart_policy: 'always',
      setup_script: 'echo prepared >> svc-setup.log\n',
    })
    assert.equal(spec.status, 201, spec.body)
    const made = await api('POST', '/api/v1/workspaces', {
      name: 'auto',
      env_vars: { WS_VAR: 'from the workspace' },
      setup_script_ids: [failing, every, once],
      service_spec_ids: [spec.json.id],
    })
    assert.equal(made.status, 201, made.body)
    ws = made.json.vm
  })
  after(async () => {
    try {
      await env?.platform.app.rigbox.setupRunner.idle()
      await env?.close()
    } finally {
      releaseVms()
    }
  })

  it('runs the scripts in order, shows a failure, and starts the service', async () => {
    const vm = await boot()
    assert.deepEqual(referenceErrors('Vm', vm), [])
    const status = vm.setup_status
    assert.equal(status.state, 'failed')
    assert.deepEqual(
      status.runs.map((r: { name: string; status: string }) => [r.name, r.status]),
      [
        ['once', 'succeeded'],
        ['every', 'succeeded'],
        ['failing', 'failed'],
        ['web (service setup)', 'succeeded'],
      ],
    )
    const failed = status.runs[2]
    assert.equal(failed.exit_code, 3)
    assert.match(failed.output_tail, /about to fail: marker-7f3a/)
    // Its own output, not systemd's lines about the unit.
    assert.doesNotMatch(failed.output_tail, /Started|Failed with result/)
    assert.equal(status.services[0].name, 'web')
    assert.equal(status.services[0].error, null)

    // Scripts run as developer in its home, with sudo.
    assert.equal(
      (await sh('cat /home/developer/first.log')).stdout,
      'once as developer in /home/developer\n',
    )
    assert.equal((await sh('test -e /root/sudo-works')).exit_code, 0)
    // The workspace still runs, and its logs carry the script's output.
    const logs = await api('GET', `/api/v1/workspaces/${ws.id}/logs?lines=2000`)
    assert.equal(logs.status, 200, logs.body)
    const messages = logs.json.lines.map((l: { message: string }) => l.message).join('\n')
    assert.match(messages, /about to fail: marker-7f3a/)
  })

  it('runs the service as developer with the spec and workspace env', async () => {
    const pid = await mainPid()
    assert.ok(pid > 0)
    const environ = (await sh(`tr '\\0' '\\n' < /proc/${pid}/environ`)).stdout
    assert.match(environ, /^SPEC_VAR=from the spec$/m)
    assert.match(environ, /^WS_VAR=from the workspace$/m)
    assert.equal((await sh(`ps -o user= -p ${pid}`)).stdout.trim(), 'developer')
    const served = await sh('curl -fsS -o /dev/null -w "%{http_code}" http://127.0.0.1:8123/')
    assert.equal(served.stdout, '200')
  })

  it('shows the service running with its logs', async () => {
    const list = await api('GET', `/api/v1/workspaces/${ws.id}/services`)
    assert.equal(list.status, 200, list.body)
    assert.deepEqual(referenceErrors('WorkspaceServicesResponse', list.json), [])
    const web = list.json.services.find((s: { name: string }) => s.name === 'web')
    assert.equal(web.status, 'running')
    assert.equal(web.unit_name, UNIT)
    const logs = await api('GET', `/api/v1/workspaces/${ws.id}/services/web/logs?lines=50`)
    assert.equal(logs.status, 200, logs.body)
    assert.deepEqual(referenceErrors('GetWorkspaceLogsResponse', logs.json), [])
    assert.ok(logs.json.lines.length > 0)
  })

  it('restarts the service by its policy after kill -9', async () => {
    const before = await mainPid()
    await sh(`kill -9 ${before}`)
    const deadline = Date.now() + 60_000
    let after = 0
    while (Date.now() < deadline) {
      const state = (await sh(`systemctl is-active ${UNIT}`)).stdout.trim()
      after = await mainPid()
      if (state === 'active' && after > 0 && after !== before) break
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.ok(after > 0 && after !== before, `MainPID ${before} → ${after}`)
    assert.ok(Number((await sh(`systemctl show -p NRestarts --value ${UNIT}`)).stdout) >= 1)
  })

  it('runs first_boot scripts once and every_start scripts at every start', async () => {
    const res = await api('POST', `/api/v1/workspaces/${ws.id}/stop`)
    assert.equal(res.status, 200, res.body)
    await waitStatus(env.platform.app, key, ws.id, ['stopped'])
    const stopped = await api('GET', `/api/v1/workspaces/${ws.id}/services`)
    assert.equal(stopped.json.services[0].status, 'stopped')

    const vm = await boot()
    const runs = vm.setup_status.runs.map((r: { name: string; status: string }) => [
      r.name,
      r.status,
    ])
    assert.deepEqual(runs, [
      ['once', 'skipped'],
      ['every', 'succeeded'],
      ['failing', 'failed'],
      ['web (service setup)', 'skipped'],
    ])
    const count = async (file: string) =>
      (await sh(`cat /home/developer/${file}`)).stdout.split('\n').filter(Boolean).length
    assert.equal(await count('first.log'), 1)
    assert.equal(await count('every.log'), 2)
    assert.equal(await count('svc-setup.log'), 1)
    assert.equal((await sh(`systemctl is-active ${UNIT}`)).stdout.trim(), 'active')
  })
})
