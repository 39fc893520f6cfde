// Who gets in, what the others are told, and the limits around it — with the real OpenSSH client.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { HOST_KEY_FILE, startSshGateway } from '../../src/ssh/gateway.ts'
import { BETA, GAMMA, startGatewayEnv, type GatewayEnv } from './gateway-env.ts'
import { keygen, keygenFingerprint, tempDir } from './helpers.ts'
import { hasSshd, isRoot } from './sshd-fixture.ts'

const skip = !hasSshd ? 'needs openssh-server and openssh-client' : !isRoot ? 'needs root' : false

describe('SSH gateway: access and limits', { skip }, () => {
  let env: GatewayEnv
  before(async () => {
    env = await startGatewayEnv()
  })
  after(async () => {
    await env?.stop()
  })

  test('a key nobody registered is refused like OpenSSH refuses it', async () => {
    const r = await env.ssh(['true'], { key: env.strangerKey })
    assert.equal(r.code, 255)
    assert.match(r.stderr, /Permission denied \(publickey\)/)
  })

  test('an unknown workspace user gets the same answer (no probing of names)', async () => {
    const r = await env.ssh(['true'], { user: 'nosuch-abcdefgh' })
    assert.equal(r.code, 255)
    assert.match(r.stderr, /Permission denied \(publickey\)/)
  })

  test('passwords and keyboard-interactive are not offered', async () => {
    const r = await env.ssh([
      '-o',
      'PreferredAuthentications=password,keyboard-interactive',
      'true',
    ])
    assert.equal(r.code, 255)
    assert.match(r.stderr, /Permission denied \(publickey\)/)
  })

  test('a stopped workspace tells its owner how to start it', async () => {
    const r = await env.ssh(['true'], { user: BETA })
    assert.equal(r.code, 1)
    assert.equal(r.stderr, 'workspace beta is stopped: start it with `rig workspace start beta`\n')
    const fwd = await env.ssh(['-W', '127.0.0.1:9'], { user: BETA })
    assert.equal(fwd.code, 255)
    assert.match(fwd.stderr, /stdio forwarding failed/)
  })

  test('a guest whose host key is not the pinned one is not used', async () => {
    const r = await env.ssh(['true'], { user: GAMMA })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /workspace gamma is running but its SSH server does not answer yet/)
  })

  test('authentication attempts are bounded per connection', async () => {
    const strangers = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((i) => keygen(env.dir, `s${i}`, ['-t', 'ed25519'])),
    )
    // OpenSSH offers the -i keys in order; each refusal counts (limit 6, as sshd's MaxAuthTries).
    const run = (keys: string[]) =>
      env.ssh([...keys.slice(1).flatMap((k) => ['-i', k]), 'echo in'], { key: keys[0] })
    const sixth = await run([...strangers.slice(0, 5), env.userKey])
    assert.equal(sixth.stdout, 'in\n', 'the right key as 6th attempt still works')
    const seventh = await run([...strangers, env.userKey])
    assert.equal(seventh.code, 255)
    assert.equal(seventh.stdout, '')
  })

  test('the host key persists across restarts (known_hosts stays valid)', async () => {
    const knownHosts = path.join(env.dir, 'known_hosts')
    const strict = (mode: string) => [
      '-o',
      `StrictHostKeyChecking=${mode}`,
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      'echo ok',
    ]
    const first = await env.ssh(strict('accept-new'))
    assert.equal(first.stdout, 'ok\n', first.stderr)
    const before = env.gw.hostKeyFingerprint
    const gw = await env.restart()
    assert.equal(gw.hostKeyFingerprint, before)
    const again = await env.ssh(strict('yes'))
    assert.equal(again.stdout, 'ok\n', again.stderr)

    const keyFile = path.join(env.dir, 'hostkeys', HOST_KEY_FILE)
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600)
    assert.equal(await keygenFingerprint(`${keyFile}.pub`), before)
  })
})

describe('SSH gateway: connection limits', () => {
  const hello = (port: number) =>
    new Promise<{ socket: net.Socket; banner: string; closed: Promise<void> }>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      const closed = new Promise<void>((r) => socket.once('close', () => r()))
      socket.on('error', () => undefined)
      socket.once('data', (d) => resolve({ socket, banner: d.toString(), closed }))
      void closed.then(() => resolve({ socket, banner: '', closed }))
    })

  test('per-IP connection limit and login grace time', async () => {
    const dir = tempDir('gwlimits')
    const gw = await startSshGateway(
      {
        resolve: async () => null,
        ownerKeys: async () => [],
        guestSshd: async () => null,
        gatewayKey: { privateKey: '', publicKey: '' },
      },
      { port: 0, hostKeyDir: dir, maxConnectionsPerIp: 2, loginGraceMs: 1000 },
    )
    try {
      const a = await hello(gw.port)
      const b = await hello(gw.port)
      assert.match(a.banner, /^SSH-2\.0-Rigbox/)
      assert.match(b.banner, /^SSH-2\.0-Rigbox/)
      const c = await hello(gw.port)
      assert.equal(c.banner, '', 'a third connection from the same IP is dropped')
      a.socket.destroy()
      await a.closed
      await new Promise((r) => setTimeout(r, 50))
      const d = await hello(gw.port)
      assert.match(d.banner, /^SSH-2\.0-Rigbox/, 'a freed slot can be used again')
      // Neither b nor d ever authenticates: the grace time closes them.
      const started = Date.now()
      await Promise.all([b.closed, d.closed])
      assert.ok(Date.now() - started < 3000)
    } finally {
      await gw.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
