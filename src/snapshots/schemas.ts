import { z } from 'zod'
import type { SnapshotsTable } from '../db/schema.ts'
import { dnsLabel } from '../workspaces/schemas.ts'

export const snapshotName = z
  .string()
  .trim()
  .min(1)
  .max(128)
  .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters')

export const createSnapshotRequest = z
  .object({
    name: snapshotName.nullish().describe('Defaults to snapshot-<UTC timestamp>'),
  })
  .meta({ id: 'CreateSnapshotRequest' })

export const snapshotView = z
  .object({
    id: z.string(),
    workspace_id: z.string(),
    name: z.string(),
    /** Allocated on the host: only the blocks the workspace wrote (snapshots are sparse). */
    size_bytes: z.number().int(),
    size_mb: z.number().int(),
    created_at: z.string(),
  })
  .meta({ id: 'SnapshotView', description: 'A disk snapshot of a workspace.' })
export type SnapshotView = z.infer<typeof snapshotView>

export const createSnapshotResponse = z
  .object({ snapshot: snapshotView })
  .meta({ id: 'CreateSnapshotResponse' })
export const listSnapshotsResponse = z
  .object({ snapshots: z.array(snapshotView) })
  .meta({ id: 'ListSnapshotsResponse' })
export const restoreSnapshotResponse = z
  .object({ message: z.string(), workspace_id: z.string() })
  .meta({ id: 'RestoreSnapshotResponse' })

export const forkSnapshotRequest = z
  .object({
    name: dnsLabel
      .nullish()
      .describe('Name of the new workspace; defaults to <source>-fork-<random>'),
  })
  .meta({ id: 'ForkSnapshotRequest' })

export const snapshotIdParams = z.object({
  snapshot_id: z.string().min(1).max(64).describe('Snapshot ID (e.g. snap-xxxxxxxx)'),
})
export const workspaceSnapshotParams = z.object({
  id: z.string().min(1).max(64).describe('Workspace ID'),
  snapshot_id: z.string().min(1).max(64).describe('Snapshot ID'),
})

export function toSnapshotView(row: SnapshotsTable): SnapshotView {
  return {
    id: row.id,
    workspace_id: row.workspace_id,
    name: row.name,
    size_bytes: row.size_bytes,
    size_mb: Math.ceil(row.size_bytes / 1024 ** 2),
    created_at: row.created_at,
  }
}
