/**
 * The VM driver seam. Kept narrow and VMM-neutral so a Firecracker or cloud-hypervisor driver can
 * sit beside QEMU on a KVM host: nothing here names QMP, qcow2 or a command-line flag.
 */

export interface VmImage {
  /** Uncompressed kernel (microvm under TCG needs vmlinux, not bzImage). */
  kernelPath: string
  initrdPath: string
  /** Read-only raw base; each VM writes to its own overlay. */
  rootfsPath: string
  /** The image's own kernel command line (root device, init); accelerator flags are added. */
  cmdline: string
}

/** A guest TCP port reachable through the VM's inbound relay (`VmSockets.inbound`). */
export interface HostFwd {
  guestPort: number
  /** The forward's port inside the VM's own network namespace: what the relay is asked for. */
  nsPort: number
}

export interface VmLaunchSpec {
  /** Lowercase letters, digits and dashes (used in paths and cgroup names). */
  id: string
  /** The VM's own directory (disk overlay, sockets, console log, run state). */
  dir: string
  image: VmImage
  memMb: number
  vcpus: number
  /** Virtual size of the VM's disk; grown (never shrunk) at `prepare` while stopped. */
  diskMb: number
  /** The VM's lease in 172.16.0.0/24 (.2–.254); the guest receives it over DHCP. */
  ipAddress: string
  /** Host path of a memory snapshot (`suspend`) to resume from instead of booting. */
  resumeFrom?: string
}

export interface VmExit {
  /** Exit code of the VMM (128+n when it died from signal n and the jail reported that). */
  code: number | null
  signal: NodeJS.Signals | null
  /** The cgroup's OOM killer fired (memory limit = guest RAM + VMM overhead). */
  oomKilled: boolean
  /** The guest powered itself off (after an ACPI power button press or on its own). */
  guestPoweredOff: boolean
  /**
   * The guest asked for a reset: `reboot`, or a kernel panic with panic=-1. QEMU runs with
   * -no-reboot, so that ends the VM; the node decides whether to boot it again.
   */
  guestReset: boolean
  /** The host asked for it (stop, kill, destroy), so it is not a crash. */
  requested: boolean
}

export interface VmSockets {
  /** virtio-serial `agent` port: the control channel. */
  agent: string
  /** virtio-serial `bulk` port: large streams, so they cannot starve control calls. */
  bulk: string
  /** virtio-serial `tunnel` port: outbound connections (VM bridge, egress proxy). */
  tunnel: string
  /** The VMM's control socket (QMP for QEMU). */
  control: string
  /**
   * The inbound relay (unix socket, root and the jail uid only): send a forward's `nsPort` and a
   * newline, then the connection is the guest port's. The one way into the VM's network.
   */
  inbound: string
}

export interface VmHandle {
  id: string
  dir: string
  /** Host pid of the VMM process. */
  pid: number
  /** The jail uid the VMM runs as. */
  uid: number
  accel: string
  sockets: VmSockets
  /** Forwards in place (guest port → port in the VM's namespace), reached through `inbound`. */
  hostfwds: HostFwd[]
  /** Settles once, when the VMM process is gone; never rejects. */
  exited: Promise<VmExit>
}

export interface RunningVm {
  id: string
  dir: string | null
  pid: number
}

export interface VmDriver {
  readonly kind: string
  /** Creates the directory, the disk overlay and the jail uid; grows the disk. Idempotent. */
  prepare(spec: VmLaunchSpec): Promise<void>
  /** Boots the VM; resolves once the VMM answers on its control socket (not when the guest is up). */
  start(spec: VmLaunchSpec): Promise<VmHandle>
  /** Graceful: ACPI power button, a bounded wait, then force. */
  stop(id: string, opts?: { timeoutMs?: number }): Promise<VmExit>
  /** Saves memory and device state to `file` (host path), then ends the VM. */
  suspend(id: string, file: string): Promise<{ bytes: number }>
  /** Whether the guest's CPUs are running (not paused for a memory save or load). */
  vcpusRunning(id: string): Promise<boolean>
  kill(id: string): Promise<VmExit | null>
  /** Reattaches to a VMM that outlived the server; null (and cleans up) if it is gone. */
  adopt(id: string, dir: string): Promise<VmHandle | null>
  /** Lets go of a VM without stopping it (server shutdown); `adopt` takes it back. */
  release(id: string): void
  /** Live VMMs found on the host (in VM dirs or cgroups), whether or not this process holds them. */
  listRunning(): Promise<RunningVm[]>
  /** Kills it if running and removes every file and cgroup of it. */
  destroy(id: string, dir?: string): Promise<void>
  /** Makes a guest TCP port reachable through the inbound relay (idempotent); its `nsPort`. */
  addHostFwd(id: string, guestPort: number): Promise<number>
  removeHostFwd(id: string, guestPort: number): Promise<void>
  get(id: string): VmHandle | undefined
}

export type VmExitReason = 'poweroff' | 'crash' | 'oom'

/** One word and a sentence for an exit, as the node reports it upward. */
export function describeExit(exit: VmExit): { reason: VmExitReason; detail: string } {
  const how = exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code ?? 'unknown'}`
  if (exit.oomKilled) return { reason: 'oom', detail: `killed by the OOM killer (${how})` }
  if (exit.guestPoweredOff) return { reason: 'poweroff', detail: 'the guest powered off' }
  if (exit.guestReset) {
    return { reason: 'crash', detail: 'the guest reset itself (reboot or kernel panic)' }
  }
  if (exit.requested) return { reason: 'poweroff', detail: `stopped by the host (${how})` }
  if (exit.code === 0 && !exit.signal) return { reason: 'poweroff', detail: 'the VMM exited' }
  return { reason: 'crash', detail: `the VMM died (${how})` }
}
