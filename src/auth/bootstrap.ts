import fs from 'node:fs'
import path from 'node:path'
import type { AuthStore } from './store.ts'

export const ADMIN_EMAIL = 'admin@localhost'

/**
 * First start: creates the admin account and writes its key to `<dataDir>/admin.key` (0600).
 * Returns the path when a key was written, so the caller can tell the operator where it is.
 */
export async function ensureAdmin(auth: AuthStore, dataDir: string): Promise<string | null> {
  if (await auth.findAdmin()) return null
  const admin = await auth.createUser({
    email: ADMIN_EMAIL,
    plan: 'pro',
    isAdmin: true,
    name: 'Admin',
  })
  const { key } = await auth.createKey(admin.id, 'admin')
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const keyPath = path.join(dataDir, 'admin.key')
  // Written to a temp file first so a crash never leaves a truncated key behind.
  const tmp = `${keyPath}.${process.pid}.tmp`
  fs.writeFileSync(tmp, `${key}\n`, { mode: 0o600 })
  fs.renameSync(tmp, keyPath)
  return keyPath
}
