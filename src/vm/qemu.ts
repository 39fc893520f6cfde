import type { ChildProcess } from 'node:child_process'
import { chmod, chown, open, readdir, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { chooseAccel, hostTscKhz, type AccelChoice, type AccelSetting } from './accel.ts'
import { Cgroups, computeLimits, type JailLimits } from './cgroups.ts'
import { createOverlay, resizeDisk } from './disks.ts'
import { addHostFwd, nextNsPort, removeHostFwd } from './hostfwd.ts'
import * as jail from './jail.ts'
import { exists, raceTimeout, readTail, signalPid, sleep } from './proc.ts'
import { buildQemuArgs, checkId, checkSpec } from './qemu-args.ts'
import { LiveVm, type QemuVmHandle } from './qemu-live.ts'
import { checkResumable, discardMemoryState, loadMemory, saveMemory } from './memory.ts'
import * as runs from './qemu-run.ts'
import { QmpClient } from './qmp.ts'
import type { RunningVm, VmDriver, VmExit, VmLaunchSpec } from './types.ts'

export type { QemuVmHandle } from './qemu-live.ts'

export interface QemuDriverOptions {
  /** Where VM dirs live (uid allocation and orphan scans look at its subdirectories). */
  vmsDir: string
  accel?: AccelSetting
  qemuBinary?: string
  cgroupRoot?: string
  /** cgroup v1 parent directory under each controller. */
  cgroupParent?: string
  uidBase?: number
  uidCount?: number
  /** TCG translation buffer (MiB, default 64); QEMU's own default, 1 GiB, fills up too. */
  tbSizeMb?: number
  /** cgroup memory allowance beyond guest RAM and translation buffer (MiB). */
  memOverheadMb?: number
  pidsMax?: number
  consoleMaxBytes?: number
  /** Budget for QEMU to answer on QMP after launch. */
  startTimeoutMs?: number
  /** Adjusts the computed cgroup limits. */
  limits?: (computed: JailLimits, spec: VmLaunchSpec) => JailLimits
}

/** QEMU microvm in the jail (jail.ts), controlled over QMP. */
export class QemuDriver implements VmDriver {
  readonly kind = 'qemu'
  readonly cgroups: Cgroups
  private readonly live = new Map<string, LiveVm>()
  private accelChoice: Promise<AccelChoice> | null = null

  constructor(private readonly opts: QemuDriverOptions) {
    this.cgroups = new Cgroups(opts.cgroupRoot, opts.cgroupParent)
  }

  /** The accelerator in use (probed once). */
  accel(): Promise<AccelChoice> {
    this.accelChoice ??= chooseAccel(this.opts.accel ?? 'auto')
    return this.accelChoice
  }

  dirFor(id: string): string {
    return path.join(this.opts.vmsDir, id)
  }

  get(id: string): QemuVmHandle | undefined {
    return this.live.get(id)?.handle
  }

  async prepare(spec: VmLaunchSpec): Promise<void> {
    checkSpec(spec)
    const uid = await jail.allocateUid(spec.dir, this.opts.uidBase, this.opts.uidCount)
    await jail.prepareJailDir(spec.dir, uid)
    const disk = path.join(spec.dir, 'disk.qcow2')
    // Never below the base: a disk smaller than its image would be a shrink on the next prepare.
    const size = Math.max(spec.diskMb * 1024 * 1024, (await stat(spec.image.rootfsPath)).size)
    if (await exists(disk)) await resizeDisk(disk, size)
    else await createOverlay(spec.image.rootfsPath, disk, size)
    await chown(disk, uid, uid)
    await chmod(disk, 0o600)
  }

  async start(spec: VmLaunchSpec): Promise<QemuVmHandle> {
    checkSpec(spec)
    const { id, dir } = spec
    if (this.live.has(id)) throw new Error(`VM ${id} is already running`)
    if (await runs.findQemuInCgroup(this.cgroups, id)) {
      throw new Error(`VM ${id} has a QEMU running that this driver does not hold; adopt it`)
    }
    // A memory state this QEMU cannot load is refused here, with what changed, not mid-load.
    await checkResumable(spec, (await this.accel()).accel, this.opts.qemuBinary)
    await this.prepare(spec)
    for (const f of [spec.image.kernelPath, spec.image.initrdPath, spec.image.rootfsPath]) {
      if (((await stat(f)).mode & 0o004) === 0) {
        throw new Error(`${f} must be world-readable: the jailed QEMU runs as an unprivileged uid`)
      }
    }
    const uid = (await jail.readJailRecord(dir))!.uid
    const { accel } = await this.accel()
    // 64 MiB: a systemd boot fills any translation buffer; 32 MiB thrashes (~36 s vs ~24 s here).
    const tbSizeMb = this.opts.tbSizeMb ?? 64
    let limits = computeLimits({
      memMb: spec.memMb,
      vcpus: spec.vcpus,
      tbSizeMb: accel === 'tcg' ? tbSizeMb : 0,
      // QEMU's own allocations beyond guest RAM, and the inbound relay (~10 MiB) in the same jail.
      overheadMb: this.opts.memOverheadMb ?? 80,
      pidsMax: this.opts.pidsMax ?? 64,
    })
    if (this.opts.limits) limits = this.opts.limits(limits, spec)
    // Fresh cgroups each boot: the oom_kill counter must describe this boot only.
    await runs.sweepCgroup(this.cgroups, id)
    await this.cgroups.remove(id)
    await this.cgroups.create(id, limits)
    await runs.rotateLogs(dir)
    const kvm = accel === 'kvm' ? await jail.grantKvm(uid) : null
    const qemuArgs = buildQemuArgs({
      id,
      accel,
      memMb: spec.memMb,
      vcpus: spec.vcpus,
      tbSizeMb,
      imageCmdline: spec.image.cmdline,
      tscKhz: accel === 'tcg' ? await hostTscKhz() : null,
      ipAddress: spec.ipAddress,
      incoming: spec.resumeFrom !== undefined,
    })
    const command = jail.jailedCommand({
      vmDir: dir,
      image: spec.image,
      kvm: accel === 'kvm',
      uid,
      groups: kvm?.groups,
      vmm: [this.opts.qemuBinary ?? '/usr/bin/qemu-system-x86_64', ...qemuArgs],
    })
    const log = await open(runs.qemuLogFile(dir), 'a', 0o600)
    let child: ChildProcess
    try {
      const procsFiles = this.cgroups.procsFiles(id)
      const exitFile = runs.exitStatusFile(dir)
      child = jail.launchDetached({ procsFiles, exitFile, logFd: log.fd, command })
    } finally {
      await log.close()
    }
    let launcherDone = false
    child.once('exit', () => (launcherDone = true))
    try {
      const deadline = Date.now() + (this.opts.startTimeoutMs ?? 30_000)
      let pid: number | null = null
      while (!(pid = await runs.findQemuInCgroup(this.cgroups, id))) {
        if (launcherDone || Date.now() > deadline) throw new Error('QEMU did not start')
        await sleep(20)
      }
      const startTime = (await runs.pidStartTime(pid))!
      const qmp = await QmpClient.connectWithRetry(path.join(dir, 'qmp.sock'), deadline, {
        isAlive: () => !launcherDone,
      })
      const state: runs.RunState = {
        pid,
        startTime,
        launcherPid: child.pid!,
        accel,
        uid,
        kvmAcl: kvm !== null && kvm.groups.length === 0,
        startedAt: new Date().toISOString(),
        hostfwds: [],
      }
      await runs.writeRunState(dir, state)
      const live = this.track(id, dir, state, qmp, child)
      if (spec.resumeFrom) {
        await loadMemory(qmp, dir, spec.resumeFrom)
        // Consumed before the guest runs: from its first instruction the disk moves on, and the
        // same memory state resumed a second time would no longer match it.
        await discardMemoryState(spec.resumeFrom)
        await qmp.execute('cont')
      }
      return live.handle
    } catch (err) {
      this.live.get(id)?.release()
      this.live.delete(id)
      await runs.sweepCgroup(this.cgroups, id).catch(() => {})
      await this.cgroups.remove(id).catch(() => {})
      const tail = await readTail(runs.qemuLogFile(dir))
      throw new Error(`VM ${id} failed to start: ${(err as Error).message}${tail}`)
    }
  }

  private track(
    id: string,
    dir: string,
    state: runs.RunState,
    qmp: QmpClient,
    child?: ChildProcess,
  ): LiveVm {
    const live = new LiveVm(id, dir, state, qmp, this.opts.consoleMaxBytes ?? 1024 * 1024, child)
    live.watch((code, signal) => {
      this.finish(id, live, code, signal).catch(() => {})
    })
    this.live.set(id, live)
    return live
  }

  /** The QEMU is gone: read the OOM counter, clean the cgroups and settle `exited`. */
  private async finish(id: string, live: LiveVm, code: number | null, sig: NodeJS.Signals | null) {
    if (this.live.get(id) === live) this.live.delete(id)
    live.stopWatching()
    const oomKilled = (await this.cgroups.oomKills(id)) > 0
    await runs.sweepCgroup(this.cgroups, id).catch(() => {})
    await this.cgroups.remove(id).catch(() => {})
    if (live.state.kvmAcl) await jail.revokeKvm(live.state.uid)
    await rm(runs.runStateFile(live.handle.dir), { force: true })
    live.settleExit(code, sig, oomKilled)
  }

  async stop(id: string, opts: { timeoutMs?: number } = {}): Promise<VmExit> {
    const live = await this.hold(id)
    live.requested = true
    const { qmp, exited } = live.handle
    // A paused guest (snapshot in progress) cannot see the power button: straight to quit.
    const status = await qmp.execute<{ running: boolean }>('query-status').catch(() => null)
    if (status?.running) {
      await qmp.execute('system_powerdown').catch(() => {})
      const graceful = await raceTimeout(exited, opts.timeoutMs ?? 30_000)
      if (graceful) return graceful
    }
    await qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => {})
    if (await raceTimeout(exited, 3000)) return exited
    signalPid(live.handle.pid, 'SIGKILL')
    return exited
  }

  /**
   * Saves the VM's memory and device state to `file` and ends the VM; its disk, flushed by the
   * migration, is the matching disk state. Booting with `resumeFrom: file` brings it back.
   */
  async suspend(id: string, file: string): Promise<{ bytes: number }> {
    const live = await this.hold(id)
    const { qmp, dir, pid } = live.handle
    const saved = await saveMemory(qmp, dir, live.state.uid, file, pid)
    // The guest is now paused for good: stop() quits it without a power button.
    await this.stop(id)
    return saved
  }

  /** Whether the guest's vCPUs run (false while a migration loads or after one saved it). */
  async vcpusRunning(id: string): Promise<boolean> {
    const live = await this.hold(id)
    const status = await live.handle.qmp.execute<{ running: boolean }>('query-status')
    return status.running
  }

  async kill(id: string): Promise<VmExit | null> {
    const live = this.live.get(id) ?? (await this.adoptDefault(id))
    if (!live) return null
    live.requested = true
    signalPid(live.handle.pid, 'SIGKILL')
    const exit = await raceTimeout(live.handle.exited, 10_000)
    if (exit) return exit
    await runs.sweepCgroup(this.cgroups, id)
    return live.handle.exited
  }

  async adopt(id: string, dir: string): Promise<QemuVmHandle | null> {
    const held = this.live.get(id)
    if (held) return held.handle
    const state = await runs.readRunState(dir)
    if (!state || !(await runs.verifyQemu(state.pid, id, this.cgroups, state.startTime))) {
      await runs.sweepCgroup(this.cgroups, id).catch(() => {})
      await this.cgroups.remove(id).catch(() => {})
      await rm(runs.runStateFile(dir), { force: true })
      return null
    }
    const qmp = await QmpClient.connect(path.join(dir, 'qmp.sock'), { timeoutMs: 10_000 })
    return this.track(id, dir, state, qmp).handle
  }

  /**
   * Drops this process's hold on a VM without stopping it (server shutdown, tests): a held VM
   * keeps the event loop alive so its exit is observed.
   */
  release(id: string): void {
    this.live.get(id)?.release()
    this.live.delete(id)
  }

  async listRunning(): Promise<RunningVm[]> {
    const found = new Map<string, RunningVm>()
    const entries = await readdir(this.opts.vmsDir, { withFileTypes: true }).catch(() => [])
    for (const e of entries) {
      if (!e.isDirectory()) continue
      const dir = path.join(this.opts.vmsDir, e.name)
      const s = await runs.readRunState(dir)
      if (s && (await runs.verifyQemu(s.pid, e.name, this.cgroups, s.startTime))) {
        found.set(e.name, { id: e.name, dir, pid: s.pid })
      }
    }
    // A QEMU whose dir (or pid file) is gone still sits in its cgroup.
    for (const id of await this.cgroups.list()) {
      if (found.has(id)) continue
      const pid = await runs.findQemuInCgroup(this.cgroups, id)
      const dir = this.dirFor(id)
      if (pid) found.set(id, { id, dir: (await exists(dir)) ? dir : null, pid })
    }
    return [...found.values()]
  }

  async destroy(id: string, dir?: string): Promise<void> {
    checkId(id)
    const vmDir = dir ?? this.live.get(id)?.handle.dir ?? this.dirFor(id)
    if (this.live.has(id)) await this.kill(id)
    const state = await runs.readRunState(vmDir)
    const rec = await jail.readJailRecord(vmDir)
    await runs.sweepCgroup(this.cgroups, id)
    await this.cgroups.remove(id)
    if (state?.kvmAcl && rec) await jail.revokeKvm(rec.uid)
    await rm(vmDir, { recursive: true, force: true })
  }

  async addHostFwd(id: string, guestPort: number): Promise<number> {
    const live = await this.hold(id)
    const fwds = live.state.hostfwds
    const existing = fwds.find((f) => f.guestPort === guestPort)
    if (existing) return existing.nsPort
    const nsPort = nextNsPort(fwds.map((f) => f.nsPort))
    await addHostFwd(live.handle.qmp, guestPort, nsPort)
    fwds.push({ guestPort, nsPort })
    await runs.writeRunState(live.handle.dir, live.state)
    return nsPort
  }

  async removeHostFwd(id: string, guestPort: number): Promise<void> {
    const live = await this.hold(id)
    const fwds = live.state.hostfwds
    const i = fwds.findIndex((f) => f.guestPort === guestPort)
    if (i < 0) return
    await removeHostFwd(live.handle.qmp, fwds[i].nsPort)
    fwds.splice(i, 1)
    await runs.writeRunState(live.handle.dir, live.state)
  }

  private async adoptDefault(id: string): Promise<LiveVm | null> {
    return (await this.adopt(id, this.dirFor(id))) ? this.live.get(id)! : null
  }

  /** The live record, adopting from the default dir if this process does not hold it yet. */
  private async hold(id: string): Promise<LiveVm> {
    const live = this.live.get(id) ?? (await this.adoptDefault(id))
    if (!live) throw new Error(`VM ${id} is not running`)
    return live
  }
}
