import type { Selectable } from 'kysely'
import { z } from 'zod'
import type { Db } from '../db/database.ts'
import type { AppLogSourcesTable } from '../db/schema.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { newId, nowIso } from '../lib/ids.ts'

/**
 * Where an app's logs are: a systemd unit's journal or a file in the VM. One source per app can
 * be primary: it is what GET /apps/{id}/logs reads by default.
 */

export type LogSourceRow = Selectable<AppLogSourcesTable>

const MAX_SOURCES_PER_APP = 20
/** journalctl's own unit syntax (as the guest agent checks it). */
const UNIT = /^[A-Za-z0-9@._:-]{1,256}$/

export const logSourceSchema = z
  .object({
    id: z.string(),
    app_id: z.string(),
    source_type: z.enum(['systemd_unit', 'docker_container', 'file_path']),
    source_ref: z.string(),
    display_name: z.string().nullable(),
    is_primary: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: 'AppLogSource' })
export type LogSource = z.infer<typeof logSourceSchema>

export const createLogSourceRequest = z
  .object({
    source_type: z.string().max(40),
    source_ref: z.string().max(4096),
    display_name: z.string().max(200).nullish(),
    is_primary: z.boolean().nullish(),
  })
  .meta({ id: 'CreateAppLogSourceRequest' })

export const updateLogSourceRequest = z
  .object({
    source_type: z.string().max(40).nullish(),
    source_ref: z.string().max(4096).nullish(),
    display_name: z.string().max(200).nullish(),
    is_primary: z.boolean().nullish(),
  })
  .meta({ id: 'UpdateAppLogSourceRequest' })

export const viewLogSource = (r: LogSourceRow): LogSource => ({
  id: r.id,
  app_id: r.app_id,
  source_type: r.source_type,
  source_ref: r.source_ref,
  display_name: r.display_name,
  is_primary: r.is_primary === 1,
  created_at: r.created_at,
  updated_at: r.updated_at,
})

/** A 400 for anything this server cannot read; the ref normalized otherwise. */
function checkSource(
  type: string,
  ref: string,
): { type: 'systemd_unit' | 'file_path'; ref: string } {
  if (type === 'docker_container')
    throw new ApiError('BAD_REQUEST', 'docker_container log sources are not supported here')
  if (type === 'systemd_unit') {
    if (!UNIT.test(ref)) throw new ApiError('BAD_REQUEST', `"${ref}" is not a systemd unit name`)
    return { type, ref }
  }
  if (type === 'file_path') {
    if (!ref.startsWith('/') || /[\0\r\n]/.test(ref) || ref.split('/').includes('..'))
      throw new ApiError('BAD_REQUEST', 'a file_path source is an absolute path without ".."')
    return { type, ref }
  }
  throw new ApiError(
    'BAD_REQUEST',
    `source_type must be systemd_unit or file_path (got ${JSON.stringify(type)})`,
  )
}

export class LogSourceStore {
  constructor(private readonly db: Db) {}

  list(appId: string) {
    return this.db
      .selectFrom('app_log_sources')
      .selectAll()
      .where('app_id', '=', appId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
  }

  async get(appId: string, id: string): Promise<LogSourceRow> {
    const row = await this.db
      .selectFrom('app_log_sources')
      .selectAll()
      .where('app_id', '=', appId)
      .where('id', '=', id)
      .executeTakeFirst()
    if (!row) throw notFound('log source', id)
    return row
  }

  primary(appId: string) {
    return this.db
      .selectFrom('app_log_sources')
      .selectAll()
      .where('app_id', '=', appId)
      .where('is_primary', '=', 1)
      .executeTakeFirst()
  }

  async create(appId: string, input: z.infer<typeof createLogSourceRequest>) {
    const { type, ref } = checkSource(input.source_type, input.source_ref)
    const now = nowIso()
    const row: LogSourceRow = {
      id: newId('logsrc'),
      app_id: appId,
      source_type: type,
      source_ref: ref,
      display_name: input.display_name ?? null,
      is_primary: input.is_primary ? 1 : 0,
      created_at: now,
      updated_at: now,
    }
    await this.db.transaction().execute(async (trx) => {
      const { n } = await trx
        .selectFrom('app_log_sources')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('app_id', '=', appId)
        .executeTakeFirstOrThrow()
      if (Number(n) >= MAX_SOURCES_PER_APP)
        throw new ApiError('CONFLICT', `an app has at most ${MAX_SOURCES_PER_APP} log sources`)
      // One primary per app: the new one takes the role from any other.
      if (row.is_primary)
        await trx
          .updateTable('app_log_sources')
          .set({ is_primary: 0, updated_at: now })
          .where('app_id', '=', appId)
          .execute()
      await trx.insertInto('app_log_sources').values(row).execute()
    })
    return row
  }

  async update(appId: string, id: string, patch: z.infer<typeof updateLogSourceRequest>) {
    const row = await this.get(appId, id)
    const { type, ref } = checkSource(
      patch.source_type ?? row.source_type,
      patch.source_ref ?? row.source_ref,
    )
    const now = nowIso()
    return this.db.transaction().execute(async (trx) => {
      if (patch.is_primary)
        await trx
          .updateTable('app_log_sources')
          .set({ is_primary: 0, updated_at: now })
          .where('app_id', '=', appId)
          .where('id', '!=', id)
          .execute()
      return trx
        .updateTable('app_log_sources')
        .set({
          source_type: type,
          source_ref: ref,
          ...(patch.display_name !== undefined && { display_name: patch.display_name }),
          ...(patch.is_primary != null && { is_primary: patch.is_primary ? 1 : 0 }),
          updated_at: now,
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()
    })
  }

  async remove(appId: string, id: string) {
    await this.get(appId, id)
    await this.db.deleteFrom('app_log_sources').where('id', '=', id).execute()
  }
}
