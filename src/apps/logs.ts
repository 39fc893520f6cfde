import type { FastifyReply, FastifyRequest } from 'fastify'
import type { User } from '../auth/store.ts'
import { shq, type GuestUnits } from '../automation/guest.ts'
import { ApiError } from '../http/errors.ts'
import type { NodeClient } from '../node/types.ts'
import { streamLogs } from '../workspaces/log-stream.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { AppControl } from './control.ts'
import { viewLogSource, type LogSource, type LogSourceStore } from './log-sources.ts'
import type { AppService } from './service.ts'
import type { AppRow } from './store.ts'

export interface AppLogsDeps {
  apps: AppService
  control: AppControl
  sources: LogSourceStore
  workspaces: WorkspaceService
  node: NodeClient | null
}

/** A file source's last lines come back whole up to this much output. */
const MAX_FILE_OUTPUT = 1024 * 1024

/**
 * An app's logs: the chosen source, else its primary source, else its unit's journal. A unit
 * source reads (and follows) the journal through the guest agent; a file source is read with
 * `tail` as root and cannot be followed (the stream answers 400 for it).
 */
export class AppLogs {
  constructor(private readonly d: AppLogsDeps) {}

  private async source(
    app: AppRow,
    sourceId: string | undefined,
    unitOf: () => Promise<string | null>,
  ): Promise<LogSource> {
    const unitSource = `${app.id}-unit`
    if (sourceId && sourceId !== unitSource)
      return viewLogSource(await this.d.sources.get(app.id, sourceId))
    const primary = sourceId ? null : await this.d.sources.primary(app.id)
    if (primary) return viewLogSource(primary)
    const unit = await unitOf()
    if (unit) {
      // The unit itself, shown as a source (not stored: it follows the app's unit).
      return {
        id: unitSource,
        app_id: app.id,
        source_type: 'systemd_unit',
        source_ref: unit,
        display_name: unit,
        is_primary: true,
        created_at: app.created_at,
        updated_at: app.updated_at,
      }
    }
    const first = (await this.d.sources.list(app.id))[0]
    if (first) return viewLogSource(first)
    throw new ApiError(
      'INVALID_STATE',
      `app ${app.name} has no log source and no systemd unit serves port ${app.port}; ` +
        'add one with POST /apps/{id}/log-sources',
    )
  }

  async read(user: User, id: string, q: { lines: number; source_id?: string; cursor?: string }) {
    const app = await this.d.apps.get(user, id)
    const { ws, units } = await this.d.control.guest(user, app)
    const source = await this.source(app, q.source_id, () => this.d.control.resolveUnit(ws, app))
    if (source.source_type === 'systemd_unit') {
      const got = await units.logs(source.source_ref, q.lines + 1, q.cursor)
      // Without a cursor the journal's last lines (one more shows there are older ones); with
      // one, the first lines after it (one more shows there are newer ones).
      const page = q.cursor ? got.slice(0, q.lines) : got.slice(-q.lines)
      return {
        source,
        lines: page.map((l, i) => ({ line_number: i, message: l.message, timestamp: l.timestamp })),
        has_more: got.length > q.lines,
        cursor: page.at(-1)?.cursor ?? q.cursor ?? null,
      }
    }
    const lines = await tailFile(units, source.source_ref, q.lines + 1)
    const page = lines.slice(-q.lines)
    return {
      source,
      lines: page.map((message, i) => ({ line_number: i, message, timestamp: null })),
      has_more: lines.length > q.lines,
      cursor: null,
    }
  }

  async stream(
    user: User,
    id: string,
    sourceId: string | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ) {
    const app = await this.d.apps.get(user, id)
    const { ws } = await this.d.control.guest(user, app)
    const source = await this.source(app, sourceId, () => this.d.control.resolveUnit(ws, app))
    if (source.source_type !== 'systemd_unit') {
      throw new ApiError(
        'BAD_REQUEST',
        'file sources cannot be followed; read them with GET /apps/{id}/logs?source_id=…',
      )
    }
    await streamLogs({
      node: this.d.node!,
      ws: this.d.workspaces,
      user,
      id: ws.id,
      unit: source.source_ref,
      request,
      reply,
    })
  }
}

async function tailFile(units: GuestUnits, path: string, lines: number): Promise<string[]> {
  const r = await units.sh(`tail -n ${lines} -- ${shq(path)}`, {
    maxOutputBytes: MAX_FILE_OUTPUT,
    timeoutMs: 15_000,
  })
  if (r.exit_code !== 0) {
    throw new ApiError('BAD_REQUEST', `cannot read ${path}: ${r.stderr.trim() || 'tail failed'}`)
  }
  const out = r.stdout.endsWith('\n') ? r.stdout.slice(0, -1) : r.stdout
  return out === '' ? [] : out.split('\n')
}
