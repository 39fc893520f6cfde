import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { loadOrCreateKeyPair } from '../../src/ssh/keypair.ts'
import { hasSshKeygen, keygenFingerprint, tempDir } from './helpers.ts'

describe('loadOrCreateKeyPair', () => {
  let dir: string
  before(() => {
    dir = tempDir('keypair')
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  test('creates an ed25519 OpenSSH key with mode 0600 and a .pub, then reuses it', async () => {
    const file = path.join(dir, 'sub', 'gateway_key')
    const first = await loadOrCreateKeyPair(file, 'rigbox-gateway')
    assert.match(first.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/)
    assert.match(first.publicKey, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ rigbox-gateway$/)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.equal(fs.readFileSync(`${file}.pub`, 'utf8'), first.publicKey + '\n')
    if (hasSshKeygen) assert.equal(first.fingerprint, await keygenFingerprint(`${file}.pub`))

    const again = await loadOrCreateKeyPair(file, 'rigbox-gateway')
    assert.deepEqual(again, first)
  })

  test('concurrent first starts agree on one key', async () => {
    const file = path.join(dir, 'race_key')
    const pairs = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKeyPair(file)))
    for (const p of pairs) assert.equal(p.fingerprint, pairs[0].fingerprint)
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    )
  })

  test('tightens a loosened private key back to 0600', async () => {
    const file = path.join(dir, 'loose_key')
    await loadOrCreateKeyPair(file)
    fs.chmodSync(file, 0o644)
    await loadOrCreateKeyPair(file)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
  })

  test('refuses a file that holds no private key', async () => {
    const file = path.join(dir, 'garbage')
    fs.writeFileSync(file, 'not a key\n', { mode: 0o600 })
    await assert.rejects(loadOrCreateKeyPair(file), /cannot read SSH key/)
  })
})
