import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Config } from '../config/config.ts'
import type { GuestChannel } from '../guest/index.ts'
import { GuestCalls } from './guest-calls.ts'
import { ApiError } from '../http/errors.ts'
import { QemuDriver } from '../vm/qemu.ts'
import { describeExit, type VmDriver, type VmHandle, type VmLaunchSpec } from '../vm/types.ts'
import { guestError } from './guest-errors.ts'
import { prepareGuest } from './guest-prep.ts'
import { resolveInstallation } from './installation.ts'
import { launchSpecFor } from './launch.ts'
import { Leases } from './leases.ts'
import { TunnelHost } from './tunnel.ts'
import { DiskSnapshots, sweepPartials, type SnapshotRef } from './disk-snapshots.ts'
import { discardMemoryState } from '../vm/memory.ts'
import { exists } from '../vm/proc.ts'
import { hostDir } from '../vm/jail.ts'
import { createEgressProxy, type EgressPolicy, type EgressProxy } from '../egress/index.ts'
import type { Duplex } from 'node:stream'
import { relayTarget } from './inbound.ts'
import { registerImageUser } from '../images/gc.ts'
import type { GuestPortTarget, NodeClient, NodeInfo, VmExit, WorkspaceSpec } from './types.ts'

/**
 * The node on this host: QEMU VMs through the jailed driver, each reached through its guest
 * agent. It keeps nothing a VM could use against another: per-VM directories, uids, cgroups and
 * leases; the control plane's database and keys stay outside every jail.
 */
export class LocalNode extends GuestCalls implements NodeClient {
  readonly id: string
  private readonly exitListeners: ((id: string, exit: VmExit) => void)[] = []
  private readonly watched = new WeakSet<VmHandle>()
  private readonly forwarding = new Map<string, Promise<number>>()
  /** Each running VM's egress policy, as its spec last said. */
  private readonly policies = new Map<string, EgressPolicy>()
  private readonly egress: EgressProxy
  private readonly tunnel: TunnelHost
  private bridge: ((conn: Duplex, workspaceId: string) => void) | null = null
  private readonly snapshots: DiskSnapshots

  constructor(
    private readonly config: Config,
    private readonly driver: VmDriver & { dirFor(id: string): string },
    private readonly leases: Leases,
  ) {
    super()
    this.id = `node-${os
      .hostname()
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')}`
    this.snapshots = new DiskSnapshots(config.dataDir)
    this.egress = createEgressProxy({
      policyFor: async (id) => this.policies.get(id) ?? { allow: [], deny: [] },
      operatorAllow: config.egress.allow,
    })
    this.tunnel = new TunnelHost({
      handlers: {
        bridge: (conn, id) => (this.bridge ? this.bridge(conn, id) : conn.destroy()),
        egress: (conn, id) => this.egress.handle(conn, id),
      },
    })
  }

  /** Who serves `172.16.0.1:9090` in the VMs (the control plane's bridge on this host). */
  setBridge(handler: (conn: Duplex, workspaceId: string) => void): void {
    this.bridge = handler
  }

  async info(): Promise<NodeInfo> {
    const accel = this.driver instanceof QemuDriver ? (await this.driver.accel()).accel : 'unknown'
    return { id: this.id, accel, capacity: this.config.nodeCapacity }
  }

  async provision(spec: WorkspaceSpec): Promise<void> {
    if (this.driver.get(spec.id)) return // running: resizes apply at the next start
    await this.driver.prepare(await this.launchSpec(spec, this.leases.peek(spec.id)))
  }

  async start(spec: WorkspaceSpec, signal: AbortSignal) {
    const ipAddress = await this.leases.acquire(spec.id)
    let handle =
      this.driver.get(spec.id) ?? (await this.driver.adopt(spec.id, this.driver.dirFor(spec.id)))
    // A QEMU left paused by a crash mid-resume (or mid-pause) would never boot: it goes, and the
    // VM starts over from what is on disk (or from the memory state, if it is still there).
    if (handle && !(await this.driver.vcpusRunning(spec.id))) {
      this.forget(spec.id)
      await this.driver.kill(spec.id)
      handle = null
    }
    let resumed = false
    if (!handle) {
      const memory = this.memoryFile(spec.id)
      resumed = await exists(memory)
      const launch = await this.launchSpec(spec, ipAddress)
      handle = await this.driver.start(resumed ? { ...launch, resumeFrom: memory } : launch)
    }
    this.watch(handle)
    this.policies.set(spec.id, spec.egress)
    // Before the guest is up, so services starting during boot already reach the bridge and proxy.
    this.tunnel.attach(spec.id, handle.sockets.tunnel)
    const guest = await this.links.await(handle, this.config.bootTimeoutMs, signal)
    await this.untilBooted(guest, signal)
    await guest.configure({
      hostname: spec.name,
      workspace: { id: spec.id, name: spec.name, owner_id: spec.ownerId },
      env: spec.env,
      authorized_keys: spec.authorizedKeys,
      // The guest's wall clock stood still while it was paused.
      ...(resumed && { clock_unix_ms: Date.now() }),
    })
    // A fresh boot gets the operator's CAs and the package managers' proxy config before it
    // counts as running, so setup scripts can install packages; a resumed VM still has them.
    if (!resumed) await prepareGuest(guest, { caCerts: this.config.egress.guestCaCerts })
    return { ipAddress, resumed }
  }

  async stop(id: string, timeoutMs: number): Promise<void> {
    this.forget(id)
    if (this.driver.get(id) || (await this.isRunning(id))) {
      await this.driver.stop(id, { timeoutMs })
    }
    // Stopped means the next start boots from the disk: a memory state would no longer match it.
    await discardMemoryState(this.memoryFile(id))
    await this.leases.release(id)
  }

  async pause(id: string): Promise<{ memoryBytes: number }> {
    const { bytes } = await this.driver.suspend(id, this.memoryFile(id))
    this.forget(id)
    return { memoryBytes: bytes }
  }

  async destroy(id: string): Promise<void> {
    this.forget(id)
    await this.driver.destroy(id, this.driver.dirFor(id))
    await this.snapshots.removeAll(id)
    await this.leases.release(id)
  }

  async snapshotDisk(spec: WorkspaceSpec, snapshotId: string) {
    return this.snapshots.take(await this.stoppedDisk(spec), { workspaceId: spec.id, snapshotId })
  }

  async restoreDisk(spec: WorkspaceSpec, from: SnapshotRef): Promise<void> {
    // A fork's new workspace has no directory yet: provisioning makes it, with its jail uid.
    if (!(await exists(this.diskOf(spec.id)))) await this.provision(spec)
    await this.snapshots.restore(from, await this.stoppedDisk(spec))
    await discardMemoryState(this.memoryFile(spec.id))
    await this.provision(spec) // back to the workspace's size and owned by its jail uid
  }

  deleteSnapshot(ref: SnapshotRef): Promise<void> {
    return this.snapshots.remove(ref)
  }

  sweepSnapshots(keep: SnapshotRef[]): Promise<string[]> {
    return this.snapshots.sweep(keep)
  }

  async running(): Promise<string[]> {
    return (await this.driver.listRunning()).map((vm) => vm.id)
  }

  async recover(keep: WorkspaceSpec[]) {
    const wanted = new Map(keep.map((s) => [s.id, s]))
    const adopted: string[] = []
    const removed: string[] = []
    for (const vm of await this.driver.listRunning()) {
      const spec = wanted.get(vm.id)
      const handle = spec ? await this.driver.adopt(vm.id, this.driver.dirFor(vm.id)) : null
      if (handle && spec) {
        this.watch(handle)
        this.policies.set(vm.id, spec.egress)
        this.tunnel.attach(vm.id, handle.sockets.tunnel)
        adopted.push(vm.id)
        // The agent answers again once its watchdog has reopened the port.
        this.links.link(handle, this.config.bootTimeoutMs).catch(() => undefined)
      } else {
        await this.driver.kill(vm.id)
        await this.leases.release(vm.id)
        removed.push(vm.id)
      }
    }
    // A paused VM keeps its address: the guest resumes with it configured.
    const paused = []
    for (const spec of keep) {
      if (await exists(this.memoryFile(spec.id))) paused.push(spec.id)
    }
    // Copies a crash cut short (a restore, a memory save), in every VM's directory.
    const vmsDir = path.join(this.config.dataDir, 'vms')
    for (const id of await fs.readdir(vmsDir).catch(() => [] as string[])) {
      await sweepPartials(path.join(vmsDir, id))
      await sweepPartials(hostDir(path.join(vmsDir, id)))
    }
    await this.leases.retain(new Set([...adopted, ...paused]))
    return { adopted, removed }
  }

  onExit(listener: (id: string, exit: VmExit) => void): void {
    this.exitListeners.push(listener)
  }

  async configure(spec: WorkspaceSpec): Promise<void> {
    this.policies.set(spec.id, spec.egress)
    await this.guest(spec.id)
      .configure({
        hostname: spec.name,
        workspace: { id: spec.id, name: spec.name, owner_id: spec.ownerId },
        env: spec.env,
        authorized_keys: spec.authorizedKeys,
      })
      .catch(guestError)
  }

  async metrics(id: string) {
    const m = await this.guest(id).metrics().catch(guestError)
    const { connections, refused, bytes_in, bytes_out } = this.egress.stats(id)
    return {
      egress: { connections, refused, bytes_in, bytes_out },
      cpu_percent: Math.round(m.cpu_percent * 10) / 10,
      ram_used_mb: Math.round(m.ram_used_mb),
      ram_total_mb: Math.round(m.ram_total_mb),
      disk_used_mb: Math.round(m.disk_used_mb),
      disk_total_mb: Math.round(m.disk_total_mb),
    }
  }

  async forwardPort(id: string, guestPort: number): Promise<GuestPortTarget> {
    const handle = this.driver.get(id)
    if (!handle) throw new ApiError('WORKSPACE_UNAVAILABLE', `workspace ${id} is not running here`)
    // One forward per guest port for the VM's lifetime: QEMU drops them all when it exits.
    const existing = handle.hostfwds.find((f) => f.guestPort === guestPort)
    if (existing) return relayTarget(handle.sockets.inbound, existing.nsPort)
    let pending = this.forwarding.get(`${id}:${guestPort}`)
    if (!pending) {
      pending = this.driver.addHostFwd(id, guestPort)
      this.forwarding.set(`${id}:${guestPort}`, pending)
      void pending
        .finally(() => this.forwarding.delete(`${id}:${guestPort}`))
        .catch(() => undefined)
    }
    return relayTarget(handle.sockets.inbound, await pending)
  }

  async close(): Promise<void> {
    // VMs outlive the control plane on purpose; only our connections to them end here, and the
    // driver lets go of them so this process can exit while they run on.
    this.links.dropAll()
    this.tunnel.close()
    this.egress.close()
    for (const vm of await this.driver.listRunning()) this.driver.release(vm.id)
  }

  /**
   * The agent starts early in boot; a workspace is `running` once systemd has finished booting
   * (sshd and the user's services are up), not merely once the agent answers.
   */
  private async untilBooted(guest: GuestChannel, signal: AbortSignal) {
    for (;;) {
      if (signal.aborted) throw new Error('start cancelled')
      const { systemd_state } = await guest.health()
      if (systemd_state === 'running' || systemd_state === 'degraded') return
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  /** Everything this node holds for a VM that is no longer running. */
  private forget(id: string) {
    this.links.drop(id)
    this.tunnel.detach(id)
    this.policies.delete(id)
  }

  /** Reports a VM that ended without being asked to, once, to every listener. */
  private watch(handle: VmHandle) {
    if (this.watched.has(handle)) return
    this.watched.add(handle)
    void handle.exited.then(async (exit) => {
      if (this.driver.get(handle.id) && this.driver.get(handle.id) !== handle) return
      this.forget(handle.id)
      // An end the host asked for (stop, pause, destroy, a restart) settles the lease itself: a
      // paused VM keeps its address, and a restarted one must not lose it to this late callback.
      if (exit.requested) return
      await this.leases.release(handle.id).catch(() => undefined)
      const { reason, detail } = describeExit(exit)
      for (const l of this.exitListeners) l(handle.id, { reason, detail })
    })
  }

  /** Where `pause` keeps a VM's memory state: root's part of its directory, out of the jail. */
  private memoryFile(id: string): string {
    return path.join(hostDir(this.driver.dirFor(id)), 'memory.state')
  }

  private diskOf(id: string): string {
    return path.join(this.driver.dirFor(id), 'disk.qcow2')
  }

  private async stoppedDisk(spec: WorkspaceSpec): Promise<string> {
    if (this.driver.get(spec.id) || (await this.isRunning(spec.id))) {
      throw new ApiError('INVALID_STATE', `workspace ${spec.id} is running; stop it first`)
    }
    const disk = this.diskOf(spec.id)
    if (!(await exists(disk))) {
      throw new ApiError('INVALID_STATE', `workspace ${spec.id} has no disk yet: start it once`)
    }
    return disk
  }

  private launchSpec(spec: WorkspaceSpec, ipAddress: string): Promise<VmLaunchSpec> {
    return launchSpecFor(spec, this.driver.dirFor(spec.id), ipAddress, this.config.imageDir)
  }

  private async isRunning(id: string) {
    return (await this.driver.listRunning()).some((vm) => vm.id === id)
  }
}

/** The node of `rigbox serve`; fails when the host lacks what VMs need (the server then has none). */
export async function createLocalNode(config: Config): Promise<NodeClient> {
  for (const tool of ['/usr/bin/qemu-system-x86_64', '/usr/bin/bwrap', '/usr/bin/qemu-img']) {
    await fs.access(tool).catch(() => {
      throw new Error(`${tool} is missing: run scripts/setup.sh (it installs the VM runtime)`)
    })
  }
  const vmsDir = path.join(config.dataDir, 'vms')
  await fs.mkdir(vmsDir, { recursive: true, mode: 0o700 })
  // Our disks sit on images there: another installation's `rig image gc` must see them.
  await registerImageUser(config.imageDir, config.dataDir).catch(() => undefined)
  const own = await resolveInstallation({ dataDir: config.dataDir, ...config.jail })
  const leases = await Leases.open(path.join(config.dataDir, 'node', 'leases.json'))
  const driver = new QemuDriver({ vmsDir, accel: config.accel, ...own })
  return new LocalNode(config, driver, leases)
}
