import fs from 'node:fs'
import path from 'node:path'

/**
 * The data dir holds what no other local user may read: the database (workspace env secrets, key
 * hashes), the admin key, signing secrets, TLS and SSH keys, leases, snapshots of users' disks.
 * Directories are 0700 and files 0600; every start checks that and repairs what drifted (an
 * earlier version, a restored backup, a hand-made directory).
 *
 * Two subtrees keep their own rules. A VM's directory under `vms/` belongs to its jail uid (the
 * driver makes it 0700 for that uid; only its mode is repaired here) and its `host/` part is
 * root's. Guest images are world-readable on purpose, so the jailed QEMU (another uid) can read
 * them; they hold no user data, and the 0700 directories above them keep other users out anyway.
 */
export function secureDataDir(dataDir: string, opts: { imageDir?: string } = {}): string[] {
  const repaired: string[] = []
  const ensure = (p: string, mode: number) => {
    if ((fs.lstatSync(p).mode & 0o7777) === mode) return
    fs.chmodSync(p, mode)
    repaired.push(p)
  }
  const images = opts.imageDir ? path.resolve(opts.imageDir) : null
  const walk = (dir: string, depth: number) => {
    ensure(dir, 0o700)
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isSymbolicLink()) continue
      if (!e.isDirectory()) {
        if (e.isFile()) ensure(p, 0o600)
        continue // sockets (a VM's, the relay's) keep what their creator gave them
      }
      if (p === images) ensure(p, 0o700)
      else if (depth === 1 && path.basename(dir) === 'vms') walkVm(p)
      else walk(p, depth + 1)
    }
  }
  const walkVm = (vmDir: string) => {
    ensure(vmDir, 0o700)
    for (const e of fs.readdirSync(vmDir, { withFileTypes: true })) {
      const p = path.join(vmDir, e.name)
      if (e.isFile()) ensure(p, 0o600)
      else if (e.isDirectory() && !e.isSymbolicLink()) walk(p, 99)
    }
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  walk(path.resolve(dataDir), 0)
  return repaired
}
