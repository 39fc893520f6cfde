import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { after, before, describe, test } from 'node:test'
import ssh2 from 'ssh2'
import { parsePublicKey } from '../../src/ssh/keys.ts'
import { splitSkSignature, verifyAuthSignature } from '../../src/ssh/verify.ts'
import { wireString } from '../../src/ssh/wire.ts'
import { hasSshKeygen, keygen, lineFromFields, tempDir } from './helpers.ts'

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest()
const data = crypto.randomBytes(64)

/** What a FIDO authenticator signs for OpenSSH (PROTOCOL.u2f). */
function skSigned(app: string, flags: number, counter: number, msg: Buffer): Buffer {
  const fc = Buffer.alloc(5)
  fc.writeUInt8(flags, 0)
  fc.writeUInt32BE(counter, 1)
  return Buffer.concat([sha256(Buffer.from(app)), fc, sha256(msg)])
}
const flagsCounter = (flags: number, counter: number) => {
  const b = Buffer.alloc(5)
  b.writeUInt8(flags, 0)
  b.writeUInt32BE(counter, 1)
  return b
}
const mpint = (v: Buffer) => {
  let i = 0
  while (i < v.length - 1 && v[i] === 0) i++
  const m = v.subarray(i)
  return m[0] & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m
}

describe('security-key (sk-) signatures', () => {
  const edPair = crypto.generateKeyPairSync('ed25519')
  const edRaw = Buffer.from(edPair.publicKey.export({ format: 'jwk' }).x!, 'base64url')
  const edKey = parsePublicKey(
    lineFromFields('sk-ssh-ed25519@openssh.com', [edRaw, Buffer.from('ssh:')]),
  )
  const edSig = (flags: number, msg = data) =>
    Buffer.concat([
      crypto.sign(null, skSigned('ssh:', flags, 7, msg), edPair.privateKey),
      flagsCounter(flags, 7),
    ])

  test('sk-ssh-ed25519: valid as ssh2 passes it (type and length stripped) and in full', () => {
    const stripped = edSig(1)
    const algo = 'sk-ssh-ed25519@openssh.com'
    assert.equal(verifyAuthSignature(edKey, { algo, signature: stripped, data }), true)
    const full = Buffer.concat([
      wireString(algo),
      wireString(stripped.subarray(0, 64)),
      stripped.subarray(64),
    ])
    assert.equal(verifyAuthSignature(edKey, { algo, signature: full, data }), true)
    assert.deepEqual(splitSkSignature(algo, full)?.counter, 7)
  })
  test('sk-ssh-ed25519: refused without user presence, for other data, other algorithm', () => {
    const algo = 'sk-ssh-ed25519@openssh.com'
    assert.equal(verifyAuthSignature(edKey, { algo, signature: edSig(0), data }), false)
    const other = crypto.randomBytes(64)
    assert.equal(verifyAuthSignature(edKey, { algo, signature: edSig(1), data: other }), false)
    assert.equal(
      verifyAuthSignature(edKey, { algo: 'ssh-ed25519', signature: edSig(1), data }),
      false,
    )
  })

  test('sk-ecdsa-sha2-nistp256: valid, and refused when tampered', () => {
    const pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = pair.publicKey.export({ format: 'jwk' })
    const point = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(jwk.x!, 'base64url'),
      Buffer.from(jwk.y!, 'base64url'),
    ])
    const type = 'sk-ecdsa-sha2-nistp256@openssh.com'
    const key = parsePublicKey(
      lineFromFields(type, [Buffer.from('nistp256'), point, Buffer.from('ssh:')]),
    )
    const rs = crypto.sign('sha256', skSigned('ssh:', 5, 42, data), {
      key: pair.privateKey,
      dsaEncoding: 'ieee-p1363',
    })
    const stripped = Buffer.concat([
      wireString(mpint(rs.subarray(0, 32))),
      wireString(mpint(rs.subarray(32))),
      flagsCounter(5, 42),
    ])
    assert.equal(verifyAuthSignature(key, { algo: type, signature: stripped, data }), true)
    const tampered = Buffer.from(stripped)
    tampered[tampered.length - 1] ^= 1 // the counter is signed too
    assert.equal(verifyAuthSignature(key, { algo: type, signature: tampered, data }), false)
  })
})

describe('standard key signatures through ssh2', { skip: !hasSshKeygen && 'no ssh-keygen' }, () => {
  let dir: string
  before(() => {
    dir = tempDir('verify')
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  const sign = (privFile: string, hash?: string) => {
    const priv = ssh2.utils.parseKey(fs.readFileSync(privFile))
    if (priv instanceof Error) throw priv
    return priv.sign(data, hash)
  }

  test('ed25519 and ecdsa: valid; other data refused', async () => {
    for (const [name, args] of [
      ['ed', ['-t', 'ed25519']],
      ['ec', ['-t', 'ecdsa', '-b', '384']],
    ] as const) {
      const file = await keygen(dir, name, [...args])
      const key = parsePublicKey(fs.readFileSync(`${file}.pub`, 'utf8'))
      const signature = sign(file)
      assert.equal(verifyAuthSignature(key, { algo: key.type, signature, data }), true, name)
      const other = crypto.randomBytes(8)
      assert.equal(verifyAuthSignature(key, { algo: key.type, signature, data: other }), false)
    }
  })

  test('rsa: rsa-sha2-256/512 accepted, SHA-1 ssh-rsa refused', async () => {
    const file = await keygen(dir, 'rsa', ['-t', 'rsa', '-b', '2048'])
    const key = parsePublicKey(fs.readFileSync(`${file}.pub`, 'utf8'))
    for (const hashAlgo of ['sha256', 'sha512']) {
      const signature = sign(file, hashAlgo)
      assert.equal(verifyAuthSignature(key, { algo: 'ssh-rsa', hashAlgo, signature, data }), true)
    }
    const sha1 = sign(file, 'sha1')
    assert.equal(verifyAuthSignature(key, { algo: 'ssh-rsa', signature: sha1, data }), false)
  })
})
