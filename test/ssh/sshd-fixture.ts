// A real OpenSSH sshd standing in for a guest's: loopback only, temp host key and config, the
// gateway's public key as the only authorized key. Needs root: sshd logs in as a real local
// user, `rigtest` (created once, like a guest's `developer`; root's own dotfiles may do anything).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { tempDir } from './helpers.ts'

const execFileP = promisify(execFile)
export const SSHD = '/usr/sbin/sshd'
export const hasSshd = fs.existsSync(SSHD) && fs.existsSync('/usr/bin/ssh')
export const isRoot = process.getuid?.() === 0

export const GUEST_USER = 'rigtest'

/** Creates the local account the test sshd logs in as, if missing; returns its uid and gid. */
export async function ensureGuestUser(): Promise<{ uid: number; gid: number }> {
  const id = async () => {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (f) => Number((await execFileP('id', [f, GUEST_USER])).stdout)),
    )
    return { uid, gid }
  }
  try {
    await id()
  } catch {
    await execFileP('useradd', ['--create-home', '--shell', '/bin/bash', GUEST_USER])
  }
  // useradd leaves the password field `!` (locked), and sshd without PAM refuses locked accounts
  // even for keys; `*` means "no password" without the lock.
  const status = (await execFileP('passwd', ['--status', GUEST_USER])).stdout.split(' ')[1]
  if (status === 'L') await execFileP('usermod', ['--password', '*', GUEST_USER])
  return id()
}

export interface Sshd {
  port: number
  dir: string
  /** The sshd's host public key line (for pinning). */
  hostKey: string
  /** Everything sshd logged (-e), for failure messages. */
  log(): string
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

export async function startSshd(opts: { authorizedKeys: string[] }): Promise<Sshd> {
  await ensureGuestUser()
  const dir = tempDir('sshd')
  const hostKeyFile = path.join(dir, 'host_ed25519')
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKeyFile])
  const authorized = path.join(dir, 'authorized_keys')
  // sshd reads authorized_keys as the user, after dropping privileges.
  fs.chmodSync(dir, 0o711)
  fs.writeFileSync(authorized, opts.authorizedKeys.join('\n') + '\n', { mode: 0o644 })
  const port = await freePort()
  const config = path.join(dir, 'sshd_config')
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyFile}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      `AllowUsers ${GUEST_USER}`,
      'PermitRootLogin no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PrintMotd no',
      'PrintLastLog no',
      'AcceptEnv LANG LC_* RIGTEST_*',
      'AllowTcpForwarding yes',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      'LogLevel VERBOSE',
    ].join('\n') + '\n',
  )
  // sshd's privilege-separation directory; systemd-tmpfiles creates it on a booted system.
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })

  let output = ''
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Best effort if the test process dies without running its after() hooks.
  const killOnExit = () => child.kill('SIGTERM')
  process.once('exit', killOnExit)

  const stop = async () => {
    process.off('exit', killOnExit)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitListening(port, exited, () => output)
  } catch (err) {
    await stop()
    throw err
  }
  const hostKey = fs.readFileSync(`${hostKeyFile}.pub`, 'utf8').trim()
  return { port, dir, hostKey, log: () => output, stop }
}

async function waitListening(port: number, exited: Promise<void>, log: () => string) {
  let dead = false
  void exited.then(() => (dead = true))
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (dead) throw new Error(`sshd exited during start-up:\n${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`sshd did not listen on ${port}:\n${log()}`)
}
