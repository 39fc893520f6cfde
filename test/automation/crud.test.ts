import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

const noErrors = (schema: string, body: unknown) =>
  assert.deepEqual(referenceErrors(schema, body), [])

describe('setup scripts and service specs (API)', () => {
  let t: TestApp
  let alice: string
  let bob: string
  const api = (
    key: string,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    body?: unknown,
  ) => call(t.app, key, method, url, body)

  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    alice = (await makeUser(t, 'alice@example.com', 'pro')).key
    bob = (await makeUser(t, 'bob@example.com', 'pro')).key
  })
  after(() => t.close())

  it('creates, lists, updates and deletes setup scripts', async () => {
    const made = await api(alice, 'POST', '/api/v1/setup-scripts', {
      name: 'install tools',
      content: 'sudo apt-get install -y jq\n',
    })
    assert.equal(made.status, 201, made.body)
    noErrors('SetupScriptResponse', made.json)
    assert.match(made.json.id, /^ss-/)
    assert.equal(made.json.run_on, 'first_boot')
    assert.equal(made.json.script_order, 0)
    assert.equal(made.json.source, 'user')

    const second = await api(alice, 'POST', '/api/v1/setup-scripts', {
      name: 'a every start',
      content: 'echo hi',
      run_on: 'every_start',
      script_order: -1,
    })
    assert.equal(second.status, 201)
    const list = await api(alice, 'GET', '/api/v1/setup-scripts')
    noErrors('SetupScriptsListResponse', list.json)
    assert.deepEqual(
      list.json.scripts.map((s: { name: string }) => s.name),
      ['a every start', 'install tools'],
    )

    const put = await api(alice, 'PUT', `/api/v1/setup-scripts/${made.json.id}`, {
      run_on: 'every_start',
      name: null,
    })
    assert.equal(put.status, 200, put.body)
    noErrors('SetupScriptResponse', put.json)
    assert.equal(put.json.run_on, 'every_start')
    assert.equal(put.json.name, 'install tools')
    assert.equal(put.json.content, 'sudo apt-get install -y jq\n')

    const got = await api(alice, 'GET', `/api/v1/setup-scripts/${made.json.id}`)
    assert.equal(got.json.run_on, 'every_start')
    const del = await api(alice, 'DELETE', `/api/v1/setup-scripts/${made.json.id}`)
    assert.equal(del.status, 200)
    noErrors('MessageResponse', del.json)
    assert.equal((await api(alice, 'GET', `/api/v1/setup-scripts/${made.json.id}`)).status, 404)
  })

  it('refuses bad setup scripts with 400 VALIDATION_ERROR', async () => {
    const bad = [
      { name: '', content: 'x' },
      { name: 'x'.repeat(101), content: 'x' },
      { name: 'n', content: 'a\0b' },
      { name: 'n', content: 'x'.repeat(256 * 1024 + 1) },
      { name: 'n', content: 'x', run_on: 'sometimes' },
      { name: 'n' },
    ]
    for (const body of bad) {
      const res = await api(alice, 'POST', '/api/v1/setup-scripts', body)
      assert.equal(res.status, 400, JSON.stringify(body).slice(0, 80))
      assert.equal(res.json.error.code, 'VALIDATION_ERROR')
    }
  })

  it("keeps each user's library private (404 for another's)", async () => {
    const s = (await api(alice, 'POST', '/api/v1/setup-scripts', { name: 'mine', content: 'true' }))
      .json
    const svc = (
      await api(alice, 'POST', '/api/v1/service-specs', { name: 'private', exec_start: 'sleep 1' })
    ).json
    for (const [method, url] of [
      ['GET', `/api/v1/setup-scripts/${s.id}`],
      ['PUT', `/api/v1/setup-scripts/${s.id}`],
      ['DELETE', `/api/v1/setup-scripts/${s.id}`],
      ['GET', `/api/v1/service-specs/${svc.id}`],
      ['PUT', `/api/v1/service-specs/${svc.id}`],
      ['DELETE', `/api/v1/service-specs/${svc.id}`],
    ] as const) {
      const res = await api(bob, method, url, method === 'PUT' ? { name: 'taken' } : undefined)
      assert.equal(res.status, 404, `${method} ${url}`)
    }
    assert.equal((await api(bob, 'GET', '/api/v1/setup-scripts')).json.scripts.length, 0)
    assert.equal((await api(bob, 'GET', '/api/v1/service-specs')).json.services.length, 0)
    assert.equal((await api(alice, 'GET', `/api/v1/setup-scripts/${s.id}`)).status, 200)
  })

  it('creates service specs with a unit preview, and updates them', async () => {
    const made = await api(alice, 'POST', '/api/v1/service-specs', {
      name: 'web',
      exec_start: 'python3 -m http.server 8000',
      env_vars: { GREETING: 'hello world', PRICE: '$5' },
      environment_file: '/home/developer/.env',
    })
    assert.equal(made.status, 201, made.body)
    noErrors('ServiceSpecResponse', made.json)
    assert.match(made.json.id, /^svc-/)
    assert.equal(made.json.restart_policy, 'on-failure')
    assert.equal(made.json.auto_enable, true)
    const unit: string = made.json.systemd_unit_preview
    assert.match(unit, /^User=developer$/m)
    assert.match(unit, /^WorkingDirectory=\/home\/developer$/m)
    assert.match(unit, /^ExecStart=python3 -m http.server 8000$/m)
    assert.match(unit, /^Restart=on-failure$/m)
    assert.match(unit, /^Environment="GREETING=hello world"$/m)
    assert.match(unit, /^Environment="PRICE=\$\$5"$/m)
    assert.match(unit, /^EnvironmentFile=-\/home\/developer\/.env$/m)

    const put = await api(alice, 'PUT', `/api/v1/service-specs/${made.json.id}`, {
      restart_policy: 'always',
      environment_file: '',
      auto_enable: false,
    })
    assert.equal(put.status, 200, put.body)
    noErrors('ServiceSpecResponse', put.json)
    assert.equal(put.json.environment_file, null)
    assert.equal(put.json.auto_enable, false)
    assert.equal(put.json.exec_start, 'python3 -m http.server 8000')
    assert.match(put.json.systemd_unit_preview, /^Restart=always$/m)
    assert.doesNotMatch(put.json.systemd_unit_preview, /EnvironmentFile/)

    const list = await api(alice, 'GET', '/api/v1/service-specs')
    noErrors('ServiceSpecsListResponse', list.json)
    assert.ok(list.json.services.some((s: { name: string }) => s.name === 'web'))
  })

  it('refuses bad service specs (400) and a taken name (409)', async () => {
    const bad = [
      { name: 'Bad_Name', exec_start: 'true' },
      { name: 'ok', exec_start: 'echo a\necho b' },
      { name: 'ok', exec_start: '' },
      { name: 'ok', exec_start: 'true', restart_policy: 'sometimes' },
      { name: 'ok', exec_start: 'true', environment_file: 'relative/.env' },
      { name: 'ok', exec_start: 'true', environment_file: '/a b' },
      { name: 'ok', exec_start: 'true', env_vars: { 'BAD-KEY': 'x' } },
      { name: 'ok', exec_start: 'true', setup_script: 'a\0' },
    ]
    for (const body of bad) {
      const res = await api(alice, 'POST', '/api/v1/service-specs', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(res.json.error.code, 'VALIDATION_ERROR')
    }
    const first = await api(alice, 'POST', '/api/v1/service-specs', { name: 'db', exec_start: 'x' })
    assert.equal(first.status, 201)
    const dup = await api(alice, 'POST', '/api/v1/service-specs', { name: 'db', exec_start: 'y' })
    assert.equal(dup.status, 409)
    const other = await api(alice, 'POST', '/api/v1/service-specs', {
      name: 'db2',
      exec_start: 'y',
    })
    const rename = await api(alice, 'PUT', `/api/v1/service-specs/${other.json.id}`, { name: 'db' })
    assert.equal(rename.status, 409)
    // Another user's names are their own.
    const bobs = await api(bob, 'POST', '/api/v1/service-specs', { name: 'db', exec_start: 'x' })
    assert.equal(bobs.status, 201)
  })

  it('attaches scripts and specs on create and quick deploy, and checks the ids', async () => {
    const s = (await api(alice, 'POST', '/api/v1/setup-scripts', { name: 'att', content: 'true' }))
      .json
    const svc = (
      await api(alice, 'POST', '/api/v1/service-specs', { name: 'att', exec_start: 'sleep 9' })
    ).json
    const bobScript = (
      await api(bob, 'POST', '/api/v1/setup-scripts', { name: 'bob', content: 'true' })
    ).json

    const ws = await api(alice, 'POST', '/api/v1/workspaces', {
      name: 'attached',
      setup_script_ids: [s.id],
      service_spec_ids: [svc.id],
    })
    assert.equal(ws.status, 201, ws.body)
    noErrors('Vm', ws.json.vm)
    assert.deepEqual(ws.json.vm.setup_script_ids, [s.id])
    assert.deepEqual(ws.json.vm.service_spec_ids, [svc.id])
    assert.equal(ws.json.vm.setup_status, null)
    const got = await api(alice, 'GET', `/api/v1/workspaces/${ws.json.vm.id}`)
    assert.deepEqual(got.json.vm.setup_script_ids, [s.id])

    const plain = await api(alice, 'POST', '/api/v1/workspaces', { name: 'plain' })
    assert.deepEqual(plain.json.vm.setup_script_ids, [])
    assert.deepEqual(plain.json.vm.service_spec_ids, [])

    for (const body of [
      { name: 'w1', setup_script_ids: ['ss-nope'] },
      { name: 'w2', setup_script_ids: [bobScript.id] },
      { name: 'w3', service_spec_ids: [s.id] },
    ]) {
      const res = await api(alice, 'POST', '/api/v1/workspaces', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(res.json.error.code, 'VALIDATION_ERROR')
      const id = (body.setup_script_ids ?? body.service_spec_ids)![0]
      assert.ok(res.json.error.message.includes(id), res.json.error.message)
    }

    const templates = (await api(alice, 'GET', '/api/v1/templates')).json.templates as {
      id: string
      coming_soon?: boolean
    }[]
    const template = templates.find((x) => !x.coming_soon)!.id
    const qd = await api(alice, 'POST', '/api/v1/quick-deploy', {
      template_id: template,
      setup_script_ids: [s.id],
      service_spec_ids: [svc.id],
    })
    assert.equal(qd.status, 200, qd.body)
    assert.deepEqual(qd.json.workspace.setup_script_ids, [s.id])
    assert.deepEqual(qd.json.workspace.service_spec_ids, [svc.id])
    const qdBad = await api(alice, 'POST', '/api/v1/quick-deploy', {
      template_id: template,
      service_spec_ids: ['svc-missing'],
    })
    assert.equal(qdBad.status, 400)
    assert.match(qdBad.json.error.message, /svc-missing/)
  })

  it('lists the services of a stopped workspace as stopped, and 404s unknown ones', async () => {
    const svc = (
      await api(alice, 'POST', '/api/v1/service-specs', { name: 'listed', exec_start: 'sleep 9' })
    ).json
    const ws = (
      await api(alice, 'POST', '/api/v1/workspaces', {
        name: 'services',
        service_spec_ids: [svc.id],
      })
    ).json.vm
    const list = await api(alice, 'GET', `/api/v1/workspaces/${ws.id}/services`)
    assert.equal(list.status, 200, list.body)
    noErrors('WorkspaceServicesResponse', list.json)
    assert.equal(list.json.services.length, 1)
    const [one] = list.json.services
    assert.equal(one.name, 'listed')
    assert.equal(one.status, 'stopped')
    assert.equal(one.unit_name, 'rigbox-svc-listed.service')
    assert.equal(one.kind, 'service')
    const single = await api(alice, 'GET', `/api/v1/workspaces/${ws.id}/services/listed`)
    noErrors('WorkspaceService', single.json)
    assert.equal((await api(alice, 'GET', `/api/v1/workspaces/${ws.id}/services/nope`)).status, 404)
    assert.equal((await api(bob, 'GET', `/api/v1/workspaces/${ws.id}/services`)).status, 404)
    const logs = await api(alice, 'GET', `/api/v1/workspaces/${ws.id}/services/listed/logs`)
    assert.equal(logs.status, 409)

    // A deleted spec is simply no longer among the services.
    await api(alice, 'DELETE', `/api/v1/service-specs/${svc.id}`)
    const after = await api(alice, 'GET', `/api/v1/workspaces/${ws.id}/services`)
    assert.equal(after.json.services.length, 0)
  })
})
