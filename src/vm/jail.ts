import { spawn, type ChildProcess } from 'node:child_process'
import {
  chmod,
  chown,
  lstat,
  mkdir,
  readFile,
  readdir,
  rename,
  stat,
  writeFile,
} from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './proc.ts'

/**
 * The jail, after Firecracker's jailer: per VM a uid of its own, cgroup v1 limits, a bubblewrap
 * mount/pid/ipc/uts/cgroup/network namespace with only /usr, /dev, /proc, a tmpfs /tmp, the VM's
 * directory and the image files, then setpriv to the uid with no capabilities and no_new_privs,
 * then QEMU's own seccomp sandbox.
 *
 * The network namespace is the VM's own and holds nothing but loopback: QEMU's slirp `hostfwd`
 * listeners live there, out of reach of every process in the host's namespace (other local users,
 * other VMs' QEMUs), and QEMU itself reaches nothing on the host. The inbound relay
 * (inbound-relay.py), started beside QEMU in the same jail, is the one way in: a unix socket in the
 * VM's directory that only root (router, SSH gateway) can open. docs/networking.md.
 *
 * VM directory layout: the directory and what QEMU writes are owned by the VM's uid (mode 0700),
 * bound at /vm. Its `host/` subdirectory is root's and masked by a tmpfs inside the jail (a mount
 * point cannot be renamed or removed from inside), so a compromised QEMU cannot forge the pid
 * file, the exit status or its uid record, which the host trusts when it kills or adopts.
 */

export const JAIL_VM_DIR = '/vm'
export const JAIL_IMAGE = {
  kernel: '/image/vmlinux',
  initrd: '/image/initrd.img',
  rootfs: '/image/rootfs.img',
}
export const HOST_SUBDIR = 'host'
/** The inbound relay's socket, in the VM dir (host path: `<vmDir>/inbound.sock`). */
export const INBOUND_SOCKET = 'inbound.sock'
const RELAY_SCRIPT = fileURLToPath(new URL('./inbound-relay.py', import.meta.url))
const JAIL_RELAY = '/rigbox/inbound-relay.py'

export interface JailRecord {
  uid: number
}

export function hostDir(vmDir: string): string {
  return path.join(vmDir, HOST_SUBDIR)
}

/** Reads the uid recorded for a VM dir, refusing a `host/` that is not root's own directory. */
export async function readJailRecord(vmDir: string): Promise<JailRecord | null> {
  try {
    const st = await lstat(hostDir(vmDir))
    if (!st.isDirectory() || st.uid !== 0) return null
    const rec = JSON.parse(await readFile(path.join(hostDir(vmDir), 'jail.json'), 'utf8'))
    return Number.isInteger(rec?.uid) ? (rec as JailRecord) : null
  } catch {
    return null
  }
}

let uidLock: Promise<unknown> = Promise.resolve()

/**
 * Gives the VM dir a uid of its own from [base, base+count), recorded in `host/jail.json` (nothing
 * persists outside the VM dir). Free means: no sibling VM dir records it, no process runs as it
 * and /etc/passwd does not name it. Serialized in-process, as two allocations may overlap.
 */
export function allocateUid(vmDir: string, base = 200_000, count = 65_536): Promise<number> {
  const next = uidLock.then(async () => {
    const existing = await readJailRecord(vmDir)
    if (existing) return existing.uid
    const taken = await takenUids(path.dirname(vmDir))
    for (let uid = base; uid < base + count; uid++) {
      if (taken.has(uid)) continue
      await mkdir(hostDir(vmDir), { recursive: true, mode: 0o700 })
      const file = path.join(hostDir(vmDir), 'jail.json')
      await writeFile(file + '.tmp', JSON.stringify({ uid }) + '\n', { mode: 0o600 })
      await rename(file + '.tmp', file)
      return uid
    }
    throw new Error(`no free jail uid in ${base}..${base + count - 1}`)
  })
  uidLock = next.catch(() => {})
  return next
}

async function takenUids(vmsDir: string): Promise<Set<number>> {
  const taken = new Set<number>()
  try {
    for (const e of await readdir(vmsDir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue
      const rec = await readJailRecord(path.join(vmsDir, e.name))
      if (rec) taken.add(rec.uid)
    }
  } catch {
    // no VMs yet
  }
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      taken.add((await stat(`/proc/${entry}`)).uid)
    } catch {
      // exited meanwhile
    }
  }
  try {
    for (const line of (await readFile('/etc/passwd', 'utf8')).split('\n')) {
      const uid = Number(line.split(':')[2])
      if (Number.isInteger(uid)) taken.add(uid)
    }
  } catch {
    // no passwd file
  }
  return taken
}

/** Creates the VM dir (uid-owned, 0700) and its root-owned `host/` (0700). */
export async function prepareJailDir(vmDir: string, uid: number): Promise<void> {
  await mkdir(vmDir, { recursive: true })
  await chown(vmDir, uid, uid)
  await chmod(vmDir, 0o700)
  await mkdir(hostDir(vmDir), { recursive: true, mode: 0o700 })
  await chown(hostDir(vmDir), 0, 0)
  await chmod(hostDir(vmDir), 0o700)
}

/**
 * Lets the jail uid open /dev/kvm (root-only by default). A `kvm` group with rw access is joined
 * as a supplementary group (nothing to undo); otherwise a user ACL is set, removed at destroy.
 * Untestable on this machine (TCG only).
 */
export async function grantKvm(uid: number, devKvm = '/dev/kvm'): Promise<{ groups: number[] }> {
  const st = await stat(devKvm)
  if (st.gid !== 0 && (st.mode & 0o060) === 0o060) return { groups: [st.gid] }
  await run('setfacl', ['-m', `u:${uid}:rw`, devKvm])
  return { groups: [] }
}

export async function revokeKvm(uid: number, devKvm = '/dev/kvm'): Promise<void> {
  await run('setfacl', ['-x', `u:${uid}`, devKvm]).catch(() => {})
}

export interface BwrapOptions {
  vmDir: string
  image: { kernelPath: string; initrdPath: string; rootfsPath: string }
  kvm: boolean
}

/** bubblewrap arguments up to (not including) the `--` before the jailed command. */
export function buildBwrapArgs(o: BwrapOptions): string[] {
  // No --die-with-parent: QEMU must outlive a crash of the server so the next start can adopt it.
  const args = [
    ...['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup', '--unshare-net'],
    '--new-session',
    ...['--clearenv', '--setenv', 'PATH', '/usr/bin:/bin'],
    ...['--ro-bind', '/usr', '/usr'],
    // Debian's merged /usr: the top-level dirs are symlinks into it, as on the host.
    ...['--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64'],
    ...['--symlink', 'usr/bin', '/bin', '--symlink', 'usr/sbin', '/sbin'],
    ...['--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'],
    ...['--bind', o.vmDir, JAIL_VM_DIR, '--tmpfs', path.join(JAIL_VM_DIR, HOST_SUBDIR)],
    // Created implicitly, the parent of a file bind is 0700 root and the jail uid cannot enter.
    ...['--perms', '0755', '--dir', path.dirname(JAIL_IMAGE.kernel)],
    ...['--ro-bind', o.image.kernelPath, JAIL_IMAGE.kernel],
    ...['--ro-bind', o.image.initrdPath, JAIL_IMAGE.initrd],
    ...['--ro-bind', o.image.rootfsPath, JAIL_IMAGE.rootfs],
    ...[
      '--perms',
      '0755',
      '--dir',
      path.dirname(JAIL_RELAY),
      '--ro-bind',
      RELAY_SCRIPT,
      JAIL_RELAY,
    ],
  ]
  if (o.kvm) args.push('--dev-bind', '/dev/kvm', '/dev/kvm')
  args.push('--chdir', JAIL_VM_DIR)
  return args
}

export function buildSetprivArgs(uid: number, groups: number[] = []): string[] {
  return [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    groups.length ? `--groups=${groups.join(',')}` : '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
  ]
}

/**
 * The launcher: places itself into the cgroups (so everything it starts is there from its first
 * instruction, race-free), runs the jailed command and records its exit status in `host/`. It
 * stays as a waiter so an adopting server can still learn the status (it cannot wait() on a
 * process that is not its child).
 */
const LAUNCHER = `exit_file=$1; shift
while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift
"$@"
rc=$?
echo $rc > "$exit_file.tmp" && mv -f "$exit_file.tmp" "$exit_file"
exit $rc`

export interface LaunchOptions {
  procsFiles: string[]
  exitFile: string
  /** Receives the launcher's, bubblewrap's and QEMU's stdout and stderr. */
  logFd: number
  command: string[]
}

/** Spawns the launcher detached (own session, no stdio tie to the server). */
export function launchDetached(o: LaunchOptions): ChildProcess {
  const child = spawn(
    '/bin/sh',
    ['-c', LAUNCHER, 'rigbox-launcher', o.exitFile, ...o.procsFiles, '--', ...o.command],
    {
      detached: true,
      stdio: ['ignore', o.logFd, o.logFd],
      // Server secrets in the environment must not reach the jail.
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    },
  )
  // Not unref'd here: while the server holds the VM, the child keeps the event loop alive so its
  // exit is seen; the driver's release() unrefs it.
  return child
}

/**
 * Starts the inbound relay in the background, then becomes the VMM (exec: same pid, so the VMM is
 * the process the host tracks and the relay's parent, whose death ends the relay).
 */
const WITH_RELAY = `/usr/bin/python3 -I -S ${JAIL_RELAY} ${JAIL_VM_DIR}/${INBOUND_SOCKET} &
exec "$@"`

/** The whole jailed command line: bubblewrap, then setpriv, then the relay and the VMM. */
export function jailedCommand(o: {
  vmDir: string
  image: BwrapOptions['image']
  kvm: boolean
  uid: number
  groups?: number[]
  vmm: string[]
}): string[] {
  return [
    'bwrap',
    ...buildBwrapArgs({ vmDir: o.vmDir, image: o.image, kvm: o.kvm }),
    '--',
    'setpriv',
    ...buildSetprivArgs(o.uid, o.groups),
    '--',
    ...['/bin/sh', '-c', WITH_RELAY, 'rigbox-jail'],
    ...o.vmm,
  ]
}
