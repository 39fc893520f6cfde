import { sql } from 'kysely'
import type { Db } from '../db/database.ts'
import { newId } from '../lib/ids.ts'
import { toCredits } from './credits.ts'
import type { UsageLedger, UsageRecord } from './types.ts'

/**
 * The ledger of proxied AI calls (docs/ai.md, "Usage") and the views the API shows of it. Rows
 * are grouped by the minute in SQL (`substr` of the ISO time: the same on SQLite and Postgres)
 * and put into steps here, so a week of heavy use is at most 10,080 groups, never every row.
 */
export const ranges = ['1h', '6h', '24h', '7d'] as const
export type Range = (typeof ranges)[number]

/** Range length and step (seconds): 60 points for 1h, 72 for 6h, 96 for 24h, 168 for 7d. */
const rangeSpec: Record<Range, { seconds: number; step: number }> = {
  '1h': { seconds: 3600, step: 60 },
  '6h': { seconds: 6 * 3600, step: 300 },
  '24h': { seconds: 24 * 3600, step: 900 },
  '7d': { seconds: 7 * 24 * 3600, step: 3600 },
}

export interface Totals {
  requests: number
  input_tokens: number
  output_tokens: number
  credits_micro: number
}

export interface Point {
  t: number
  v: number
}

export interface Series {
  credits: Point[]
  requests: Point[]
  input_tokens: Point[]
  output_tokens: Point[]
}

/** Whose calls: a user's (all their workspaces) or one workspace's. */
export type Scope = { userId: string } | { workspaceId: string }

const DAY_MS = 24 * 3600 * 1000

export class UsageStore implements UsageLedger {
  private readonly now: () => Date

  constructor(
    private readonly db: Db,
    opts: { now?: () => Date } = {},
  ) {
    this.now = opts.now ?? (() => new Date())
  }

  async record(row: UsageRecord): Promise<void> {
    await this.db
      .insertInto('ai_usage')
      .values({
        id: newId('aiu', 16),
        user_id: row.userId,
        workspace_id: row.workspaceId,
        workspace_name: row.workspaceName,
        mode: row.mode,
        provider: row.provider,
        model: row.model,
        endpoint: row.endpoint,
        input_tokens: row.inputTokens,
        output_tokens: row.outputTokens,
        credits_micro: row.creditsMicro,
        status: row.status,
        http_status: row.httpStatus,
        duration_ms: row.durationMs,
        created_at: this.now().toISOString(),
      })
      .execute()
  }

  private scoped(scope: Scope, since: Date) {
    const q = this.db.selectFrom('ai_usage').where('ai_usage.created_at', '>=', since.toISOString())
    return 'userId' in scope
      ? q.where('ai_usage.user_id', '=', scope.userId)
      : q.where('ai_usage.workspace_id', '=', scope.workspaceId)
  }

  private static sums = [
    sql<number>`count(*)`.as('requests'),
    sql<number>`coalesce(sum(input_tokens), 0)`.as('input_tokens'),
    sql<number>`coalesce(sum(output_tokens), 0)`.as('output_tokens'),
    sql<number>`coalesce(sum(credits_micro), 0)`.as('credits_micro'),
  ]

  /** Totals since a moment (defaults: the last 30 days). */
  async totals(scope: Scope, since = new Date(this.now().getTime() - 30 * DAY_MS)) {
    const row = await this.scoped(scope, since).select(UsageStore.sums).executeTakeFirstOrThrow()
    return numbers(row)
  }

  /** Totals over one of the metric ranges. */
  summary(scope: Scope, range: Range) {
    return this.totals(scope, new Date(this.now().getTime() - rangeSpec[range].seconds * 1000))
  }

  /**
   * One point per step over the range (zeros included, oldest first); `t` is the step's start in
   * Unix seconds, credits in credits.
   */
  async metrics(scope: Scope, range: Range): Promise<{ step_seconds: number; series: Series }> {
    const { seconds, step } = rangeSpec[range]
    const nowS = Math.floor(this.now().getTime() / 1000)
    const last = nowS - (nowS % step)
    const first = last - (seconds / step - 1) * step
    const minute = sql<string>`substr(created_at, 1, 16)`
    const rows = await this.scoped(scope, new Date(first * 1000))
      .select([minute.as('minute'), ...UsageStore.sums])
      .groupBy(minute)
      .execute()
    const buckets = Array.from({ length: seconds / step }, (_, i) => ({
      t: first + i * step,
      requests: 0,
      input_tokens: 0,
      output_tokens: 0,
      credits_micro: 0,
    }))
    for (const r of rows) {
      const at = Date.parse(`${r.minute}:00Z`) / 1000
      const b = buckets[Math.floor((at - first) / step)]
      if (!b) continue
      const n = numbers(r)
      b.requests += n.requests
      b.input_tokens += n.input_tokens
      b.output_tokens += n.output_tokens
      b.credits_micro += n.credits_micro
    }
    const points = (f: (b: (typeof buckets)[number]) => number) =>
      buckets.map((b) => ({ t: b.t, v: f(b) }))
    return {
      step_seconds: step,
      series: {
        credits: points((b) => toCredits(b.credits_micro)),
        requests: points((b) => b.requests),
        input_tokens: points((b) => b.input_tokens),
        output_tokens: points((b) => b.output_tokens),
      },
    }
  }

  /** A user's last `days` days (UTC, today included, zeros included, oldest first). */
  async daily(userId: string, days: number) {
    const today = Date.UTC(...utcYmd(this.now()))
    const since = new Date(today - (days - 1) * DAY_MS)
    const day = sql<string>`substr(created_at, 1, 10)`
    const rows = await this.scoped({ userId }, since)
      .select([day.as('day'), ...UsageStore.sums])
      .groupBy(day)
      .execute()
    const byDay = new Map(rows.map((r) => [r.day, numbers(r)]))
    return Array.from({ length: days }, (_, i) => {
      const d = new Date(since.getTime() + i * DAY_MS).toISOString().slice(0, 10)
      const n = byDay.get(d) ?? { requests: 0, input_tokens: 0, output_tokens: 0, credits_micro: 0 }
      return { day: d, ...n, credits: toCredits(n.credits_micro) }
    })
  }

  /**
   * A user's totals per workspace over the last `days` days, largest spend first. A workspace
   * deleted since keeps the name the ledger recorded; a renamed one shows its name now.
   */
  async byWorkspace(userId: string, days: number) {
    const today = Date.UTC(...utcYmd(this.now()))
    const rows = await this.scoped({ userId }, new Date(today - (days - 1) * DAY_MS))
      .leftJoin('workspaces', 'workspaces.id', 'ai_usage.workspace_id')
      .select([
        'ai_usage.workspace_id',
        sql<string>`coalesce(max(workspaces.name), max(ai_usage.workspace_name))`.as('name'),
        ...UsageStore.sums,
      ])
      .groupBy('ai_usage.workspace_id')
      .execute()
    return rows
      .map((r) => {
        const n = numbers(r)
        return {
          workspace_id: r.workspace_id,
          workspace_name: r.name,
          ...n,
          credits: toCredits(n.credits_micro),
        }
      })
      .sort((a, b) => b.credits_micro - a.credits_micro || b.requests - a.requests)
  }
}

const utcYmd = (d: Date): [number, number, number] => [
  d.getUTCFullYear(),
  d.getUTCMonth(),
  d.getUTCDate(),
]

/** Aggregates come back as numbers on SQLite and as strings (bigint) on Postgres. */
function numbers(r: Totals): Totals {
  return {
    requests: Number(r.requests),
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    credits_micro: Number(r.credits_micro),
  }
}
