import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { rig } from '../helpers/cli.ts'

describe('rig CLI against a listening server', () => {
  let t: TestApp
  let url: string
  let key: string
  let env: Record<string, string>
  before(async () => {
    t = await makeApp()
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const addr = t.app.server.address() as { port: number }
    url = `http://127.0.0.1:${addr.port}`
    key = (await makeUser(t, 'cli@example.com', 'pro')).key
    // An empty config dir and data dir: nothing but what each test passes.
    env = {
      RIGBOX_CONFIG_DIR: tempDir(),
      RIGBOX_DATA_DIR: tempDir(),
      RIGBOX_API_URL: '',
      RIGBOX_API_KEY: '',
    }
  })
  after(() => t.close())

  it('logs in with the key on stdin, saving it 0600, then knows who it is', async () => {
    const login = await rig(['login', '--url', url], env, `${key}\n`)
    assert.equal(login.code, 0, login.stderr)
    assert.match(login.stdout, /logged in .* as cli@example.com/)
    const saved = path.join(env.RIGBOX_CONFIG_DIR, 'config.json')
    assert.equal(fs.statSync(saved).mode & 0o777, 0o600)
    assert.deepEqual(JSON.parse(fs.readFileSync(saved, 'utf8')), { api_url: url, api_key: key })
    const who = await rig(['whoami'], env)
    assert.equal(who.code, 0, who.stderr)
    assert.match(who.stdout, /cli@example.com/)
    const bad = await rig(['login', '--url', url, '--key', 'nope'], env)
    assert.notEqual(bad.code, 0)
  })

  it('manages workspaces with tables for people and --json for scripts', async () => {
    const made = await rig(['--json', 'workspace', 'new', 'cli-ws', '--ram', '1024'], env)
    assert.equal(made.code, 0, made.stderr)
    const vm = JSON.parse(made.stdout)
    assert.match(vm.id, /^ws-/)
    assert.equal(vm.ram_mb, 1024)

    const ls = await rig(['workspace', 'ls'], env)
    assert.match(ls.stdout, /^ID\s+NAME\s+STATUS/m)
    assert.match(ls.stdout, new RegExp(`${vm.id}\\s+cli-ws\\s+provisioned`))

    const set = await rig(['workspace', 'env', 'set', 'cli-ws', 'A=1', 'B=x=y'], env)
    assert.equal(set.code, 0, set.stderr)
    await rig(['workspace', 'env', 'unset', 'cli-ws', 'A'], env)
    const vars = JSON.parse((await rig(['--json', 'workspace', 'env', 'ls', vm.id], env)).stdout)
    assert.deepEqual(vars, { B: 'x=y' })

    const resized = await rig(['--json', 'workspace', 'resize', 'cli-ws', '--disk', '5120'], env)
    assert.equal(JSON.parse(resized.stdout).vm.disk_size_mb, 5120)

    const get = await rig(['workspace', 'get', 'cli-ws'], env)
    assert.match(get.stdout, /status:\s+provisioned/)

    const start = await rig(['workspace', 'start', 'cli-ws'], env)
    assert.equal(start.code, 1)
    assert.match(start.stderr, /no compute node is available/)

    const rm = await rig(['workspace', 'rm', 'cli-ws'], env)
    assert.equal(rm.code, 0, rm.stderr)
  })

  it('lists templates and manages keys', async () => {
    const templates = await rig(['template', 'ls'], env)
    assert.match(templates.stdout, /^base\s+base/m)
    assert.match(templates.stdout, /^dev\s+dev/m)
    const created = JSON.parse(
      (await rig(['--json', 'key', 'create', '--name', 'tmp'], env)).stdout,
    )
    assert.match(created.key, /^rb_/)
    const listed = await rig(['key', 'ls'], env)
    assert.match(listed.stdout, new RegExp(created.api_key.id))
    assert.equal((await rig(['key', 'rm', created.api_key.id], env)).code, 0)
    const revoked = await rig(['whoami'], { ...env, RIGBOX_API_KEY: created.key })
    assert.equal(revoked.code, 3)
    assert.match(revoked.stderr, /invalid or revoked API key/)
  })

  it('manages SSH keys', async () => {
    const dir = tempDir()
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')])
    const added = await rig(['ssh-key', 'add', path.join(dir, 'id.pub'), '--name', 'cli-key'], env)
    assert.equal(added.code, 0, added.stderr)
    assert.match(added.stdout, /added cli-key \(SHA256:/)
    const listed = JSON.parse((await rig(['--json', 'ssh-key', 'ls'], env)).stdout)
    assert.equal(listed.length, 1)
    assert.equal((await rig(['ssh-key', 'rm', listed[0].id], env)).code, 0)
    const missing = await rig(['ssh-key', 'add', path.join(dir, 'nope.pub')], env)
    assert.equal(missing.code, 2)
  })

  it('fails clearly: unknown workspace, unreachable API, missing arguments', async () => {
    const missing = await rig(['workspace', 'get', 'no-such-ws'], env)
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no workspace named or with id "no-such-ws"/)
    const closed = net.createServer().listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const port = (closed.address() as net.AddressInfo).port
    closed.close()
    const down = await rig(['whoami'], { ...env, RIGBOX_API_URL: `http://127.0.0.1:${port}` })
    assert.equal(down.code, 4)
    assert.match(down.stderr, /cannot reach the Rigbox API/)
    const usage = await rig(['workspace', 'new'], env)
    assert.notEqual(usage.code, 0)
    assert.match(usage.stderr, /missing required argument/)
  })
})
