import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

/**
 * What one installation (one data dir) owns on a host, so that two `rigbox serve` on the same host
 * never touch each other's VMs: the cgroup parent its VMs live under (start-up recovery only ever
 * looks there), and a range of jail uids no other installation hands out (a VM's files are its
 * uid's: a shared uid would open one installation's disks to the other's QEMUs).
 *
 * Chosen once and recorded in `<dataDir>/node/installation.json`; the defaults derive from the data
 * dir's path, and each uid range is claimed in a host-wide registry (`<registryDir>/uid-ranges/`)
 * with an exclusive create, so even two data dirs whose hashes collide get different ranges.
 */
export interface Installation {
  cgroupParent: string
  uidBase: number
  uidCount: number
}

export interface InstallationOptions {
  dataDir: string
  /** Host-wide state shared by installations (default /var/lib/rigbox). */
  registryDir: string
  cgroupParent?: string | null
  uidBase?: number | null
  uidCount: number
  /** cgroup v1 mount, to find VMs an earlier version started under the old fixed parent. */
  cgroupRoot?: string
}

/** Where jail uid ranges start: above the usual subuid allocations (100000 + 65536·n). */
export const UID_RANGES_START = 1_000_000
const UID_SLOTS = 4096
/** The parent every installation shared before installations had their own. */
const LEGACY_CGROUP_PARENT = 'rigbox'

const recordFile = (dataDir: string) => path.join(dataDir, 'node', 'installation.json')

export async function resolveInstallation(o: InstallationOptions): Promise<Installation> {
  const dataDir = await fs.realpath(o.dataDir)
  const recorded = await readRecord(dataDir)
  const hash = crypto.createHash('sha256').update(dataDir).digest()
  const cgroupParent =
    o.cgroupParent ??
    recorded?.cgroupParent ??
    ((await legacyVmsRunning(dataDir, o.cgroupRoot))
      ? LEGACY_CGROUP_PARENT
      : `rigbox-${hash.toString('hex').slice(0, 12)}`)
  const uidCount = recorded?.uidCount ?? o.uidCount
  let uidBase = o.uidBase ?? recorded?.uidBase ?? null
  if (uidBase === null) {
    const first = hash.readUInt32BE(0) % UID_SLOTS
    for (let i = 0; i < UID_SLOTS && uidBase === null; i++) {
      const base = UID_RANGES_START + ((first + i) % UID_SLOTS) * uidCount
      if (await claimRange(o.registryDir, base, dataDir)) uidBase = base
    }
    if (uidBase === null) throw new Error('no free jail uid range on this host')
  } else if (!(await claimRange(o.registryDir, uidBase, dataDir))) {
    throw new Error(`jail uid range ${uidBase} belongs to another installation on this host`)
  }
  const installation = { cgroupParent, uidBase, uidCount }
  await writeRecord(dataDir, installation)
  return installation
}

async function readRecord(dataDir: string): Promise<Installation | null> {
  try {
    const r = JSON.parse(await fs.readFile(recordFile(dataDir), 'utf8')) as Installation
    const ok =
      typeof r.cgroupParent === 'string' &&
      Number.isInteger(r.uidBase) &&
      Number.isInteger(r.uidCount)
    return ok ? r : null
  } catch {
    return null
  }
}

async function writeRecord(dataDir: string, rec: Installation): Promise<void> {
  const file = recordFile(dataDir)
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  await fs.writeFile(`${file}.tmp`, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 })
  await fs.rename(`${file}.tmp`, file)
}

/**
 * Claims `<registry>/uid-ranges/<base>` for `dataDir`: true if it is now (or was) ours. A stale
 * claim is taken over; the rename makes that race-free (only one taker moves the old claim away).
 */
async function claimRange(registryDir: string, base: number, dataDir: string): Promise<boolean> {
  const dir = path.join(registryDir, 'uid-ranges')
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const file = path.join(dir, String(base))
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(file, JSON.stringify({ dataDir }) + '\n', { flag: 'wx', mode: 0o600 })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const owner = await readClaim(file)
    if (owner === dataDir) return true
    if (owner !== null && !(await isStaleClaim(owner, base))) return false
    const stale = `${file}.stale-${process.pid}-${attempt}`
    await fs.rename(file, stale).then(
      () => fs.rm(stale, { force: true }),
      () => undefined, // someone else took it over first: look again
    )
  }
  return false
}

/**
 * A claim is stale once its data dir is gone or records another range. A data dir without a
 * record yet is an installation between its claim and its first record: still the owner.
 */
async function isStaleClaim(owner: string, base: number): Promise<boolean> {
  if (
    !(await fs.stat(owner).then(
      () => true,
      () => false,
    ))
  )
    return true
  const rec = await readRecord(owner)
  return rec !== null && rec.uidBase !== base
}

async function readClaim(file: string): Promise<string | null> {
  try {
    const { dataDir } = JSON.parse(await fs.readFile(file, 'utf8')) as { dataDir?: unknown }
    return typeof dataDir === 'string' ? dataDir : null
  } catch {
    return null
  }
}

/**
 * Whether a VM of this data dir still runs under the parent all installations shared before
 * (started by an earlier version): then this installation keeps that parent, so it adopts its VMs
 * instead of booting a second QEMU on the same disk.
 */
async function legacyVmsRunning(dataDir: string, cgroupRoot = '/sys/fs/cgroup'): Promise<boolean> {
  const vmsDir = path.join(dataDir, 'vms')
  const legacy = path.join(cgroupRoot, 'pids', LEGACY_CGROUP_PARENT)
  for (const id of await fs.readdir(vmsDir).catch(() => [] as string[])) {
    const procs = await fs.readFile(path.join(legacy, id, 'cgroup.procs'), 'utf8').catch(() => '')
    if (procs.trim()) return true
  }
  return false
}
