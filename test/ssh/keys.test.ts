import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  formatPublicKey,
  MAX_KEY_LINE_LENGTH,
  parsePublicKey,
  SshKeyError,
} from '../../src/ssh/keys.ts'
import { hasSshKeygen, keygen, keygenFingerprint, lineFromFields, tempDir } from './helpers.ts'

const refuses = (line: string, message: RegExp) =>
  assert.throws(
    () => parsePublicKey(line),
    (err: unknown) => {
      assert.ok(err instanceof SshKeyError, `expected SshKeyError, got ${String(err)}`)
      assert.match(err.message, message)
      return true
    },
  )

function ecPoint(curve: string): Buffer {
  const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: curve })
  const jwk = publicKey.export({ format: 'jwk' })
  return Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ])
}

function ed25519Raw(): Buffer {
  const { publicKey } = crypto.generateKeyPairSync('ed25519')
  return Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
}

describe('parsePublicKey against ssh-keygen', { skip: !hasSshKeygen && 'no ssh-keygen' }, () => {
  let dir: string
  before(() => {
    dir = tempDir('keys')
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  const generated: [string, string[], string][] = [
    ['ed25519', ['-t', 'ed25519'], 'ssh-ed25519'],
    ['rsa2048', ['-t', 'rsa', '-b', '2048'], 'ssh-rsa'],
    ['rsa3072', ['-t', 'rsa', '-b', '3072'], 'ssh-rsa'],
    ['ecdsa256', ['-t', 'ecdsa', '-b', '256'], 'ecdsa-sha2-nistp256'],
    ['ecdsa384', ['-t', 'ecdsa', '-b', '384'], 'ecdsa-sha2-nistp384'],
    ['ecdsa521', ['-t', 'ecdsa', '-b', '521'], 'ecdsa-sha2-nistp521'],
  ]
  for (const [name, args, type] of generated) {
    test(`${name}: type, blob, comment and fingerprint as ssh-keygen sees them`, async () => {
      const file = await keygen(dir, name, args)
      const text = fs.readFileSync(`${file}.pub`, 'utf8')
      const key = parsePublicKey(text) // with its trailing newline
      assert.equal(key.type, type)
      assert.equal(key.comment, `${name}@test`)
      assert.equal(key.blob.toString('base64'), text.split(' ')[1])
      assert.equal(key.fingerprint, await keygenFingerprint(`${file}.pub`))
      assert.equal(formatPublicKey(key), text.trim())
    })
  }

  const synthetic: [string, () => string][] = [
    [
      'sk-ssh-ed25519@openssh.com',
      () =>
        lineFromFields('sk-ssh-ed25519@openssh.com', [ed25519Raw(), Buffer.from('ssh:')], 'yubi'),
    ],
    [
      'sk-ecdsa-sha2-nistp256@openssh.com',
      () =>
        lineFromFields('sk-ecdsa-sha2-nistp256@openssh.com', [
          Buffer.from('nistp256'),
          ecPoint('P-256'),
          Buffer.from('ssh:'),
        ]),
    ],
  ]
  for (const [type, make] of synthetic) {
    test(`${type} (built by hand): fingerprint matches ssh-keygen`, async () => {
      const line = make()
      const file = path.join(dir, `${type}.pub`)
      fs.writeFileSync(file, line + '\n')
      const key = parsePublicKey(line)
      assert.equal(key.type, type)
      assert.equal(key.fingerprint, await keygenFingerprint(file))
    })
  }

  test('refuses RSA below 2048 bits, naming the size', async () => {
    const file = await keygen(dir, 'rsa1024', ['-t', 'rsa', '-b', '1024'])
    refuses(fs.readFileSync(`${file}.pub`, 'utf8'), /at least 2048 bits \(this one has 1024\)/)
  })

  test('refuses a private key with a warning to keep it secret', async () => {
    const file = await keygen(dir, 'priv', ['-t', 'ed25519'])
    refuses(fs.readFileSync(file, 'utf8'), /private key.*keep the private key secret/)
  })
})

describe('parsePublicKey refusals', () => {
  const ed = lineFromFields('ssh-ed25519', [ed25519Raw()])
  const [, b64] = ed.split(' ')

  test('keeps a comment with spaces, tolerates surrounding whitespace', () => {
    const key = parsePublicKey(`  ${ed} my laptop (work)\r\n`)
    assert.equal(key.comment, 'my laptop (work)')
    assert.equal(parsePublicKey(`ssh-ed25519\t${b64}`).comment, '')
  })
  test('empty, too long, several lines', () => {
    refuses('  \n', /empty/)
    refuses(`${ed} ${'x'.repeat(MAX_KEY_LINE_LENGTH)}`, /too long/)
    refuses(`${ed}\n${ed}`, /single line/)
  })
  test('authorized_keys options before the type', () => {
    refuses(`command="ls" ${ed}`, /options before the key type/)
    refuses(`restrict ${ed}`, /options before the key type/)
    refuses(`no-pty,from="10.0.0.1" ${ed}`, /options before the key type/)
  })
  test('unsupported types: DSA, certificates, unknown, RFC 4716', () => {
    refuses(`ssh-dss ${b64}`, /DSA .* not supported/)
    refuses(`ssh-ed25519-cert-v01@openssh.com ${b64}`, /certificates are not supported/)
    refuses(`ssh-foo ${b64}`, /unsupported SSH key type "ssh-foo"/)
    refuses(`---- BEGIN SSH2 PUBLIC KEY ----\n${b64}\n---- END SSH2 PUBLIC KEY ----`, /RFC 4716/)
  })
  test('missing or broken key data', () => {
    refuses('ssh-ed25519', /no key data/)
    refuses('ssh-ed25519 not*base64', /not valid base64/)
    refuses(`ssh-ed25519 ${b64.slice(0, -1)}`, /not valid base64/)
  })
  test('declared type differs from the embedded one', () => {
    refuses(`ssh-rsa ${b64}`, /of type "ssh-ed25519" but the line says "ssh-rsa"/)
  })
  test('truncated blob, trailing data, bad ed25519 length', () => {
    const blob = Buffer.from(b64, 'base64')
    refuses(`ssh-ed25519 ${blob.subarray(0, blob.length - 3).toString('base64')}`, /malformed/)
    refuses(lineFromFields('ssh-ed25519', [ed25519Raw(), Buffer.from('x')]), /trailing data/)
    refuses(lineFromFields('ssh-ed25519', [Buffer.alloc(31)]), /bad ed25519 public key/)
  })
  test('EC: point off the curve, wrong curve name, compressed point', () => {
    const point = ecPoint('P-256')
    point[point.length - 1] ^= 1
    refuses(
      lineFromFields('ecdsa-sha2-nistp256', [Buffer.from('nistp256'), point]),
      /invalid key material/,
    )
    refuses(
      lineFromFields('ecdsa-sha2-nistp256', [Buffer.from('nistp384'), ecPoint('P-384')]),
      /curve does not match/,
    )
    const compressed = Buffer.concat([Buffer.from([2]), ecPoint('P-256').subarray(1, 33)])
    refuses(
      lineFromFields('ecdsa-sha2-nistp256', [Buffer.from('nistp256'), compressed]),
      /bad EC point/,
    )
  })
  test('sk key without application string', () => {
    refuses(lineFromFields('sk-ssh-ed25519@openssh.com', [ed25519Raw()]), /application/)
  })
  test('control characters in the comment', () => {
    refuses(`${ed} evil\x1b[2Jcomment`, /control characters/)
  })
})
