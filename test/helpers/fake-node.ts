import { tcpTarget } from '../../src/node/inbound.ts'
import type {
  ExecResult,
  GuestLogLine,
  GuestMetrics,
  GuestPortTarget,
  NodeClient,
  NodeInfo,
  SnapshotRef,
  VmExit,
  WorkspaceSpec,
} from '../../src/node/types.ts'

/**
 * An in-memory node for unit tests of the control plane's lifecycle logic only. The real node
 * (QEMU VMs) is exercised by the integration tests under test/node and test/vm.
 */
export class FakeNode implements NodeClient {
  readonly id = 'fake'
  vms = new Map<string, 'running'>()
  provisioned = new Set<string>()
  destroyed: string[] = []
  configured: WorkspaceSpec[] = []
  /** A stand-in for each disk's contents: snapshots copy it, restores put it back. */
  disks = new Map<string, string>()
  snapshots = new Map<string, string>()
  /** Workspaces with a saved memory state. */
  paused = new Set<string>()
  resumes = 0
  /** Makes the next disk copy hang until released (a crash in the middle of one). */
  holdCopies: Promise<void> | null = null
  bootDelayMs = 0
  failBoot: { code: string; message: string } | null = null
  private exitListeners: ((id: string, exit: VmExit) => void)[] = []

  async info(): Promise<NodeInfo> {
    return { id: this.id, accel: 'none', capacity: { ramMb: 8192, vcpus: 8 } }
  }
  async provision(spec: WorkspaceSpec) {
    this.provisioned.add(spec.id)
  }
  async start(spec: WorkspaceSpec, signal: AbortSignal) {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.bootDelayMs)
      signal.addEventListener('abort', () => {
        clearTimeout(t)
        reject(new Error('aborted'))
      })
    })
    if (this.failBoot) throw Object.assign(new Error(this.failBoot.message), this.failBoot)
    this.vms.set(spec.id, 'running')
    const resumed = this.paused.delete(spec.id)
    if (resumed) this.resumes++
    return { ipAddress: '172.16.0.2', resumed }
  }
  async stop(id: string) {
    this.vms.delete(id)
    this.paused.delete(id)
  }
  /** Makes pauses fail as a migration error would (the VM keeps running). */
  failPause = false
  async pause(id: string) {
    if (this.failPause) throw new Error('migration failed: disk full')
    if (!this.vms.delete(id)) throw new Error('not running')
    this.paused.add(id)
    return { memoryBytes: 1 }
  }
  async destroy(id: string) {
    this.vms.delete(id)
    this.provisioned.delete(id)
    this.destroyed.push(id)
    this.disks.delete(id)
    for (const key of this.snapshots.keys()) {
      if (key.startsWith(`${id}/`)) this.snapshots.delete(key)
    }
  }
  async snapshotDisk(spec: WorkspaceSpec, snapshotId: string) {
    if (this.vms.has(spec.id)) throw new Error('running')
    await this.holdCopies
    const disk = this.disks.get(spec.id) ?? ''
    this.snapshots.set(`${spec.id}/${snapshotId}`, disk)
    return { sizeBytes: 4096 + disk.length }
  }
  async restoreDisk(spec: WorkspaceSpec, from: SnapshotRef) {
    if (this.vms.has(spec.id)) throw new Error('running')
    await this.holdCopies
    const data = this.snapshots.get(`${from.workspaceId}/${from.snapshotId}`)
    if (data === undefined) throw new Error('no such snapshot')
    this.disks.set(spec.id, data)
  }
  async deleteSnapshot(ref: SnapshotRef) {
    this.snapshots.delete(`${ref.workspaceId}/${ref.snapshotId}`)
  }
  async sweepSnapshots(keep: SnapshotRef[]) {
    const wanted = new Set(keep.map((r) => `${r.workspaceId}/${r.snapshotId}`))
    const removed = [...this.snapshots.keys()].filter((k) => !wanted.has(k))
    for (const k of removed) this.snapshots.delete(k)
    return removed
  }
  async running() {
    return [...this.vms.keys()]
  }
  async recover(keep: WorkspaceSpec[]) {
    const wanted = new Set(keep.map((s) => s.id))
    const adopted = [...this.vms.keys()].filter((id) => wanted.has(id))
    const removed = [...this.vms.keys()].filter((id) => !wanted.has(id))
    for (const id of removed) this.vms.delete(id)
    return { adopted, removed }
  }
  onExit(listener: (id: string, exit: VmExit) => void) {
    this.exitListeners.push(listener)
  }
  /** Simulates a VM ending on its own. */
  exit(id: string, exit: VmExit) {
    this.vms.delete(id)
    for (const l of this.exitListeners) l(id, exit)
  }
  async configure(spec: WorkspaceSpec) {
    this.configured.push(spec)
  }
  async exec(): Promise<ExecResult> {
    throw new Error('FakeNode has no guest')
  }
  async readFile(): Promise<Buffer> {
    throw new Error('FakeNode has no guest')
  }
  async writeFile() {
    throw new Error('FakeNode has no guest')
  }
  async metrics(): Promise<GuestMetrics> {
    throw new Error('FakeNode has no guest')
  }
  async logs(): Promise<GuestLogLine[]> {
    return []
  }
  async followLogs() {}
  /** Guest ports the fake VM "listens" on, and where each is forwarded to on the host. */
  ports = new Map<number, { host: string; port: number }>()
  async listeningPorts(id: string) {
    if (!this.vms.has(id)) throw new Error('not running')
    return [...this.ports.keys()].map((port) => ({
      port,
      address: '0.0.0.0',
      process: 'fake',
      pid: 1,
    }))
  }
  async forwardPort(id: string, guestPort: number): Promise<GuestPortTarget> {
    const target = this.ports.get(guestPort)
    if (!this.vms.has(id) || !target) throw new Error('port closed')
    return tcpTarget(target.port, target.host)
  }
  setBridge() {}
  async close() {}
}
