import { mkdir, readdir, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { commitPartial, PARTIAL } from '../lib/durable.ts'
import { run } from '../vm/proc.ts'

/**
 * Disk snapshots on a node: `<dataDir>/snapshots/<workspace>/<snapshot>.qcow2`, each a full copy of
 * the workspace's qcow2 overlay at that moment. The overlay holds only the blocks the workspace
 * wrote over its image, so a snapshot is sparse by construction and `cp --sparse=always` keeps the
 * holes left by discards; the read-only image they all sit on is shared. Being copies, snapshots
 * depend neither on later writes to the workspace nor on each other.
 *
 * Every write goes to a `.partial` file, is fsynced and then renamed: a crash leaves either the old
 * file or the new one, plus at worst a `.partial` that `sweep` removes.
 */

export interface SnapshotRef {
  workspaceId: string
  snapshotId: string
}

export class DiskSnapshots {
  readonly root: string

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'snapshots')
  }

  fileOf(ref: SnapshotRef): string {
    return path.join(this.root, ref.workspaceId, `${ref.snapshotId}.qcow2`)
  }

  /** Copies `disk` into the snapshot `ref`; returns the bytes the copy occupies. */
  async take(disk: string, ref: SnapshotRef): Promise<{ sizeBytes: number }> {
    const file = this.fileOf(ref)
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    await copyDurably(disk, file)
    return { sizeBytes: (await stat(file)).blocks * 512 }
  }

  /** Puts the snapshot in place of `disk`; the old disk stays until the new one is complete. */
  async restore(ref: SnapshotRef, disk: string): Promise<void> {
    const file = this.fileOf(ref)
    await stat(file).catch(() => {
      throw Object.assign(new Error(`snapshot ${ref.snapshotId} has no data on this node`), {
        code: 'SNAPSHOT_MISSING',
      })
    })
    await copyDurably(file, disk)
  }

  async remove(ref: SnapshotRef): Promise<void> {
    const file = this.fileOf(ref)
    await rm(file, { force: true })
    await rm(file + PARTIAL, { force: true })
  }

  /** Every snapshot of a workspace (the workspace is being deleted). */
  async removeAll(workspaceId: string): Promise<void> {
    await rm(path.join(this.root, workspaceId), { recursive: true, force: true })
  }

  /** After a crash: drops partial copies and files the control plane has no snapshot for. */
  async sweep(keep: SnapshotRef[]): Promise<string[]> {
    const wanted = new Set(keep.map((r) => this.fileOf(r)))
    const removed: string[] = []
    for (const ws of await readdir(this.root).catch(() => [] as string[])) {
      const dir = path.join(this.root, ws)
      const files = await readdir(dir).catch(() => [] as string[])
      for (const f of files) {
        const file = path.join(dir, f)
        if (wanted.has(file)) continue
        await rm(file, { force: true })
        removed.push(file)
      }
      if (files.every((f) => !wanted.has(path.join(dir, f)))) await rm(dir, { recursive: true })
    }
    return removed
  }
}

/** Sparse copy to `<to>.partial`, fsync, rename over `to`, fsync the directory. */
export async function copyDurably(from: string, to: string): Promise<void> {
  const partial = to + PARTIAL
  await rm(partial, { force: true })
  try {
    await run('cp', ['--sparse=always', '--reflink=auto', from, partial], 30 * 60_000)
    await commitPartial(to)
  } catch (err) {
    await rm(partial, { force: true })
    throw err
  }
}

/** Removes `*.partial` files directly in `dir` (an interrupted restore or memory save). */
export async function sweepPartials(dir: string): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (f.endsWith(PARTIAL)) await rm(path.join(dir, f), { force: true })
  }
}
