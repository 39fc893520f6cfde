import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { SnapshotRef } from './disk-snapshots.ts'

export type { SnapshotRef } from './disk-snapshots.ts'

/**
 * The seam between the control plane and a node (DESIGN.md §1): a direct call on one host,
 * authenticated HTTP between hosts. Everything a node needs to run one VM travels in a
 * WorkspaceSpec; the node keeps no user state of its own.
 */
export interface WorkspaceSpec {
  id: string
  name: string
  ownerId: string
  image: string
  ramMb: number
  vcpus: number
  diskMb: number
  env: Record<string, string>
  authorizedKeys: string[]
  /** What the VM's egress proxy lets through. */
  egress: { allow: string[]; deny: string[] }
}

export type VmExitReason = 'poweroff' | 'crash' | 'oom'

export interface VmExit {
  reason: VmExitReason
  detail: string
}

export interface ExecSpec {
  command: string
  user?: 'developer' | 'root'
  timeoutMs?: number
  env?: Record<string, string>
  stdin?: Buffer
}

export interface ExecResult {
  exit_code: number
  stdout: string
  stderr: string
  timed_out: boolean
  truncated: boolean
}

export interface EgressCounters {
  connections: number
  refused: number
  bytes_in: number
  bytes_out: number
}

export interface GuestMetrics {
  /** Outbound traffic through the node's egress proxy since the node started. */
  egress?: EgressCounters
  cpu_percent: number
  ram_used_mb: number
  ram_total_mb: number
  disk_used_mb: number
  disk_total_mb: number
}

export interface GuestLogLine {
  cursor: string
  timestamp: string | null
  message: string
  unit?: string | null
}

export interface GuestListeningPort {
  port: number
  address: string
  process: string | null
  pid: number | null
}

/**
 * How this host reaches a guest TCP port (router, SSH gateway, app health): a fresh connection per
 * `connect()`, already usable (writes queue until it connects). `key` names the way, for pools.
 */
export interface GuestPortTarget {
  key: string
  connect(): Socket
}

export interface NodeInfo {
  id: string
  accel: string
  capacity: { ramMb: number; vcpus: number }
}

export interface NodeClient {
  readonly id: string
  info(): Promise<NodeInfo>
  /** Creates the workspace's disk if missing and applies a resize; idempotent. */
  provision(spec: WorkspaceSpec): Promise<void>
  /**
   * Boots the VM and resolves once its agent reports ready. Aborting kills the boot. A VM paused
   * with `pause` is resumed instead (`resumed: true`): its processes go on where they were.
   */
  start(spec: WorkspaceSpec, signal: AbortSignal): Promise<{ ipAddress: string; resumed: boolean }>
  /** Ends the VM (its disk is kept); a saved memory state is discarded. */
  stop(id: string, timeoutMs: number): Promise<void>
  /** Saves the running VM's memory and device state and ends it; its RAM and CPU are freed. */
  pause(id: string): Promise<{ memoryBytes: number }>
  /** Removes the VM and every file of it, its snapshots included. */
  destroy(id: string): Promise<void>
  /** Copies a stopped workspace's disk into a snapshot (sparse); complete once it resolves. */
  snapshotDisk(spec: WorkspaceSpec, snapshotId: string): Promise<{ sizeBytes: number }>
  /** Replaces a stopped workspace's disk with a snapshot's (its own, or another's for a fork). */
  restoreDisk(spec: WorkspaceSpec, from: SnapshotRef): Promise<void>
  deleteSnapshot(ref: SnapshotRef): Promise<void>
  /** After a crash: removes partial copies and the snapshot files not in `keep`. */
  sweepSnapshots(keep: SnapshotRef[]): Promise<string[]>
  /** VMs the node is running right now (after a restart: the ones it adopted). */
  running(): Promise<string[]>
  /**
   * Reattaches to the VMs that survived a control-plane restart and should live (`keep`, with
   * what each needs); kills the others, keeping their disks.
   */
  recover(keep: WorkspaceSpec[]): Promise<{ adopted: string[]; removed: string[] }>
  onExit(listener: (id: string, exit: VmExit) => void): void
  configure(spec: WorkspaceSpec): Promise<void>
  exec(id: string, spec: ExecSpec, maxOutputBytes: number): Promise<ExecResult>
  readFile(id: string, path: string, maxBytes: number): Promise<Buffer>
  writeFile(id: string, path: string, data: Buffer): Promise<void>
  metrics(id: string): Promise<GuestMetrics>
  logs(id: string, opts: { lines: number; cursor?: string; unit?: string }): Promise<GuestLogLine[]>
  followLogs(
    id: string,
    opts: { cursor?: string; unit?: string },
    onLine: (line: GuestLogLine) => void,
    signal: AbortSignal,
  ): Promise<void>
  listeningPorts(id: string): Promise<GuestListeningPort[]>
  /**
   * The way from this host to `guestPort` in the VM, made on first use and gone when the VM stops.
   * Inbound traffic (router, SSH gateway) uses it; nothing else on the host can reach the port.
   */
  forwardPort(id: string, guestPort: number): Promise<GuestPortTarget>
  /** Serves the VM bridge (`172.16.0.1:9090` in every VM): connections arrive tagged by VM. */
  setBridge(handler: (conn: Duplex, workspaceId: string) => void): void
  close(): Promise<void>
}
