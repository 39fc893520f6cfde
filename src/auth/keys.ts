import crypto from 'node:crypto'
import { newBase62 } from '../lib/ids.ts'

export const API_KEY_PATTERN = /^rb_[0-9A-Za-z]{32,}$/

/** A new API key: `rb_` + 40 base62 characters (~238 bits). Only its hash is ever stored. */
export function generateApiKey(): string {
  return `rb_${newBase62(40)}`
}

/**
 * Keys carry enough entropy that a fast hash is safe (no dictionary to attack), and a fast hash
 * lets every request look its key up by index.
 */
export function hashApiKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('hex')
}

export const keyPrefix = (key: string) => key.slice(0, 7)
