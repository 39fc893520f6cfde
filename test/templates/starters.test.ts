import assert from 'node:assert/strict'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { REPLY, startAiUpstream, type AiUpstream } from '../helpers/ai-upstream.ts'
import { referenceErrors } from '../helpers/reference.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

/** A request to an app through the router, as a browser or client on this host makes it. */
function viaRouter(
  port: number,
  sub: string,
  opts: { path?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host: `${sub}.localhost:${port}`, ...opts.headers },
      },
      (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

/**
 * The deployable starter templates, each on a real VM (one after the other, the first deleted
 * before the second boots): quick deploy → start → the template's first-boot script and service
 * run → its app answers through the router, with nothing downloaded.
 */
describe('starter templates on real VMs', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let upstream: AiUpstream
  let vmp: VmPlatform
  let owner: string
  const made: string[] = []
  /** What the agent's chat showed, for the params check. */
  let agent: { id: string; model: string; upstreamModel: unknown } | null = null
  const api: VmPlatform['api'] = (...args) => vmp.api(...args)
  const auth = () => ({ authorization: `Bearer ${owner}` })

  const exec = async (id: string, command: string) => {
    const res = await api(owner, 'POST', `/api/v1/workspaces/${id}/exec`, {
      command,
      user: 'developer',
      timeout_ms: 120_000,
    })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }

  /** Quick deploy and boot; returns the workspace and its one expected app. */
  const deploy = async (body: Record<string, unknown>) => {
    const res = await api(owner, 'POST', '/api/v1/quick-deploy', body)
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('QuickDeployResponse', res.json), [])
    assert.equal(res.json.expected_apps.length, 1)
    const id = res.json.workspace.id as string
    made.push(id)
    await api(owner, 'POST', `/api/v1/workspaces/${id}/start`)
    await waitStatus(vmp.platform.app, owner, id, ['running'])
    return { id, app: res.json.expected_apps[0] as { id: string; subdomain: string; port: number } }
  }

  /** Polls the app through the router until `ok` holds (the service starts after the scripts). */
  const waitApp = async (
    id: string,
    sub: string,
    ok: (r: { status: number; body: string }) => boolean,
  ) => {
    const deadline = Date.now() + 180_000
    let last = { status: 0, body: '' }
    while (Date.now() < deadline) {
      last = await viaRouter(vmp.routerPort, sub, { headers: auth() })
      if (ok(last)) return last
      await new Promise((r) => setTimeout(r, 1000))
    }
    const ws = (await api(owner, 'GET', `/api/v1/workspaces/${id}`)).json.vm
    const journal = await exec(id, 'sudo journalctl -b --no-pager -n 60 2>&1 | tail -60')
    assert.fail(
      `app ${sub} never answered (last ${last.status} ${last.body.slice(0, 200)})\n` +
        `setup_status: ${JSON.stringify(ws.setup_status)}\njournal:\n${journal.stdout}`,
    )
  }

  before(async () => {
    releaseVms = await holdVmLock()
    upstream = await startAiUpstream()
    vmp = await startVmPlatform({
      RIGBOX_AI_UPSTREAM_URL: upstream.openaiUrl,
      RIGBOX_AI_UPSTREAM_KEY: 'sk-starters-managed-key',
      RIGBOX_AI_MODEL_DEFAULT: 'test/small',
      RIGBOX_AI_MODEL_FAST: 'test/small',
      RIGBOX_AI_MODEL_FREE: 'test/free',
    })
    owner = await vmp.makeUser('starters@example.com')
  })

  after(async () => {
    for (const id of made) await api(owner, 'DELETE', `/api/v1/workspaces/${id}`).catch(() => 0)
    await vmp?.close()
    await upstream?.close()
    releaseVms()
  })

  it('web-fullstack: the starter page and its API answer at the app URL; the dev tools are there', async () => {
    const { id, app } = await deploy({ template_id: 'web-fullstack' })
    assert.equal(app.port, 3000)
    const page = await waitApp(id, app.subdomain, (r) => r.status === 200)
    assert.match(page.body, /Rigbox web starter/)
    const todos = await viaRouter(vmp.routerPort, app.subdomain, {
      path: '/api/todos',
      headers: auth(),
    })
    assert.equal(todos.status, 200)
    assert.ok(Array.isArray(JSON.parse(todos.body)))
    const added = await viaRouter(vmp.routerPort, app.subdomain, {
      path: '/api/todos',
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'ship it' }),
    })
    assert.equal(added.status, 201, added.body)

    const ws = (await api(owner, 'GET', `/api/v1/workspaces/${id}`)).json.vm
    const run = ws.setup_status?.runs?.find((r: { name: string }) => r.name === 'web-starter')
    assert.equal(run?.status, 'succeeded', JSON.stringify(ws.setup_status))
    assert.equal(run?.source, 'template')

    // What the dev image promises for build templates (python3 -m venv needs ensurepip).
    const tools = await exec(
      id,
      'set -e; python3 -m venv /tmp/venv && /tmp/venv/bin/pip --version && pip3 --version && ' +
        'sqlite3 :memory: "select 40+2" && rsync --version | head -1 && gcc --version | head -1 && ' +
        'make --version | head -1 && git --version && node --version && npm --version',
    )
    assert.equal(tools.exit_code, 0, tools.stderr + tools.stdout)
    assert.match(tools.stdout, /^42$/m)
    assert.match(tools.stdout, /^v22\./m)
    // One VM at a time on this machine: the first goes before the second boots.
    await api(owner, 'DELETE', `/api/v1/workspaces/${id}`)
    for (let i = 0; i < 120; i++) {
      if ((await api(owner, 'GET', `/api/v1/workspaces/${id}`)).status === 404) break
      await new Promise((r) => setTimeout(r, 500))
    }
  })

  it('ai-agent-starter: POST /chat through the router gets the model answer via the AI proxy', async () => {
    const seen = upstream.requests.length
    const { id, app } = await deploy({
      template_id: 'ai-agent-starter',
      app_params: { agent: { agent_model: 'test/big' } },
    })
    assert.equal(app.port, 8000)
    await waitApp(id, app.subdomain, (r) => r.status === 200 && /Rigbox AI agent/.test(r.body))
    const chat = await viaRouter(vmp.routerPort, app.subdomain, {
      path: '/chat',
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Tell me about foxes.' }),
    })
    assert.equal(chat.status, 200, chat.body)
    const answer = JSON.parse(chat.body)
    assert.equal(answer.reply, REPLY)
    const calls = upstream.requests.slice(seen).filter((r) => r.path === '/v1/chat/completions')
    assert.ok(calls.length >= 1, 'the agent reached the upstream through the proxy')
    const last = calls.at(-1)!
    assert.equal(last.headers.authorization, 'Bearer sk-starters-managed-key')
    assert.ok(Array.isArray(last.body?.tools), 'the agent offers its tools')
    agent = { id, model: answer.model, upstreamModel: last.body?.model }
    // The memory file keeps the exchange.
    const memory = await exec(id, 'cat ~/agent/memory.json')
    assert.match(memory.stdout, /Tell me about foxes/)
  })

  it("ai-agent-starter: the deploy's app_params reach the agent's unit as env", () => {
    assert.ok(agent, 'the agent answered')
    assert.equal(agent.model, 'test/big', 'AGENT_MODEL from app_params.agent.agent_model')
    assert.equal(agent.upstreamModel, 'test/big')
  })
})
