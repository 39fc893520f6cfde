import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { rig } from '../helpers/cli.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

/**
 * `rig setup-script|service|app|tool|catalog` and `rig workspace new --template` against a
 * listening server with the in-memory node: what the API can answer without a guest. What runs
 * in a real VM (units starting, installs) is tested by the API suites with real VMs.
 */
describe('rig automation commands', () => {
  let t: TestApp
  let env: Record<string, string>
  let agent: string // the name of the app the ai-agent-starter template brought
  const run = (args: string[], stdin?: string) => rig(args, env, stdin)
  /** `rig --json …` that must succeed, parsed. */
  const json = async (args: string[]) => {
    const res = await run(['--json', ...args])
    assert.equal(res.code, 0, res.stderr)
    return JSON.parse(res.stdout)
  }

  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = t.app.server.address() as { port: number }
    const { key } = await makeUser(t, 'auto-cli@example.com', 'pro')
    env = {
      RIGBOX_CONFIG_DIR: tempDir(),
      RIGBOX_DATA_DIR: tempDir(),
      RIGBOX_API_URL: `http://127.0.0.1:${port}`,
      RIGBOX_API_KEY: key,
    }
  })
  after(() => t.close())

  it('setup scripts: create from --content and --file, list, get, edit, remove', async () => {
    const first = await json([
      'setup-script',
      'new',
      'deps',
      '--content',
      'echo deps',
      '--order',
      '2',
    ])
    assert.deepEqual(referenceErrors('SetupScriptResponse', first), [])
    assert.equal(first.run_on, 'first_boot')
    assert.equal(first.script_order, 2)

    const file = path.join(tempDir(), 'every.sh')
    fs.writeFileSync(file, '#!/bin/bash\necho every start\n')
    const made = await run([
      'setup-script',
      'new',
      'every',
      '--file',
      file,
      '--run-on',
      'every_start',
    ])
    assert.equal(made.code, 0, made.stderr)
    assert.match(made.stdout, /^ID\s+NAME\s+RUN ON\s+ORDER/m)
    assert.match(made.stdout, /\severy\s+every_start\s+0\s/)

    const listed = await json(['setup-script', 'ls'])
    assert.deepEqual(
      listed.map((s: { name: string }) => s.name),
      ['every', 'deps'],
    )
    const shown = await run(['setup-script', 'get', 'every'])
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /run on:\s+every_start/)
    assert.match(shown.stdout, /---\n#!\/bin\/bash\necho every start\n$/)

    const edited = await json([
      'setup-script',
      'edit',
      'deps',
      '--run-on',
      'every_start',
      '--order',
      '-1',
    ])
    assert.equal(edited.id, first.id)
    assert.equal(edited.run_on, 'every_start')
    assert.equal(edited.script_order, -1)
    assert.equal(edited.content, 'echo deps')
    const fromStdin = await run(
      ['--json', 'setup-script', 'edit', first.id, '--file', '-'],
      'echo new\n',
    )
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    assert.equal(JSON.parse(fromStdin.stdout).content, 'echo new\n')

    const removed = await run(['setup-script', 'rm', 'every'])
    assert.equal(removed.code, 0, removed.stderr)
    assert.match(removed.stdout, /deleted/)
    assert.equal((await json(['setup-script', 'ls'])).length, 1)
  })

  it('setup scripts: usage errors exit 2 before any request, API refusals exit 1', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['setup-script', 'new', 'x', '--content', 'a', '--run-on', 'never'],
        /--run-on must be one of first_boot, every_start/,
      ],
      [['setup-script', 'new', 'x'], /give the script/],
      [['setup-script', 'new', 'x', '--content', 'a', '--file', '/etc/hostname'], /not both/],
      [
        ['setup-script', 'new', 'x', '--file', '/nonexistent/s.sh'],
        /cannot read \/nonexistent\/s.sh/,
      ],
      [
        ['setup-script', 'new', 'x', '--content', 'a', '--order', '1.5'],
        /--order must be an integer/,
      ],
      [['setup-script', 'edit', 'deps'], /nothing to change/],
      [
        ['setup-script', 'get', 'no-such-script'],
        /no setup script named or with id "no-such-script"/,
      ],
    ]
    for (const [args, message] of cases) {
      const res = await run(args)
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`)
      assert.match(res.stderr, message)
    }
    const blank = await run(['setup-script', 'new', 'x', '--content', '   '])
    assert.equal(blank.code, 1)
    assert.match(blank.stderr, /content.*must not be empty.*HTTP 400/)
    assert.equal((await json(['setup-script', 'ls'])).length, 1)
  })

  it('service specs: create with env and policy, show the unit, edit, remove', async () => {
    const spec = await json([
      'service',
      'new',
      'api',
      '--exec',
      '/usr/bin/node /home/developer/api/server.js',
      '--env',
      'PORT=3000',
      '--env',
      'MODE=a=b',
      '--restart',
      'always',
      '--no-auto-enable',
    ])
    assert.deepEqual(referenceErrors('ServiceSpecResponse', spec), [])
    assert.deepEqual(spec.env_vars, { PORT: '3000', MODE: 'a=b' })
    assert.equal(spec.restart_policy, 'always')
    assert.equal(spec.auto_enable, false)

    const shown = await run(['service', 'get', 'api'])
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /restart:\s+always/)
    assert.match(shown.stdout, /--- unit preview\n/)
    assert.match(shown.stdout, /^ExecStart=\/usr\/bin\/node \/home\/developer\/api\/server\.js$/m)
    assert.match(shown.stdout, /^Restart=always$/m)
    assert.match(shown.stdout, /^User=developer$/m)

    const listed = await run(['service', 'ls'])
    assert.match(
      listed.stdout,
      new RegExp(`^${spec.id}\\s+api\\s+always\\s+no\\s+/usr/bin/node`, 'm'),
    )

    const edited = await json([
      'service',
      'edit',
      'api',
      '--restart',
      'on-failure',
      '--auto-enable',
    ])
    assert.equal(edited.restart_policy, 'on-failure')
    assert.equal(edited.auto_enable, true)
    assert.deepEqual(edited.env_vars, { PORT: '3000', MODE: 'a=b' })

    const cases: [string[], RegExp][] = [
      [
        ['service', 'new', 'x', '--exec', 'true', '--restart', 'sometimes'],
        /--restart must be one of always, on-failure, no/,
      ],
      [
        ['service', 'new', 'x', '--exec', 'true', '--env', 'NOVALUE'],
        /--env "NOVALUE" is not KEY=VALUE/,
      ],
      [['service', 'new', 'x'], /give the command/],
      [['service', 'edit', 'api'], /nothing to change/],
      [['service', 'rm', 'nope'], /no service spec named or with id "nope"/],
    ]
    for (const [args, message] of cases) {
      const res = await run(args)
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`)
      assert.match(res.stderr, message)
    }
    const badName = await run(['service', 'new', 'Not A Name', '--exec', 'true'])
    assert.equal(badName.code, 1)
    assert.match(badName.stderr, /name/)
    assert.match(badName.stderr, /HTTP 400/)

    assert.equal((await run(['service', 'rm', spec.id])).code, 0)
    assert.deepEqual(await json(['service', 'ls']), [])
  })

  it('workspace new --template brings the template and its apps; attaches scripts and services', async () => {
    const script = await json(['setup-script', 'new', 'hello', '--content', 'echo hello'])
    const spec = await json(['service', 'new', 'ticker', '--exec', '/bin/sleep infinity'])
    const made = await run([
      '--json',
      'workspace',
      'new',
      'agent-ws',
      '--template',
      'ai-agent-starter',
      '--setup-script',
      script.id,
      '--service-spec',
      spec.id,
    ])
    assert.equal(made.code, 0, made.stderr)
    const vm = JSON.parse(made.stdout)
    assert.equal(vm.template_id, 'ai-agent-starter')
    assert.equal(vm.status, 'provisioned')
    const [, agentName] = /^app (agent-\w+): http/m.exec(made.stderr) ?? []
    assert.ok(agentName, made.stderr)
    agent = agentName
    const row = await t.app.rigbox.db
      .selectFrom('workspaces')
      .select(['setup_script_ids', 'service_spec_ids'])
      .where('id', '=', vm.id)
      .executeTakeFirstOrThrow()
    assert.deepEqual(JSON.parse(row.setup_script_ids), [script.id])
    assert.deepEqual(JSON.parse(row.service_spec_ids), [spec.id])

    const apps = await json(['app', 'ls', 'agent-ws'])
    assert.deepEqual(
      apps.map((a: { name: string }) => a.name),
      [agent],
    )
    assert.deepEqual(referenceErrors('App', apps[0]), [])

    const unknown = await run(['workspace', 'new', 'nope-ws', '--template', 'no-such-template'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /no-such-template/)
    const missingScript = await run(['workspace', 'new', 'nope-ws', '--setup-script', 'ss-missing'])
    assert.equal(missingScript.code, 1, missingScript.stderr)
  })

  it('app params: list, set, and the exit codes of bad input', async () => {
    const listed = await json(['app', 'param', 'ls', agent])
    assert.deepEqual(referenceErrors('AppParamsResponse', listed), [])
    assert.deepEqual(
      listed.specs.map((s: { key: string }) => s.key),
      ['agent_model', 'agent_system_prompt'],
    )
    const table = await run(['app', 'param', 'ls', agent])
    assert.match(table.stdout, /^KEY\s+TYPE\s+VALUE/m)
    assert.match(table.stdout, /^agent_model\s+string\s+rigbox\/default\s+no\s+Model$/m)

    const set = await run(['app', 'param', 'set', agent, 'agent_model=rigbox/fast'])
    assert.equal(set.code, 0, set.stderr)
    assert.match(set.stdout, new RegExp(`set agent_model on ${agent}`))
    assert.equal((await json(['app', 'param', 'ls', agent])).values.agent_model, 'rigbox/fast')

    const notKv = await run(['app', 'param', 'set', agent, 'agent_model'])
    assert.equal(notKv.code, 2)
    assert.match(notKv.stderr, /parameter "agent_model" is not KEY=VALUE/)
    const unknownKey = await run(['app', 'param', 'set', agent, 'no_such_param=1'])
    assert.equal(unknownKey.code, 1)
    assert.match(unknownKey.stderr, /no_such_param/)
    assert.match(unknownKey.stderr, /HTTP 4\d\d/)
    const noApp = await run(['app', 'param', 'set', 'ghost', 'a=1'])
    assert.equal(noApp.code, 2)
    assert.match(noApp.stderr, /no app named or with id "ghost"/)
    const missingArgs = await run(['app', 'param', 'set', agent])
    assert.equal(missingArgs.code, 2)
    assert.match(missingArgs.stderr, /missing required argument/)
  })

  it('apps: new (and --public), ls as a table and JSON, rm; usage errors exit 2', async () => {
    const app = await json([
      'app',
      'new',
      'notes',
      '--workspace',
      'agent-ws',
      '--port',
      '4000',
      '--public',
    ])
    assert.deepEqual(referenceErrors('App', app), [])
    assert.equal(app.port, 4000)
    assert.equal(app.visibility, 'public')

    const ls = await run(['app', 'ls'])
    assert.match(ls.stdout, /^ID\s+NAME\s+WORKSPACE\s+PORT\s+STATUS\s+VISIBILITY\s+URL/m)
    assert.match(
      ls.stdout,
      new RegExp(`^${app.id}\\s+notes\\s+agent-ws\\s+4000\\s+\\w+\\s+public\\s+http`, 'm'),
    )

    for (const args of [
      ['app', 'new', 'x', '--workspace', 'agent-ws', '--port', '99999'],
      ['app', 'new', 'x', '--workspace', 'agent-ws'],
      ['app', 'new', 'x', '--port', '80', '--workspace', 'no-such-ws'],
      ['app', 'logs', 'notes', '--lines', 'many'],
    ]) {
      const res = await run(args)
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`)
    }
    const taken = await run(['app', 'new', 'notes', '--workspace', 'agent-ws', '--port', '4001'])
    assert.equal(taken.code, 1)

    const rm = await run(['app', 'rm', 'notes'])
    assert.equal(rm.code, 0, rm.stderr)
    assert.equal((await run(['app', 'rm', app.id])).code, 2)
  })

  it('lists the catalog as a table and as JSON', async () => {
    const items = await json(['catalog'])
    assert.ok(items.length >= 1)
    for (const item of items) assert.deepEqual(referenceErrors('AppCatalogItem', item), [])
    const table = await run(['catalog', 'ls'])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^ID\s+NAME\s+CATEGORY\s+MIN RAM/m)
    for (const item of items) assert.match(table.stdout, new RegExp(`^${item.id}\\s`, 'm'))
  })

  it('tools and catalog installs need a running workspace: the API refusal exits 1', async () => {
    const tools = await json(['tool', 'ls', 'agent-ws'])
    assert.ok(tools.length >= 1)
    for (const tool of tools) assert.deepEqual(referenceErrors('ToolStatus', tool), [])
    const install = await run(['tool', 'install', 'agent-ws', tools[0].id])
    assert.equal(install.code, 1)
    assert.match(install.stderr, /HTTP 4\d\d/)
    const catalogId = (await json(['catalog']))[0].id
    const app = await run(['catalog', 'install', 'agent-ws', catalogId])
    assert.equal(app.code, 1)
    assert.match(app.stderr, /HTTP 4\d\d/)
    const badParam = await run(['catalog', 'install', 'agent-ws', catalogId, '--param', 'oops'])
    assert.equal(badParam.code, 2)
    assert.match(badParam.stderr, /--param "oops" is not KEY=VALUE/)
    const noSuchTool = await run(['tool', 'launch', 'agent-ws', 'no-such-tool'])
    assert.equal(noSuchTool.code, 1)
  })

  it('a stopped workspace: app start/stop/logs are refused (exit 1), service status shows its units', async () => {
    for (const args of [
      ['app', 'start', agent],
      ['app', 'stop', agent],
      ['app', 'restart', agent],
      ['app', 'logs', agent],
    ]) {
      const res = await run(args)
      assert.equal(res.code, 1, `${args.join(' ')}: ${res.stderr}`)
      assert.match(res.stderr, /HTTP 4\d\d/)
    }
    const services = await json(['service', 'status', 'agent-ws'])
    for (const s of services) assert.deepEqual(referenceErrors('WorkspaceService', s), [])
    // The template's service and the attached spec, as systemd would run them (stopped now).
    assert.deepEqual(
      services.map((s: { name: string; source: string; status: string }) => [
        s.name,
        s.source,
        s.status,
      ]),
      [
        ['agent', 'template', 'stopped'],
        ['ticker', 'user', 'stopped'],
      ],
    )
    const one = await run(['service', 'status', 'agent-ws', 'ticker'])
    assert.equal(one.code, 0, one.stderr)
    assert.match(one.stdout, /^NAME\s+KIND\s+STATUS\s+UNIT/m)
    assert.match(one.stdout, /^ticker\s+service\s+stopped\s+rigbox-svc-ticker\.service\s/m)
    const unknown = await run(['service', 'status', 'agent-ws', 'nope'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /HTTP 404/)
  })

  it('catalog install in a running workspace polls the job; a failure exits 1 with its output', async () => {
    // The fake node has no guest, so the install job fails, as a real one would on a bad script.
    const vm = await json(['workspace', 'spawn', 'run-ws'])
    assert.equal(vm.status, 'running')
    const catalogId = (await json(['catalog']))[0].id
    const res = await run(['catalog', 'install', 'run-ws', catalogId])
    assert.equal(res.code, 1, res.stderr)
    assert.match(res.stderr, new RegExp(`installing ${catalogId} in run-ws: failed`))
    assert.match(res.stderr, /failed; last output:\n(.|\n)*FakeNode has no guest/)
    // Generated credentials are shown once, so even a failed install prints them.
    assert.match(res.stderr, /^url: http:\/\/\S+$/m)
    const apps = await json(['app', 'ls', 'run-ws'])
    assert.equal(apps.length, 1)
    assert.equal(apps[0].status, 'error')
    // -f reads the SSE stream until its `end` event (the fake node's journal ends at once).
    const follow = await run(['app', 'logs', apps[0].name, '-f'])
    assert.equal(follow.code, 0, follow.stderr)
    assert.equal(follow.stdout, '')
  })
})
