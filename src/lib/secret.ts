import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/**
 * A random secret that survives restarts (sessions signed with it stay valid), created on first
 * use with mode 0600. Written to a temp file and linked into place, so two processes starting at
 * once agree on one secret.
 */
export function loadOrCreateSecret(file: string, bytes = 32): Buffer {
  try {
    return fs.readFileSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, crypto.randomBytes(bytes), { mode: 0o600 })
  try {
    fs.linkSync(tmp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  return fs.readFileSync(file)
}
