import { realpath, rm, stat } from 'node:fs/promises'
import { run } from './proc.ts'

/**
 * Per-VM disks: a qcow2 overlay on the image's read-only raw base.
 *
 * Backing path and the jail: the overlay records the base's absolute *host* path (realpath), so
 * host tools (`qemu-img info/resize/commit`, snapshots) open the chain as is. Inside the jail the
 * base is bound read-only at /image/rootfs.img, and QEMU is told so explicitly: the driver opens
 * the disk with `-blockdev ...,backing=<node>` naming a separate read-only node for the base, which
 * overrides the path recorded in the qcow2 header (libvirt does the same). No host path has to
 * exist inside the jail and no rebasing is ever needed when the jail layout changes.
 */

export class DiskShrinkError extends Error {
  constructor(
    readonly path: string,
    readonly currentBytes: number,
    readonly requestedBytes: number,
  ) {
    super(
      `cannot shrink disk ${path} from ${mib(currentBytes)} MiB to ${mib(requestedBytes)} MiB: ` +
        'shrinking would cut off guest data; only growing is supported',
    )
    this.name = 'DiskShrinkError'
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0)
}

export interface DiskInfo {
  virtualBytes: number
  /** Host bytes allocated to the overlay file. */
  allocatedBytes: number
  backingFile: string | null
}

/** Creates `overlayPath` on `basePath` (raw), with at least the base's size. */
export async function createOverlay(
  basePath: string,
  overlayPath: string,
  sizeBytes?: number,
): Promise<void> {
  const base = await realpath(basePath)
  const baseSize = (await stat(base)).size
  const size = Math.max(sizeBytes ?? 0, baseSize)
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-o',
    `backing_file=${base},backing_fmt=raw`,
    overlayPath,
    String(size),
  ])
}

export async function diskInfo(path: string): Promise<DiskInfo> {
  // -U (force share): reading the header is safe while a VM holds the image's write lock.
  const out = await run('qemu-img', ['info', '-U', '--output=json', path])
  const info = JSON.parse(out) as { 'virtual-size': number; 'backing-filename'?: string }
  return {
    virtualBytes: info['virtual-size'],
    allocatedBytes: await diskUsage(path),
    backingFile: info['backing-filename'] ?? null,
  }
}

/**
 * Grows the disk to `sizeBytes` (the guest grows its filesystem at boot). Refuses to shrink.
 * Only while stopped: QEMU holds the image's write lock and qemu-img fails clearly if it runs.
 * Returns whether the size changed.
 */
export async function resizeDisk(path: string, sizeBytes: number): Promise<boolean> {
  const { virtualBytes } = await diskInfo(path)
  if (sizeBytes < virtualBytes) throw new DiskShrinkError(path, virtualBytes, sizeBytes)
  if (sizeBytes === virtualBytes) return false
  await run('qemu-img', ['resize', '-q', path, String(sizeBytes)])
  return true
}

/** Bytes the overlay occupies on the host (allocated blocks, not the virtual size). */
export async function diskUsage(path: string): Promise<number> {
  const st = await stat(path)
  return st.blocks * 512
}

export async function deleteDisk(path: string): Promise<void> {
  await rm(path, { force: true })
}
