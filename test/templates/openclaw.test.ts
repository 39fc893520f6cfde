import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { validateParamSpecs } from '../../src/apps/params.ts'
import { findTemplate } from '../../src/templates/catalog.ts'
import {
  OPENCLAW_PORT,
  OPENCLAW_VERSION,
  openclawAutomation,
  openclawTemplate,
} from '../../src/templates/openclaw.ts'
import { REPLY, startAiUpstream, type AiUpstream } from '../helpers/ai-upstream.ts'
import { tempDir } from '../helpers/app.ts'
import { packagesEnv } from '../helpers/packages.ts'
import { referenceErrors } from '../helpers/reference.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

const installScript = openclawAutomation.setup_scripts[0].content

/** A file the install script writes, as the heredoc in it has it. */
function embedded(name: string): string {
  const m = new RegExp(`cat > \\S+/${name} <<'RIGBOX_EOF'\\n([\\s\\S]*?)RIGBOX_EOF\\n`).exec(
    installScript,
  )
  assert.ok(m, `the install script writes ${name}`)
  return m[1]
}

describe('the openclaw template definition', () => {
  it('is deployable, on the base image, with floors for a ~600 MB gateway', () => {
    const t = findTemplate('openclaw')
    assert.equal(t, openclawTemplate, 'the catalog lists this module’s template')
    assert.equal(t.coming_soon, false)
    assert.equal(t.image, 'base')
    assert.ok(t.ram_mb >= 2048 && t.disk_size_mb >= 6144)
    assert.deepEqual(t.app_services, { gateway: 'gateway' })
    const [app] = t.expected_apps
    assert.equal(app.port, OPENCLAW_PORT)
    assert.equal(openclawAutomation.services[0].port, OPENCLAW_PORT)
    assert.equal(openclawAutomation.services[0].restart_policy, 'always')
  })

  it('declares valid params, channel tokens as sensitive secrets', () => {
    const specs = validateParamSpecs(openclawTemplate.expected_apps[0].configurable_params)
    for (const key of ['telegram_bot_token', 'discord_bot_token', 'openclaw_gateway_token']) {
      const s = specs.find((p) => p.key === key)
      assert.ok(s, key)
      assert.equal(s.param_type, 'secret')
      assert.equal(s.sensitive, true)
      assert.equal(s.required, false, 'a gateway with no channel token still serves HTTP')
    }
  })

  it('writes syntactically valid scripts and pins the version', () => {
    for (const [name, text] of [
      ['install', installScript],
      ['start.sh', embedded('start.sh')],
    ]) {
      const r = spawnSync('bash', ['-n'], { input: text })
      assert.equal(r.status, 0, `${name}: ${r.stderr}`)
    }
    assert.ok(installScript.includes(`openclaw@${OPENCLAW_VERSION}`))
    const check = spawnSync('node', ['--check', '--input-type=module'], {
      input: embedded('configure.mjs'),
    })
    assert.equal(check.status, 0, String(check.stderr))
  })
})

describe('configure.mjs: OpenClaw config from env at each start', () => {
  const home = tempDir()
  const script = path.join(home, 'configure.mjs')
  const configFile = path.join(home, '.openclaw', 'openclaw.json')
  const run = (env: Record<string, string>) =>
    execFileSync('node', [script], {
      env: { PATH: process.env.PATH, HOME: home, ...env },
      encoding: 'utf8',
    })
  const config = () => JSON.parse(fs.readFileSync(configFile, 'utf8'))
  before(() => {
    fs.mkdirSync(path.join(home, '.openclaw-rigbox'), { recursive: true })
    fs.writeFileSync(script, embedded('configure.mjs'))
  })

  it('points the model provider at the AI proxy and keeps channel tokens out of the file', () => {
    const token = `123456:${crypto.randomBytes(8).toString('hex')}`
    run({
      OPENAI_BASE_URL: 'http://172.16.0.1:9090/v1',
      OPENAI_API_KEY: 'managed-by-rigbox',
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_ALLOW_FROM: '111, 222',
    })
    const c = config()
    assert.equal(c.models.providers.rigbox.baseUrl, 'http://172.16.0.1:9090/v1')
    assert.equal(c.models.providers.rigbox.apiKey, 'managed-by-rigbox')
    assert.equal(c.agents.defaults.model.primary, 'rigbox/rigbox/default')
    assert.equal(c.agents.defaults.heartbeat.every, '0m')
    assert.equal(c.gateway.bind, 'lan')
    assert.equal(c.gateway.auth.mode, 'token')
    assert.equal(c.gateway.auth.token, '${OPENCLAW_GATEWAY_TOKEN}')
    assert.equal(c.gateway.http.endpoints.chatCompletions.enabled, true)
    // The router's forwarded requests come from the VM's own network: trusted as a proxy.
    assert.ok(c.gateway.trustedProxies.length >= 1)
    for (const net of c.gateway.trustedProxies) assert.match(net, /^\d+\.\d+\.\d+\.\d+\/\d+$/)
    assert.deepEqual(c.channels.telegram, {
      enabled: true,
      dmPolicy: 'allowlist',
      allowFrom: ['111', '222'],
    })
    assert.ok(!fs.readFileSync(configFile, 'utf8').includes(token))
    const generated = path.join(home, '.openclaw-rigbox', 'gateway-token')
    assert.match(fs.readFileSync(generated, 'utf8'), /^[0-9a-f]{48}\n$/)
    assert.equal(fs.statSync(generated).mode & 0o777, 0o600)
  })

  it('keeps what the user added, and turns a channel off when its token goes', () => {
    const c = config()
    c.agents.defaults.workspace = '/home/developer/bot'
    c.channels.telegram.groups = { '*': { requireMention: true } }
    fs.writeFileSync(configFile, JSON.stringify(c))
    run({ OPENCLAW_MODEL: 'test/big', DISCORD_BOT_TOKEN: 'd-token' })
    const after = config()
    assert.equal(after.agents.defaults.workspace, '/home/developer/bot')
    assert.equal(after.channels.telegram.enabled, false)
    assert.deepEqual(after.channels.telegram.groups, { '*': { requireMention: true } })
    assert.deepEqual(after.channels.discord.token, {
      source: 'env',
      provider: 'default',
      id: 'DISCORD_BOT_TOKEN',
    })
    assert.equal(after.agents.defaults.model.primary, 'rigbox/test/big')
    assert.equal(after.models.providers.rigbox.models[0].id, 'test/big')
  })
})

/**
 * The node's address a LAN client would reach: OpenClaw refuses forwarded requests whose client
 * is loopback (it cannot attribute them), and a browser is never on the node's loopback.
 */
const lanAddress =
  Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address ?? '127.0.0.1'

/** One request to the router as a browser on the app's host would send it. */
function viaRouter(
  port: number,
  sub: string,
  p: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: lanAddress,
        port,
        path: p,
        method: opts.method ?? 'GET',
        headers: { host: `${sub}.localhost:${port}`, ...opts.headers },
      },
      (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The whole deploy in a real VM: quick deploy → boot → the template's setup script installs
 * OpenClaw from the registry (through the egress proxy) → the gateway unit starts → the app
 * answers through the router, and a chat on the gateway's OpenAI-compatible endpoint is answered
 * by the (fake) upstream through the managed AI proxy. One VM; the install dominates the time.
 */
describe('the openclaw template in a real VM', { timeout: 60 * 60_000 }, () => {
  let releaseVms = () => {}
  let upstream: AiUpstream
  let vmp: VmPlatform
  let owner: string
  let ws: { id: string }
  let app: { id: string; subdomain: string; port: number; name: string }
  const timings: Record<string, number> = {}
  // Built from parts, so a search for them inside the VM does not find its own command line.
  const managedKey = ['sk-managed', crypto.randomBytes(12).toString('hex')].join('-')
  const telegramToken = ['987654', crypto.randomBytes(12).toString('hex')].join(':')
  const api: VmPlatform['api'] = (...args) => vmp.api(...args)
  const sh = async (command: string, user: 'developer' | 'root' = 'developer') => {
    const res = await api(owner, 'POST', `/api/v1/workspaces/${ws.id}/exec`, {
      command,
      user,
      timeout_ms: 120_000,
    })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }

  before(async () => {
    releaseVms = await holdVmLock()
    upstream = await startAiUpstream()
    vmp = await startVmPlatform({
      ...(await packagesEnv()),
      // The router listens where the test's "browser" (lanAddress) reaches it.
      RIGBOX_HOST: lanAddress,
      RIGBOX_AI_UPSTREAM_URL: upstream.openaiUrl,
      RIGBOX_AI_UPSTREAM_KEY: managedKey,
      RIGBOX_AI_MODEL_DEFAULT: 'test/small',
      RIGBOX_AI_MODEL_FAST: 'test/small',
      RIGBOX_AI_MODEL_FREE: 'test/free',
    })
    owner = await vmp.makeUser('openclaw@example.com')
  })

  after(async () => {
    if (ws) await vmp?.api(owner, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await vmp?.close()
    await upstream?.close()
    releaseVms()
    console.log(`# openclaw timings (ms): ${JSON.stringify(timings)}`)
  })

  it('quick deploy makes the workspace at the floors and the gateway app, secrets masked', async () => {
    const res = await api(owner, 'POST', '/api/v1/quick-deploy', {
      template_id: 'openclaw',
      name: 'claw',
      ram_mb: 512,
      app_params: { gateway: { telegram_bot_token: telegramToken } },
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('QuickDeployResponse', res.json), [])
    ws = res.json.workspace
    assert.equal(res.json.workspace.ram_mb, openclawTemplate.ram_mb, 'raised to the floor')
    // App names are global, so the expected app `gateway` is named after its workspace too.
    app = res.json.expected_apps.find((a: { name: string }) => a.name.startsWith('gateway'))
    assert.ok(app, res.body)
    assert.equal(app.port, OPENCLAW_PORT)
    const params = await api(owner, 'GET', `/api/v1/apps/${app.id}/params`)
    assert.equal(params.status, 200, params.body)
    assert.deepEqual(referenceErrors('AppParamsResponse', params.json), [])
    assert.ok(!params.body.includes(telegramToken))
  })

  it('boots, and its setup installs OpenClaw and starts the gateway unit', async () => {
    const t0 = Date.now()
    await api(owner, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await waitStatus(vmp.platform.app, owner, ws.id, ['running'])
    timings.boot = Date.now() - t0
    // The install is minutes of npm under TCG; the runner reports it in setup_status.
    let vm
    for (const deadline = Date.now() + 45 * 60_000; ; await sleep(5000)) {
      vm = (await api(owner, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm
      if (vm.setup_status && vm.setup_status.state !== 'running') break
      assert.ok(Date.now() < deadline, `setup still running: ${JSON.stringify(vm.setup_status)}`)
    }
    const run = vm.setup_status.runs.find((r: { name: string }) => r.name === 'openclaw-install')
    assert.equal(run?.status, 'succeeded', JSON.stringify(vm.setup_status))
    timings.install = Date.parse(run.finished_at) - Date.parse(run.started_at)
    assert.equal(vm.setup_status.state, 'succeeded', JSON.stringify(vm.setup_status))
    const svc = await api(owner, 'GET', `/api/v1/workspaces/${ws.id}/services/gateway`)
    assert.equal(svc.status, 200, svc.body)
    assert.deepEqual(referenceErrors('WorkspaceService', svc.json), [])
    const version = await sh('~/.npm-global/bin/openclaw --version')
    assert.match(version.stdout, new RegExp(OPENCLAW_VERSION.replace(/\./g, '\\.')))
  })

  it('serves the gateway as a private app through the router', async () => {
    const t0 = Date.now()
    // The gateway takes a while to load under TCG; the route answers 502/503 until then.
    for (const deadline = Date.now() + 10 * 60_000; ; await sleep(3000)) {
      const r = await sh(`curl -s -m 5 http://127.0.0.1:${OPENCLAW_PORT}/health || true`)
      if (r.stdout.includes('"ok":true')) break
      if (Date.now() > deadline) {
        const why = await sh(
          'systemctl status rigbox-svc-gateway --no-pager; journalctl -u rigbox-svc-gateway -n 60 --no-pager; free -m',
          'root',
        )
        assert.fail(`the gateway never answered /health in the VM:\n${why.stdout}`)
      }
    }
    timings.gateway_ready = Date.now() - t0
    const anon = await viaRouter(vmp.routerPort, app.subdomain, '/health')
    assert.notEqual(anon.status, 200, 'private: no answer without a session')
    const link = await api(owner, 'POST', `/api/v1/apps/${app.id}/login-link`, {})
    assert.equal(link.status, 200, link.body)
    const u = new URL(link.json.url)
    const login = await viaRouter(vmp.routerPort, app.subdomain, u.pathname + u.search)
    assert.equal(login.status, 302, login.body)
    const cookie = String(login.headers['set-cookie']).split(';')[0]
    const health = await viaRouter(vmp.routerPort, app.subdomain, '/health', {
      headers: { cookie },
    })
    assert.equal(health.status, 200, health.body)
    assert.deepEqual(JSON.parse(health.body), { ok: true, status: 'live' })
    const ui = await viaRouter(vmp.routerPort, app.subdomain, '/', { headers: { cookie } })
    assert.equal(ui.status, 200)
    assert.match(ui.body, /openclaw-control-ui/)

    // The no-outside-service channel: the gateway's OpenAI-compatible chat endpoint.
    const chat = (bearer: string) =>
      viaRouter(vmp.routerPort, app.subdomain, '/v1/chat/completions', {
        method: 'POST',
        headers: { cookie, authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'openclaw',
          // Streamed: the router waits 60 s for an answer's headers, and a first agent turn
          // under TCG takes about that long.
          stream: true,
          messages: [{ role: 'user', content: 'Tell me about foxes.' }],
        }),
      })
    // No gateway token param was set: the one generated in the VM, read as the user would (SSH).
    const gatewayToken = (await sh('cat ~/.openclaw-rigbox/gateway-token')).stdout.trim()
    assert.match(gatewayToken, /^[0-9a-f]{48}$/)
    assert.equal((await chat('not-the-token')).status, 401)
    const before = upstream.requests.length
    const t1 = Date.now()
    const answer = await chat(gatewayToken)
    timings.chat = Date.now() - t1
    assert.equal(answer.status, 200, answer.body)
    assert.match(String(answer.headers['content-type']), /text\/event-stream/)
    const text = answer.body
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
      .join('')
    assert.equal(text.trim(), REPLY, answer.body)
    const seen = upstream.requests.slice(before).filter((r) => r.path === '/v1/chat/completions')
    assert.ok(seen.length >= 1, 'the upstream was asked')
    for (const r of seen) {
      assert.equal(r.headers.authorization, `Bearer ${managedKey}`, 'the proxy’s key, not the VM’s')
      assert.equal(r.body?.model, 'test/small', 'rigbox/default resolved by the proxy')
    }
  })

  it('hands channel tokens to the unit as env, never into OpenClaw’s config', async () => {
    const cfg = JSON.parse((await sh('cat ~/.openclaw/openclaw.json')).stdout)
    assert.equal(cfg.channels.telegram.enabled, true)
    assert.equal(cfg.models.providers.rigbox.baseUrl, 'http://172.16.0.1:9090/v1')
    const [a, b] = [telegramToken.slice(0, 8), telegramToken.slice(8)]
    const holders = await sh(
      `k="${a}""${b}"; grep -rlF -- "$k" /home/developer/.openclaw /etc/rigbox 2>/dev/null; ` +
        `for p in $(pgrep -f openclaw-gateway); do tr '\\0' '\\n' < /proc/$p/environ | ` +
        `grep -qF -- "TELEGRAM_BOT_TOKEN=$k" && echo "env:$p"; done; true`,
      'root',
    )
    const found = holders.stdout.split('\n').filter(Boolean)
    assert.ok(
      found.some((f) => f.startsWith('env:')),
      `the gateway has it in its env: ${found}`,
    )
    assert.ok(
      found.every((f) => f.startsWith('env:') || f.startsWith('/etc/rigbox/apps/')),
      `only the root-only env file holds it: ${found}`,
    )
  })
})
