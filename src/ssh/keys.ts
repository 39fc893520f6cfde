import crypto, { type KeyObject } from 'node:crypto'
import { bitLength, mpintMagnitude, WireReader } from './wire.ts'

export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const
export type SshKeyType = (typeof SSH_KEY_TYPES)[number]

export interface ParsedPublicKey {
  type: SshKeyType
  /** The decoded key blob (what the client offers during public-key authentication). */
  blob: Buffer
  comment: string
  /** As `ssh-keygen -l` prints it: `SHA256:` + unpadded base64 of sha256(blob). */
  fingerprint: string
}

/** The key material behind a blob, ready for signature checks. */
export interface DecodedKey {
  type: SshKeyType
  key: KeyObject
  /** FIDO application string of `sk-` keys (usually `ssh:`), signed over by the authenticator. */
  application?: string
}

/** Refusal of a public key; `message` is written for the person who pasted it. */
export class SshKeyError extends Error {
  readonly code = 'INVALID_SSH_KEY'
}

export const MAX_KEY_LINE_LENGTH = 8192
const MIN_RSA_BITS = 2048
// OpenSSH refuses RSA moduli above 16384 bits (SSH_RSA_MAXIMUM_MODULUS_SIZE).
const MAX_RSA_BITS = 16384

const CURVES = {
  nistp256: { crv: 'P-256', size: 32 },
  nistp384: { crv: 'P-384', size: 48 },
  nistp521: { crv: 'P-521', size: 66 },
} as const

const isKeyType = (t: string): t is SshKeyType => (SSH_KEY_TYPES as readonly string[]).includes(t)

export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/**
 * Parses one OpenSSH public key line (`<type> <base64> [comment]`, as in a `.pub` file). Leading
 * and trailing whitespace (a pasted trailing newline) is ignored; anything else unusual is refused
 * with an SshKeyError saying why.
 */
export function parsePublicKey(input: string): ParsedPublicKey {
  if (typeof input !== 'string') throw new SshKeyError('SSH public key must be a string')
  const line = input.trim()
  if (line === '') throw new SshKeyError('SSH public key is empty')
  // Checked first: a pasted private key must get this warning, not a complaint about its shape.
  if (/^(-----BEGIN |PuTTY-User-Key-File-)/.test(line)) {
    throw new SshKeyError(
      'this looks like a private key: add the public key (the .pub file) instead, and keep the private key secret',
    )
  }
  if (line.startsWith('---- BEGIN SSH2 PUBLIC KEY')) {
    throw new SshKeyError(
      'RFC 4716 public keys are not accepted: convert it with `ssh-keygen -i -f FILE`',
    )
  }

  if (line.length > MAX_KEY_LINE_LENGTH) {
    throw new SshKeyError(
      `SSH public key is too long (${line.length} characters, at most ${MAX_KEY_LINE_LENGTH})`,
    )
  }
  if (/[\r\n]/.test(line)) {
    throw new SshKeyError('SSH public key must be a single line (add one key at a time)')
  }
  const m = /^(\S+)(?:[ \t]+(\S+))?(?:[ \t]+(.*))?$/.exec(line)
  if (!m) throw new SshKeyError('SSH public key is malformed')
  const [, declared, b64, rawComment] = m
  checkDeclaredType(declared, line)
  const type = declared as SshKeyType

  if (b64 === undefined) throw new SshKeyError(`SSH public key has no key data after "${type}"`)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new SshKeyError('SSH public key data is not valid base64')
  }
  const blob = Buffer.from(b64, 'base64')
  if (blob.toString('base64') !== b64) {
    throw new SshKeyError('SSH public key data is not valid base64')
  }
  decodeKeyBlob(blob, type)

  const comment = (rawComment ?? '').trim()
  // Comments are shown in the dashboard and CLI: no terminal escapes or other control characters.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(comment)) {
    throw new SshKeyError('SSH public key comment contains control characters')
  }
  return { type, blob, comment, fingerprint: fingerprint(blob) }
}

function checkDeclaredType(declared: string, line: string): void {
  if (isKeyType(declared)) return
  const tokens = line.split(/[ \t]+/)
  if (declared.includes('=') || tokens.slice(1).some(isKeyType)) {
    throw new SshKeyError(
      'options before the key type (such as command="…", from="…" or restrict) are not accepted: add only "<type> <key> [comment]"',
    )
  }
  if (declared === 'ssh-dss') {
    throw new SshKeyError(
      'DSA (ssh-dss) keys are not supported, OpenSSH disabled them: create an ed25519 key with `ssh-keygen -t ed25519`',
    )
  }
  if (declared.includes('-cert-v01@openssh.com')) {
    throw new SshKeyError('SSH certificates are not supported: add the public key itself')
  }
  throw new SshKeyError(
    `unsupported SSH key type "${declared.slice(0, 64)}": use one of ${SSH_KEY_TYPES.join(', ')}`,
  )
}

const malformed = (type: string, what: string) =>
  new SshKeyError(`SSH public key data is malformed (${type}: ${what})`)

/**
 * Decodes a key blob into key material, checking its structure strictly: the embedded type must
 * match `expected` (when given), fields must be complete, nothing may trail, RSA must be 2048+
 * bits and EC points must lie on their curve.
 */
export function decodeKeyBlob(blob: Buffer, expected?: SshKeyType): DecodedKey {
  const r = new WireReader(blob)
  const embedded = r.ascii()
  if (embedded === undefined) throw new SshKeyError('SSH public key data is malformed')
  if (expected !== undefined && embedded !== expected) {
    throw new SshKeyError(
      `SSH public key data is of type "${embedded.slice(0, 64)}" but the line says "${expected}"`,
    )
  }
  if (!isKeyType(embedded)) {
    throw new SshKeyError(`unsupported SSH key type "${embedded.slice(0, 64)}"`)
  }
  const type = embedded
  let key: KeyObject
  let application: string | undefined

  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    const pk = r.bytes()
    if (pk === undefined || pk.length !== 32) throw malformed(type, 'bad ed25519 public key')
    key = importJwk({ kty: 'OKP', crv: 'Ed25519', x: pk.toString('base64url') }, type)
  } else if (type === 'ssh-rsa') {
    const e = r.bytes()
    const n = r.bytes()
    if (e === undefined || n === undefined) throw malformed(type, 'truncated')
    const nMag = mpintMagnitude(n)
    const eMag = mpintMagnitude(e)
    const bits = bitLength(nMag)
    if (bits < MIN_RSA_BITS) {
      throw new SshKeyError(
        `RSA keys must have at least ${MIN_RSA_BITS} bits (this one has ${bits}): create a new key with \`ssh-keygen -t ed25519\``,
      )
    }
    if (bits > MAX_RSA_BITS) throw new SshKeyError(`RSA keys may have at most ${MAX_RSA_BITS} bits`)
    if (eMag.length === 0 || eMag.length > 8 || (eMag[eMag.length - 1] & 1) === 0) {
      throw malformed(type, 'bad public exponent')
    }
    key = importJwk(
      { kty: 'RSA', n: nMag.toString('base64url'), e: eMag.toString('base64url') },
      type,
    )
  } else {
    const curveName = r.ascii()
    const declaredCurve = type.replace(/^(sk-)?ecdsa-sha2-/, '').replace('@openssh.com', '')
    if (curveName !== declaredCurve) throw malformed(type, 'curve does not match the key type')
    const curve = CURVES[declaredCurve as keyof typeof CURVES]
    const q = r.bytes()
    // OpenSSH accepts only uncompressed points: 0x04 || X || Y.
    if (q === undefined || q.length !== 1 + 2 * curve.size || q[0] !== 4) {
      throw malformed(type, 'bad EC point')
    }
    const x = q.subarray(1, 1 + curve.size).toString('base64url')
    const y = q.subarray(1 + curve.size).toString('base64url')
    key = importJwk({ kty: 'EC', crv: curve.crv, x, y }, type)
  }

  if (type.startsWith('sk-')) {
    const app = r.bytes()
    if (app === undefined || app.length === 0 || app.length > 1024) {
      throw malformed(type, 'bad application string')
    }
    application = app.toString('utf8')
  }
  if (r.remaining !== 0) throw malformed(type, 'trailing data')
  return { type, key, application }
}

function importJwk(jwk: crypto.JsonWebKey, type: string): KeyObject {
  try {
    return crypto.createPublicKey({ key: jwk, format: 'jwk' })
  } catch {
    // e.g. an EC point that is not on the curve
    throw malformed(type, 'invalid key material')
  }
}

/** The canonical authorized_keys line for a parsed key (safe to write into a guest's file). */
export function formatPublicKey(k: Pick<ParsedPublicKey, 'type' | 'blob' | 'comment'>): string {
  const base = `${k.type} ${k.blob.toString('base64')}`
  return k.comment ? `${base} ${k.comment}` : base
}
