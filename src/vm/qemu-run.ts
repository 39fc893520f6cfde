import { constants } from 'node:os'
import { copyFile, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Cgroups } from './cgroups.ts'
import { hostDir } from './jail.ts'
import { isAlive, procCmdline, procInfo, signalPid, sleep } from './proc.ts'
import type { HostFwd } from './types.ts'

/** What the host records about a running VM, in the root-owned `host/` dir of the VM dir. */
export interface RunState {
  pid: number
  startTime: number
  launcherPid: number
  accel: string
  uid: number
  /** Whether a /dev/kvm ACL was set for the uid (to remove at destroy). */
  kvmAcl: boolean
  startedAt: string
  hostfwds: HostFwd[]
}

export const runStateFile = (dir: string) => path.join(hostDir(dir), 'run.json')
export const exitStatusFile = (dir: string) => path.join(hostDir(dir), 'exit-status')
export const qemuLogFile = (dir: string) => path.join(hostDir(dir), 'qemu.log')
export const consoleLogFile = (dir: string) => path.join(dir, 'console.log')

export async function readRunState(dir: string): Promise<RunState | null> {
  try {
    const s = JSON.parse(await readFile(runStateFile(dir), 'utf8')) as RunState
    return Number.isInteger(s.pid) && Number.isInteger(s.startTime) ? s : null
  } catch {
    return null
  }
}

export async function writeRunState(dir: string, state: RunState): Promise<void> {
  const file = runStateFile(dir)
  await writeFile(file + '.tmp', JSON.stringify(state, null, 2) + '\n', { mode: 0o600 })
  await rename(file + '.tmp', file)
}

function isQemuArgv(argv: string[] | null, id: string): boolean {
  if (!argv || !argv.length) return false
  const exe = path.basename(argv[0])
  const nameIdx = argv.indexOf('-name')
  return (
    exe.startsWith('qemu-system') &&
    nameIdx >= 0 &&
    (argv[nameIdx + 1] ?? '').split(',').includes(`guest=${id}`)
  )
}

async function inCgroup(pid: number, cgroups: Cgroups, id: string): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8')
    return text
      .split('\n')
      .some((l) => /^\d+:pids:/.test(l) && l.endsWith(`/${cgroups.parent}/${id}`))
  } catch {
    return false
  }
}

/**
 * Is `pid` this VM's QEMU? The pid file alone is not trusted: pids are reused, so the start time,
 * the command line (`-name guest=<id>`) and the cgroup must all match.
 */
export async function verifyQemu(
  pid: number,
  id: string,
  cgroups: Cgroups,
  startTime?: number,
): Promise<boolean> {
  if (!(await isAlive(pid, startTime))) return false
  return isQemuArgv(await procCmdline(pid), id) && (await inCgroup(pid, cgroups, id))
}

/** Finds the VM's QEMU among its cgroup's processes. */
export async function findQemuInCgroup(cgroups: Cgroups, id: string): Promise<number | null> {
  for (const pid of await cgroups.procs(id)) {
    if (isQemuArgv(await procCmdline(pid), id) && (await isAlive(pid))) return pid
  }
  return null
}

/** SIGKILLs every process left in the VM's cgroup and waits until it is empty. */
export async function sweepCgroup(cgroups: Cgroups, id: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const pids = await cgroups.procs(id)
    if (!pids.length) return
    for (const pid of pids) signalPid(pid, 'SIGKILL')
    if (Date.now() > deadline) throw new Error(`processes of ${id} survive SIGKILL: ${pids}`)
    await sleep(50)
  }
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
)

/**
 * bubblewrap reports a child killed by signal n as exit code 128+n (and the launcher passes that
 * on), so a code above 128 that names a signal is read as that signal.
 */
export function decodeStatus(
  code: number | null,
  signal: NodeJS.Signals | null,
): { code: number | null; signal: NodeJS.Signals | null } {
  if (signal) return { code, signal }
  if (code !== null && code > 128 && SIGNAL_NAMES.has(code - 128)) {
    return { code, signal: SIGNAL_NAMES.get(code - 128)! }
  }
  return { code, signal: null }
}

/** The launcher's recorded status (for VMs that are not our child); waits briefly for it. */
export async function readExitStatus(dir: string, waitMs = 3000): Promise<number | null> {
  const deadline = Date.now() + waitMs
  for (;;) {
    try {
      const n = Number((await readFile(exitStatusFile(dir), 'utf8')).trim())
      return Number.isInteger(n) ? n : null
    } catch {
      if (Date.now() >= deadline) return null
      await sleep(50)
    }
  }
}

/** Keeps the previous boot's logs as `.1` and starts each boot with empty ones. */
export async function rotateLogs(dir: string): Promise<void> {
  for (const file of [consoleLogFile(dir), qemuLogFile(dir)]) {
    await rename(file, file + '.1').catch(() => {})
  }
  for (const f of ['exit-status', 'run.json']) await rm(path.join(hostDir(dir), f), { force: true })
  for (const s of ['qmp', 'agent', 'bulk', 'tunnel', 'inbound']) {
    await rm(path.join(dir, `${s}.sock`), { force: true })
  }
}

/**
 * Caps the serial console log while the VM runs: QEMU appends (`append=on`), so moving the
 * content aside and truncating is safe. A guest printing without end cannot fill the host disk.
 */
export function capConsole(dir: string, maxBytes: number, everyMs = 2000): NodeJS.Timeout {
  const file = consoleLogFile(dir)
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    void (async () => {
      try {
        if ((await stat(file)).size > maxBytes) {
          await copyFile(file, file + '.1')
          await truncate(file, 0)
        }
      } catch {
        // not there (yet) or gone with the VM
      } finally {
        busy = false
      }
    })()
  }, everyMs)
  timer.unref()
  return timer
}

/** Resolves when the pid is gone; polls (a process that is not our child cannot be waited for). */
export async function pollGone(pid: number, startTime: number, everyMs = 200): Promise<void> {
  while (await isAlive(pid, startTime)) await sleep(everyMs)
}

export async function pidStartTime(pid: number): Promise<number | null> {
  return (await procInfo(pid))?.startTime ?? null
}
