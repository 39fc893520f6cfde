import crypto from 'node:crypto'
import path from 'node:path'
import type { Config } from '../config/config.ts'
import { loadOrCreateSecret } from '../lib/secret.ts'

/**
 * BYOK keys at rest: AES-256-GCM under the master key. The stored form is versioned,
 * `v1.<base64url(iv ‖ tag ‖ ciphertext)>`, and the workspace id is the associated data, so a
 * ciphertext copied into another workspace's row fails to decrypt instead of lending it the key.
 */
const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32

export class SecretDecryptError extends Error {}

/** The master key: RIGBOX_AI_MASTER_KEY, else `<dataDir>/ai.key` (0600, made at first start). */
export function loadMasterKey(config: Pick<Config, 'dataDir' | 'ai'>): Buffer {
  const key = config.ai.masterKey
    ? Buffer.from(config.ai.masterKey, 'base64')
    : loadOrCreateSecret(path.join(config.dataDir, 'ai.key'), KEY_BYTES)
  if (key.length !== KEY_BYTES) {
    throw new Error(`the AI master key must be ${KEY_BYTES} bytes, found ${key.length}`)
  }
  return key
}

const associatedData = (workspaceId: string) => Buffer.from(`rigbox-ai-key:${workspaceId}`)

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`a SecretBox key is ${KEY_BYTES} bytes`)
  }

  seal(plaintext: string, workspaceId: string): string {
    const iv = crypto.randomBytes(IV_BYTES)
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv)
    cipher.setAAD(associatedData(workspaceId))
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    const packed = Buffer.concat([iv, cipher.getAuthTag(), body])
    return `${VERSION}.${packed.toString('base64url')}`
  }

  /** Throws SecretDecryptError for any other version, a foreign workspace, or tampering. */
  open(sealed: string, workspaceId: string): string {
    const [version, data] = sealed.split('.', 2)
    if (version !== VERSION || !data) {
      throw new SecretDecryptError(`unknown secret format ${JSON.stringify(version)}`)
    }
    const packed = Buffer.from(data, 'base64url')
    if (packed.length < IV_BYTES + TAG_BYTES) throw new SecretDecryptError('secret is truncated')
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, packed.subarray(0, IV_BYTES))
    decipher.setAAD(associatedData(workspaceId))
    decipher.setAuthTag(packed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    try {
      const body = packed.subarray(IV_BYTES + TAG_BYTES)
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8')
    } catch {
      throw new SecretDecryptError('secret does not decrypt under this key for this workspace')
    }
  }
}

/**
 * Log paths pino blanks (`redact`): wherever a BYOK key or a provider key could sit in a logged
 * object. Fastify logs no bodies by default; these hold if anything ever logs one.
 */
export const secretLogPaths = [
  'api_key',
  'apiKey',
  '*.api_key',
  '*.apiKey',
  '*.*.api_key',
  '*.*.apiKey',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["x-goog-api-key"]',
]
