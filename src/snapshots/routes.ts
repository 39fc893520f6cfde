import { z } from 'zod'
import { defineRoute, messageSchema } from '../http/route.ts'
import {
  flatWorkspace,
  getWorkspaceResponse,
  toFlatWorkspace,
  workspaceIdParams,
} from '../workspaces/schemas.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import {
  createSnapshotRequest,
  createSnapshotResponse,
  forkSnapshotRequest,
  listSnapshotsResponse,
  restoreSnapshotResponse,
  snapshotIdParams,
  snapshotView,
  toSnapshotView,
  workspaceSnapshotParams,
} from './schemas.ts'
import type { SnapshotService } from './service.ts'

const tag = 'snapshots'
// The seed's unversioned shapes: the snapshot object itself, and bare arrays.
const flatOne = { schema: snapshotView, from: (r: { snapshot: unknown }) => r.snapshot }
const flatList = {
  schema: z.array(snapshotView),
  from: (r: { snapshots: unknown[] }) => r.snapshots,
}
const common = { tag, auth: 'user', rateClass: 'workspaces' } as const

export function snapshotRoutes(snaps: SnapshotService, ws: WorkspaceService) {
  const restored = (workspaceId: string) => ({
    message: `snapshot restored into workspace ${workspaceId}; start it to boot the restored disk`,
    workspace_id: workspaceId,
  })
  return [
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/snapshots',
      summary:
        'Snapshot a stopped workspace’s disk (409 while it runs); returns once the copy is complete',
      params: workspaceIdParams,
      body: createSnapshotRequest,
      status: 201,
      response: createSnapshotResponse,
      flat: flatOne,
      handler: async ({ user, params, body }) => ({
        snapshot: toSnapshotView(await snaps.create(user, params.id, body.name)),
      }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/workspaces/:id/snapshots',
      summary: 'List a workspace’s snapshots, newest first',
      params: workspaceIdParams,
      response: listSnapshotsResponse,
      flat: flatList,
      handler: async ({ user, params }) => ({
        snapshots: (await snaps.listForWorkspace(user, params.id)).map(toSnapshotView),
      }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/snapshots',
      summary: 'List all your snapshots, newest first',
      response: listSnapshotsResponse,
      flat: flatList,
      handler: async ({ user }) => ({
        snapshots: (await snaps.listForUser(user)).map(toSnapshotView),
      }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/workspaces/:id/snapshots/:snapshot_id/restore',
      summary: 'Replace a stopped workspace’s disk with one of its snapshots',
      params: workspaceSnapshotParams,
      response: restoreSnapshotResponse,
      handler: async ({ user, params }) => {
        await snaps.restore(user, params.snapshot_id, params.id)
        return restored(params.id)
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/snapshots/:snapshot_id/restore',
      summary: 'Restore a snapshot into the (stopped) workspace it was taken of',
      params: snapshotIdParams,
      response: restoreSnapshotResponse,
      handler: async ({ user, params }) =>
        restored((await snaps.restore(user, params.snapshot_id)).workspace_id),
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/workspaces/:id/snapshots/:snapshot_id',
      summary: 'Delete a workspace’s snapshot (the workspace is not affected)',
      params: workspaceSnapshotParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        await snaps.remove(user, params.snapshot_id, params.id)
        return { message: `snapshot ${params.snapshot_id} deleted` }
      },
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/snapshots/:snapshot_id',
      summary: 'Delete a snapshot',
      params: snapshotIdParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        await snaps.remove(user, params.snapshot_id)
        return { message: `snapshot ${params.snapshot_id} deleted` }
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/snapshots/:snapshot_id/fork',
      summary:
        'Create a new workspace whose disk starts as the snapshot’s (own id, name, hostname, machine-id, SSH host keys and IP)',
      params: snapshotIdParams,
      body: forkSnapshotRequest,
      status: 201,
      response: getWorkspaceResponse,
      flat: { schema: flatWorkspace, from: toFlatWorkspace },
      handler: async ({ user, params, body }) =>
        ws.describe(await snaps.fork(user, params.snapshot_id, body.name)),
    }),
  ]
}
