import { unwrap, type RigboxClient, type Schemas } from '../client/index.ts'
import { CliError, table } from './context.ts'
import { resolveWorkspace } from './workspaces.ts'

export type Snapshot = Schemas['SnapshotView']

/**
 * A snapshot by id, or by name: among `workspace`'s snapshots when given, else among all of
 * the user's. A name that more than one snapshot has is an error naming them all.
 */
export async function resolveSnapshot(
  api: RigboxClient,
  ref: string,
  workspace?: string,
): Promise<Snapshot> {
  let snapshots: Snapshot[]
  let scope = ''
  if (workspace) {
    const ws = await resolveWorkspace(api, workspace)
    snapshots = unwrap(
      await api.GET('/api/v1/workspaces/{id}/snapshots', { params: { path: { id: ws.id } } }),
    ).snapshots
    scope = ` of workspace ${ws.name}`
  } else {
    snapshots = unwrap(await api.GET('/api/v1/snapshots')).snapshots
  }
  const byId = snapshots.find((s) => s.id === ref)
  if (byId) return byId
  const named = snapshots.filter((s) => s.name === ref)
  if (named.length === 1) return named[0]
  if (!named.length) throw new CliError(`no snapshot${scope} named or with id "${ref}"`)
  const which = named
    .map((s) => `${s.id} (${workspace ? `created ${s.created_at}` : `of ${s.workspace_id}`})`)
    .join(', ')
  throw new CliError(
    `${named.length} snapshots${scope} are named "${ref}": ${which}; give the id${workspace ? '' : ' or --workspace'}`,
  )
}

/** Bytes as people read them: 512B, 4.0K, 37M, 1.2G. */
export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T']
  let n = bytes
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  if (i === 0) return `${n}B`
  return `${n < 10 ? n.toFixed(1) : Math.round(n)}${units[i]}`
}

/** `workspaceNames` (id → name) shows each snapshot's workspace by name where known. */
export function snapshotTable(snapshots: Snapshot[], workspaceNames: Record<string, string> = {}) {
  return table(
    ['ID', 'WORKSPACE', 'NAME', 'SIZE', 'CREATED'],
    snapshots.map((s) => [
      s.id,
      workspaceNames[s.workspace_id] ?? s.workspace_id,
      s.name,
      humanSize(s.size_bytes),
      s.created_at,
    ]),
  )
}
