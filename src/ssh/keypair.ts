import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import ssh2 from 'ssh2'
import { fingerprint } from './keys.ts'

export interface KeyPair {
  /** OpenSSH private key file contents. */
  privateKey: string
  /** One authorized_keys line: `ssh-ed25519 AAAA… comment`. */
  publicKey: string
  /** `SHA256:…`, as `ssh-keygen -lf` prints it. */
  fingerprint: string
}

/**
 * Loads an SSH private key from `file`, or creates an ed25519 one there (OpenSSH format, mode
 * 0600, `<file>.pub` next to it) if it does not exist. Keys must survive restarts: a new host
 * key would break every client's known_hosts, a new client key every guest's authorized_keys.
 */
export async function loadOrCreateKeyPair(file: string, comment = 'rigbox'): Promise<KeyPair> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  let text = await readIfExists(file)
  if (text === undefined) {
    // About 1 in 200 keys ssh2 generates is refused by its own parser (measured: 15 of 3000):
    // publish only a key that reads back.
    let generated = ssh2.utils.generateKeyPairSync('ed25519', { comment })
    for (let i = 0; i < 20 && ssh2.utils.parseKey(generated.private) instanceof Error; i++) {
      generated = ssh2.utils.generateKeyPairSync('ed25519', { comment })
    }
    text = await publishOnce(file, generated.private)
  }

  const parsed = ssh2.utils.parseKey(text)
  if (parsed instanceof Error) throw new Error(`cannot read SSH key ${file}: ${parsed.message}`)
  if (!parsed.isPrivateKey()) throw new Error(`${file} holds no SSH private key`)

  // Keep the private key owner-only even if someone loosened it (OpenSSH refuses such keys).
  const { mode } = await fs.stat(file)
  if ((mode & 0o077) !== 0) await fs.chmod(file, 0o600)

  const blob = parsed.getPublicSSH()
  const publicKey = `${parsed.type} ${blob.toString('base64')} ${parsed.comment || comment}`
  const pubFile = `${file}.pub`
  if ((await readIfExists(pubFile)) === undefined) {
    await fs.writeFile(pubFile, publicKey + '\n', { mode: 0o600 })
  }
  return { privateKey: text, publicKey, fingerprint: fingerprint(blob) }
}

/**
 * Writes `contents` to `file` unless it already exists, atomically: two processes starting at
 * once must end up with the same key, never a torn or swapped file. Returns what `file` holds.
 */
async function publishOnce(file: string, contents: string): Promise<string> {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`
  await fs.writeFile(tmp, contents, { mode: 0o600, flag: 'wx' })
  try {
    await fs.link(tmp, file)
    return contents
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return fs.readFile(file, 'utf8')
  } finally {
    await fs.rm(tmp, { force: true })
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
