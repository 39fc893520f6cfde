import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

/** A fresh key pair from OpenSSH's own ssh-keygen: its .pub line and fingerprint. */
function keygen(dir: string, name: string, type = 'ed25519', bits?: number) {
  const file = path.join(dir, name)
  const size = bits ? ['-b', String(bits)] : []
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...size,
    '-N',
    '',
    '-C',
    `${name}@test`,
    '-f',
    file,
  ])
  const pub = fs.readFileSync(`${file}.pub`, 'utf8').trim()
  const fp = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1]
  return { pub, fp }
}

describe('SSH keys API', () => {
  let t: TestApp
  let node: FakeNode
  let key: string
  let otherKey: string
  const dir = tempDir()
  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'ssh@example.com', 'free')).key
    otherKey = (await makeUser(t, 'ssh-other@example.com')).key
  })
  after(() => t.close())

  it('registers a key with the fingerprint ssh-keygen prints, once', async () => {
    const { pub, fp } = keygen(dir, 'laptop')
    const res = await call(t.app, key, 'POST', '/api/v1/ssh-keys', {
      name: 'laptop',
      public_key: `${pub}\n`,
    })
    assert.equal(res.status, 201, res.body)
    assert.deepEqual(referenceErrors('SshKeyWithFingerprint', res.json), [])
    assert.equal(res.json.fingerprint, fp)
    assert.equal(res.json.public_key, pub)
    const again = await call(t.app, key, 'POST', '/api/v1/ssh-keys', {
      name: 'dup',
      public_key: pub,
    })
    assert.equal(again.status, 409)
    const list = await call(t.app, key, 'GET', '/api/v1/ssh-keys')
    assert.deepEqual(referenceErrors('SshKeysResponse', list.json), [])
    assert.equal(list.json.ssh_keys.length, 1)
  })

  it('refuses malformed keys with a clear message', async () => {
    const weak = keygen(dir, 'weak', 'rsa', 1024).pub
    const mismatched = 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA=='
    for (const bad of ['not a key', 'ssh-ed25519 !!!notbase64', mismatched, weak]) {
      const res = await call(t.app, key, 'POST', '/api/v1/ssh-keys', {
        name: 'bad',
        public_key: bad,
      })
      assert.equal(res.status, 400, bad)
      assert.equal(res.json.error.code, 'VALIDATION_ERROR')
      assert.ok(res.json.error.message.length > 10)
    }
  })

  it("hides other users' keys and limits keys per plan", async () => {
    const mine = (await call(t.app, key, 'GET', '/api/v1/ssh-keys')).json.ssh_keys[0]
    assert.equal((await call(t.app, otherKey, 'DELETE', `/api/v1/ssh-keys/${mine.id}`)).status, 404)
    for (let i = 0; i < 4; i++) {
      const { pub } = keygen(dir, `k${i}`)
      assert.equal(
        (await call(t.app, key, 'POST', '/api/v1/ssh-keys', { name: `k${i}`, public_key: pub }))
          .status,
        201,
      )
    }
    const { pub } = keygen(dir, 'sixth')
    const over = await call(t.app, key, 'POST', '/api/v1/ssh-keys', {
      name: 'sixth',
      public_key: pub,
    })
    assert.equal(over.status, 402)
    assert.match(over.json.error.message, /max_ssh_keys/)
  })

  it('pushes key changes into running workspaces with the gateway key beside them', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'sshbox' })).json.vm
    assert.match(
      ws.ssh_command,
      new RegExp(`^ssh -p 2222 sshbox-${ws.id.slice(3)}@127\\.0\\.0\\.1$`),
    )
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await t.app.rigbox.reconciler.idle()
    const before = node.configured.length
    const first = (await call(t.app, key, 'GET', '/api/v1/ssh-keys')).json.ssh_keys[0]
    assert.equal((await call(t.app, key, 'DELETE', `/api/v1/ssh-keys/${first.id}`)).status, 200)
    assert.equal(node.configured.length, before + 1)
    const pushed = node.configured.at(-1)!
    assert.equal(pushed.id, ws.id)
    assert.equal(pushed.authorizedKeys.length, 5, 'four user keys and the gateway key')
    assert.ok(pushed.authorizedKeys.includes(t.app.rigbox.gatewayKey.publicKey))
    assert.ok(!pushed.authorizedKeys.includes(first.public_key))
  })

  it('lists the keys a stopped workspace will get, and refuses to sync it', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'idle' })).json.vm
    const list = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/ssh-keys`)
    assert.equal(list.status, 200)
    assert.deepEqual(referenceErrors('ListWorkspaceSshKeysResponse', list.json), [])
    assert.equal(list.json.keys.length, 4)
    assert.match(list.json.keys[0].fingerprint, /^SHA256:/)
    const sync = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/ssh-keys/sync`)
    assert.equal(sync.status, 409)
  })
})
