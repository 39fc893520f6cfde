import assert from 'node:assert/strict'
import http from 'node:http'
import type net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { routerDeps } from '../../src/apps/routing.ts'
import { validateParamSpecs, validateParamValues } from '../../src/apps/params.ts'
import type { ExecResult, GuestLogLine } from '../../src/node/types.ts'
import type { Router } from '../../src/router/index.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'
import { get, startRouter } from '../router/helpers.ts'

/** A fake guest just deep enough for the app-service code: cgroups, systemctl, tail, journal. */
class GuestishNode extends FakeNode {
  commands: { command: string; stdin?: string }[] = []
  /** The unit the process on a port runs in (its /proc/<pid>/cgroup), by pid. */
  cgroups = new Map<number, string>([[1, '0::/system.slice/demo.service\n']])
  // FakeNode declares these without parameters; the rest form stays assignable to that.
  override async exec(...args: unknown[]): Promise<ExecResult> {
    const o = args[1] as { command: string; stdin?: Buffer }
    this.commands.push({ command: o.command, stdin: o.stdin?.toString() })
    const ok = (stdout: string) => ({ exit_code: 0, stdout, stderr: '' }) as ExecResult
    const cg = /cat \/proc\/(\d+)\/cgroup/.exec(o.command)
    if (cg) return ok(this.cgroups.get(Number(cg[1])) ?? '')
    if (o.command.startsWith('tail -n')) return ok('one\ntwo\nthree\n')
    if (o.command.includes('cat > "$tmp"')) return ok('restarted\nchanged=1\n')
    return ok('')
  }
  override async logs(...args: unknown[]) {
    const opts = args[1] as { lines: number; unit?: string }
    const all: GuestLogLine[] = [1, 2, 3].map((i) => ({
      cursor: `c${i}`,
      timestamp: '2024-01-01T00:00:00Z',
      message: `${opts.unit ?? 'all'} line ${i}`,
      unit: opts.unit ?? null,
    }))
    return all.slice(-opts.lines)
  }
}

describe('apps as services (fake guest): control, params, log sources, metrics', () => {
  let t: TestApp
  let node: GuestishNode
  let key: string
  let wsId: string
  const api = (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown) =>
    call(t.app, key, method, `/api/v1${url}`, body)
  const newApp = async (name: string, port: number) => {
    const res = await api('POST', '/apps', { name, workspace_id: wsId, port })
    assert.equal(res.status, 201, res.body)
    return res.json.app as { id: string; subdomain: string }
  }

  before(async () => {
    node = new GuestishNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'svc@example.com', 'pro')).key
    wsId = (await api('POST', '/workspaces', { name: 'svc' })).json.vm.id
    await t.app.rigbox.reconciler.idle()
    await api('POST', `/workspaces/${wsId}/start`)
    await t.app.rigbox.reconciler.idle()
    assert.equal((await api('GET', `/workspaces/${wsId}`)).json.vm.status, 'running')
    node.ports.set(8000, { host: '127.0.0.1', port: 1 })
  })
  after(() => t.close())

  it('stops, starts and restarts the unit serving the port, and remembers it', async () => {
    const app = await newApp('served', 8000)
    const stop = await api('POST', `/apps/${app.id}/stop`)
    assert.equal(stop.status, 200, stop.body)
    assert.deepEqual(referenceErrors('ServiceActionResponse', stop.json), [])
    assert.equal(stop.json.service_name, 'demo.service')
    assert.equal(stop.json.app.status, 'inactive')
    assert.ok(node.commands.some((c) => c.command === "systemctl stop 'demo.service'"))
    const row = await t.app.rigbox.db
      .selectFrom('apps')
      .select('service_unit')
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow()
    assert.equal(row.service_unit, 'demo.service')
    for (const verb of ['start', 'restart']) {
      const res = await api('POST', `/apps/${app.id}/${verb}`)
      assert.equal(res.status, 200, res.body)
      assert.equal(res.json.app.status, 'active')
      assert.ok(node.commands.some((c) => c.command === `systemctl ${verb} 'demo.service'`))
    }
  })

  it('answers 409 when no unit serves the app, and never touches the guest agent', async () => {
    const none = await newApp('unserved', 8100)
    const res = await api('POST', `/apps/${none.id}/stop`)
    assert.equal(res.status, 409)
    assert.equal(res.json.error.code, 'INVALID_STATE')
    assert.match(res.json.error.message, /no systemd unit/)
    node.ports.set(8200, { host: '127.0.0.1', port: 1 })
    node.cgroups.set(1, '0::/system.slice/rigbox-agent.service\n')
    const agent = await newApp('agentish', 8200)
    node.ports.delete(8000)
    assert.equal((await api('POST', `/apps/${agent.id}/stop`)).status, 409)
    node.cgroups.set(1, '0::/system.slice/demo.service\n')
    node.ports.delete(8200)
    node.ports.set(8000, { host: '127.0.0.1', port: 1 })
  })

  it('validates params by type, seals sensitive ones, never returns them, delivers env', async () => {
    const app = await newApp('configured', 8000)
    const row = await t.app.rigbox.db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow()
    await t.app.rigbox.appServices.params.setSpecs(row, [
      { key: 'greeting', label: 'Greeting', param_type: 'string', default: 'hello' },
      { key: 'port_count', label: 'Ports', param_type: 'number' },
      { key: 'debug', label: 'Debug', param_type: 'boolean' },
      { key: 'admin', label: 'Admin', param_type: 'email' },
      { key: 'site', label: 'Site', param_type: 'url' },
      {
        key: 'mode',
        label: 'Mode',
        param_type: 'select',
        options: [
          { value: 'a', label: 'A' },
          { value: 'b', label: 'B' },
        ],
      },
      { key: 'code', label: 'Code', param_type: 'string', validation_pattern: '^[A-Z]{3}$' },
      { key: 'botToken', label: 'Bot token', param_type: 'secret', required: true },
      { key: 'hidden', label: 'Hidden', param_type: 'string', sensitive: true },
    ])
    const got = await api('GET', `/apps/${app.id}/params`)
    assert.equal(got.status, 200)
    assert.deepEqual(referenceErrors('AppParamsResponse', got.json), [])
    assert.deepEqual(got.json.values, { greeting: 'hello' })
    assert.equal(got.json.specs.find((s: { key: string }) => s.key === 'botToken').sensitive, true)

    for (const [values, why] of [
      [{ nope: 'x' }, /unknown param "nope"/],
      [{ port_count: 'ten' }, /number/],
      [{ debug: 'yes' }, /true/],
      [{ admin: 'not-an-email' }, /email/],
      [{ site: 'ftp://x' }, /URL/],
      [{ mode: 'c' }, /one of/],
      [{ code: 'abcd' }, /must match/],
      [{ botToken: '' }, /required/],
    ] as const) {
      const res = await api('PATCH', `/apps/${app.id}/params`, { values })
      assert.equal(res.status, 400, JSON.stringify(values))
      assert.match(res.json.error.message, why)
    }

    node.commands = []
    const secret = 'tok-very-secret-123'
    const res = await api('PATCH', `/apps/${app.id}/params`, {
      values: {
        greeting: 'hi "there" $HOME',
        port_count: '3',
        debug: 'true',
        mode: 'b',
        code: 'ABC',
        botToken: secret,
        hidden: 'shh-456',
      },
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('GetAppResponse', res.json), [])
    const after = await api('GET', `/apps/${app.id}/params`)
    assert.deepEqual(after.json.values, {
      greeting: 'hi "there" $HOME',
      port_count: '3',
      debug: 'true',
      mode: 'b',
      code: 'ABC',
    })
    assert.ok(!JSON.stringify(after.json).includes(secret))
    const stored = await t.app.rigbox.db
      .selectFrom('apps')
      .select('param_values')
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow()
    assert.ok(!stored.param_values.includes(secret), 'a sealed value is not plaintext in the DB')
    assert.ok(!stored.param_values.includes('shh-456'))
    // Delivered: env file on stdin (never on the command line), drop-in for the unit, restart.
    const delivery = node.commands.find((c) => c.command.includes('50-rigbox-params.conf'))
    assert.ok(delivery, 'a delivery script ran')
    assert.ok(!delivery.command.includes(secret))
    assert.match(delivery.stdin!, /^BOT_TOKEN="tok-very-secret-123"$/m)
    assert.match(delivery.stdin!, /^GREETING="hi \\"there\\" \\\$HOME"$/m)
    assert.match(delivery.command, /EnvironmentFile=-\/etc\/rigbox\/apps\/app-[a-z0-9]+\.env/)
    assert.match(delivery.command, /systemctl restart 'demo\.service'/)
  })

  it('checks specs themselves (select needs options, defaults fit, keys unique)', () => {
    assert.throws(
      () => validateParamSpecs([{ key: 'm', label: 'M', param_type: 'select' }]),
      /options/,
    )
    assert.throws(
      () => validateParamSpecs([{ key: 'n', label: 'N', param_type: 'number', default: 'x' }]),
      /default must be a number/,
    )
    assert.throws(
      () =>
        validateParamSpecs([
          { key: 'a_b', label: 'A', param_type: 'string' },
          { key: 'aB', label: 'B', param_type: 'string' },
        ]),
      /twice/,
    )
    const specs = validateParamSpecs([
      { key: 'k', label: 'K', param_type: 'string', required: true },
    ])
    assert.throws(() => validateParamValues(specs, {}, { requireAll: true }), /required/)
    assert.deepEqual(validateParamValues(specs, { k: 'v' }, { requireAll: true }), { k: 'v' })
  })

  it('keeps log sources (one primary), reads logs from them, refuses docker and file follow', async () => {
    const app = await newApp('logged', 8000)
    const base = `/apps/${app.id}/log-sources`
    const empty = await api('GET', base)
    assert.deepEqual(referenceErrors('ListAppLogSourcesResponse', empty.json), [])
    assert.equal(
      (await api('POST', base, { source_type: 'docker_container', source_ref: 'x' })).status,
      400,
    )
    assert.equal(
      (await api('POST', base, { source_type: 'file_path', source_ref: 'rel/path' })).status,
      400,
    )
    assert.equal(
      (await api('POST', base, { source_type: 'systemd_unit', source_ref: 'a b' })).status,
      400,
    )
    // Without sources: the app's unit.
    const byUnit = await api('GET', `/apps/${app.id}/logs?lines=2`)
    assert.equal(byUnit.status, 200, byUnit.body)
    assert.deepEqual(referenceErrors('GetAppLogsResponse', byUnit.json), [])
    assert.equal(byUnit.json.source.source_ref, 'demo.service')
    assert.deepEqual(
      byUnit.json.lines.map((l: { message: string }) => l.message),
      ['demo.service line 2', 'demo.service line 3'],
    )
    assert.equal(byUnit.json.has_more, true)

    const unit = await api('POST', base, {
      source_type: 'systemd_unit',
      source_ref: 'worker.service',
      is_primary: true,
    })
    assert.equal(unit.status, 200, unit.body)
    assert.deepEqual(referenceErrors('GetAppLogSourceResponse', unit.json), [])
    const file = await api('POST', base, {
      source_type: 'file_path',
      source_ref: '/var/log/app.log',
      display_name: 'app log',
    })
    assert.equal(file.json.source.is_primary, false)
    const primaryLogs = await api('GET', `/apps/${app.id}/logs`)
    assert.equal(primaryLogs.json.source.id, unit.json.source.id)
    const fileLogs = await api(
      'GET',
      `/apps/${app.id}/logs?source_id=${file.json.source.id}&lines=2`,
    )
    assert.equal(fileLogs.status, 200)
    assert.deepEqual(referenceErrors('GetAppLogsResponse', fileLogs.json), [])
    assert.deepEqual(
      fileLogs.json.lines.map((l: { message: string }) => l.message),
      ['two', 'three'],
    )
    assert.ok(node.commands.some((c) => c.command === "tail -n 3 -- '/var/log/app.log'"))
    const follow = await api('GET', `/apps/${app.id}/logs/stream?source_id=${file.json.source.id}`)
    assert.equal(follow.status, 400)

    const promoted = await api('PATCH', `${base}/${file.json.source.id}`, { is_primary: true })
    assert.equal(promoted.status, 200)
    assert.deepEqual(referenceErrors('GetAppLogSourceResponse', promoted.json), [])
    const list = await api('GET', base)
    assert.deepEqual(referenceErrors('ListAppLogSourcesResponse', list.json), [])
    assert.deepEqual(
      list.json.sources.map((s: { is_primary: boolean }) => s.is_primary),
      [false, true],
    )
    const del = await api('DELETE', `${base}/${unit.json.source.id}`)
    assert.equal(del.status, 200)
    assert.deepEqual(referenceErrors('MessageResponse', del.json), [])
    assert.equal((await api('DELETE', `${base}/${unit.json.source.id}`)).status, 404)
    assert.equal((await api('GET', base)).json.sources.length, 1)
  })

  describe('metrics counted by a real router', () => {
    let upstream: http.Server
    let router: { router: Router; port: number }
    before(async () => {
      upstream = http.createServer((req, res) => {
        if (req.url === '/boom') {
          res.writeHead(500)
          res.end('broken')
        } else res.end('x'.repeat(100))
      })
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
      const upPort = (upstream.address() as net.AddressInfo).port
      node.ports.set(9000, { host: '127.0.0.1', port: upPort })
      router = await startRouter(routerDeps(t.app, 'localhost'))
    })
    after(async () => {
      await router.router.close()
      await new Promise((r) => upstream.close(r))
    })

    it('counts requests, 5xx, bytes, hosts and latency per app, and serves them', async () => {
      const app = await newApp('metered', 9000)
      await api('PUT', `/apps/${app.id}/visibility`, { visibility: 'public' })
      for (let i = 0; i < 4; i++) {
        const ok = await get(router.port, 'metered.localhost', '/')
        assert.equal(ok.status, 200)
      }
      assert.equal((await get(router.port, 'metered.localhost', '/boom')).status, 500)
      await t.app.rigbox.appServices.recorder.flush()

      const summary = await api('GET', `/apps/${app.id}/metrics/summary?range=1h`)
      assert.equal(summary.status, 200, summary.body)
      assert.deepEqual(referenceErrors('AppMetricsSummaryResponse', summary.json), [])
      assert.equal(summary.json.total_requests, 5)
      assert.equal(summary.json.total_errors_5xx, 1)
      assert.equal(summary.json.error_rate_5xx, 0.2)
      assert.equal(summary.json.bandwidth_out_bytes, 4 * 100 + 'broken'.length)
      assert.deepEqual(summary.json.hosts, ['metered.localhost'])
      assert.ok(summary.json.latency_p99_ms >= summary.json.latency_p50_ms)
      assert.ok(summary.json.latency_p50_ms > 0)

      // A second flush adds to the same minute's row instead of replacing it.
      await get(router.port, 'metered.localhost', '/')
      await t.app.rigbox.appServices.recorder.flush()
      const series = await api('GET', `/apps/${app.id}/metrics?range=1h`)
      assert.equal(series.status, 200, series.body)
      assert.deepEqual(referenceErrors('AppMetricsResponse', series.json), [])
      assert.equal(series.json.step_seconds, 60)
      const sum = (pts: { v: number }[]) => pts.reduce((a, p) => a + p.v, 0)
      assert.equal(Math.round(sum(series.json.series.request_rate) * 60), 6)
      assert.deepEqual(
        series.json.status_codes.map((s: { class: string; count: number }) => [s.class, s.count]),
        [
          ['2xx', 5],
          ['5xx', 1],
        ],
      )
      for (const range of ['6h', '24h', '7d']) {
        const r = await api('GET', `/apps/${app.id}/metrics?range=${range}`)
        assert.deepEqual(referenceErrors('AppMetricsResponse', r.json), [])
        assert.equal(Math.round(sum(r.json.series.request_rate) * r.json.step_seconds), 6)
      }
      assert.equal((await api('GET', `/apps/${app.id}/metrics?range=2d`)).status, 400)
    })
  })
})
