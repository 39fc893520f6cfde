import crypto from 'node:crypto'
import ssh2 from 'ssh2'
import { decodeKeyBlob, formatPublicKey, type ParsedPublicKey } from './keys.ts'
import { mpintMagnitude, WireReader, wireString } from './wire.ts'

/** What ssh2 hands a server for a signed public-key authentication request. */
export interface AuthSignature {
  /** ctx.key.algo: the key's type (ssh2 reports `ssh-rsa` for `rsa-sha2-256/512` too). */
  algo: string
  /** ctx.hashAlgo: `sha256`/`sha512` for `rsa-sha2-*`; undefined for SHA-1 `ssh-rsa`. */
  hashAlgo?: string
  /** ctx.signature (ssh2 strips the algorithm name and, for ECDSA, converts to DER). */
  signature: Buffer
  /** ctx.blob: the data the client signed (session id + request). */
  data: Buffer
}

// FIDO flag the authenticator sets when the user touched it; OpenSSH requires it by default.
const SK_USER_PRESENT = 0x01

/** True when `sig` is a valid signature by `key` (a registered, already-parsed key). */
export function verifyAuthSignature(key: ParsedPublicKey, sig: AuthSignature): boolean {
  if (sig.algo !== key.type) return false
  try {
    if (
      key.type === 'sk-ssh-ed25519@openssh.com' ||
      key.type === 'sk-ecdsa-sha2-nistp256@openssh.com'
    ) {
      return verifySk(key, sig)
    }
    // SHA-1 RSA signatures (`ssh-rsa`) are refused, as OpenSSH has done since 8.8.
    if (key.type === 'ssh-rsa' && sig.hashAlgo !== 'sha256' && sig.hashAlgo !== 'sha512') {
      return false
    }
    const parsed = ssh2.utils.parseKey(formatPublicKey(key))
    if (parsed instanceof Error) return false
    return parsed.verify(sig.data, sig.signature, sig.hashAlgo)
  } catch {
    return false
  }
}

/**
 * Security-key signatures (OpenSSH PROTOCOL.u2f): the authenticator signs
 * sha256(application) || flags || counter || sha256(data), not the data itself.
 */
function verifySk(key: ParsedPublicKey, sig: AuthSignature): boolean {
  const decoded = decodeKeyBlob(key.blob, key.type)
  const parts = splitSkSignature(key.type, sig.signature)
  if (!parts || (parts.flags & SK_USER_PRESENT) === 0) return false
  const header = Buffer.alloc(5)
  header.writeUInt8(parts.flags, 0)
  header.writeUInt32BE(parts.counter, 1)
  const signed = Buffer.concat([
    sha256(Buffer.from(decoded.application ?? '', 'utf8')),
    header,
    sha256(sig.data),
  ])
  if (key.type === 'sk-ssh-ed25519@openssh.com') {
    return parts.raw.length === 64 && crypto.verify(null, signed, decoded.key, parts.raw)
  }
  return crypto.verify('sha256', signed, { key: decoded.key, dsaEncoding: 'ieee-p1363' }, parts.raw)
}

interface SkSignatureParts {
  /** ed25519: the 64-byte signature; ECDSA: r || s, each padded to 32 bytes. */
  raw: Buffer
  flags: number
  counter: number
}

/**
 * Accepts both the full signature blob (`string type, string sig, byte flags, uint32 counter`)
 * and the form ssh2 passes on, where the type and the inner length prefix are already stripped.
 */
export function splitSkSignature(type: string, signature: Buffer): SkSignatureParts | undefined {
  const prefix = wireString(type)
  let inner: Buffer | undefined
  let rest: WireReader
  if (signature.subarray(0, prefix.length).equals(prefix)) {
    rest = new WireReader(signature.subarray(prefix.length))
    inner = rest.bytes()
  } else if (type === 'sk-ssh-ed25519@openssh.com') {
    inner = signature.subarray(0, 64)
    rest = new WireReader(signature.subarray(64))
  } else {
    // ECDSA: `mpint r, mpint s` directly, followed by flags and counter.
    rest = new WireReader(signature)
    const r = rest.bytes()
    const s = rest.bytes()
    if (r === undefined || s === undefined) return undefined
    inner = Buffer.concat([wireString(r), wireString(s)])
  }
  const flags = rest.byte()
  const counter = rest.uint32()
  if (inner === undefined || flags === undefined || counter === undefined) return undefined
  if (rest.remaining !== 0) return undefined
  if (type === 'sk-ssh-ed25519@openssh.com') return { raw: inner, flags, counter }

  const ec = new WireReader(inner)
  const r = ec.bytes()
  const s = ec.bytes()
  if (r === undefined || s === undefined || ec.remaining !== 0) return undefined
  const rs = [mpintMagnitude(r), mpintMagnitude(s)]
  if (rs.some((v) => v.length > 32)) return undefined
  const raw = Buffer.concat(rs.map((v) => Buffer.concat([Buffer.alloc(32 - v.length), v])))
  return { raw, flags, counter }
}

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest()
