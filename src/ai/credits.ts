import { sql } from 'kysely'
import type { Db } from '../db/database.ts'
import type { AiAccountsTable } from '../db/schema.ts'
import { ApiError, notFound } from '../http/errors.ts'
import { plans } from '../limits/plans.ts'
import { BUILTIN_DEFAULTS } from './settings.ts'
import { MICRO_PER_CREDIT, type CreditLedger, type Reservation } from './types.ts'

/**
 * The credit balance of each user (docs/ai.md, "Credits"), in integer micro-credits:
 *
 *   total     = allowance + granted
 *   remaining = total − used − reserved
 *
 * Every change is one SQL statement fenced by its WHERE clause, so it is correct with any number
 * of processes or connections on the database and needs no lock in this one: `reserve` adds to
 * `reserved` only where the remaining balance covers it; a renewal applies only to the period it
 * read (`period_start = ?`), so two concurrent renewals cannot both apply.
 *
 * Spending draws on the allowance first, then on grants. At a renewal (a month after
 * `period_start`) the allowance is the plan's again, `used` restarts at 0, and what is left of the
 * grants carries over: granted − max(0, used − allowance). Calls in flight across a renewal keep
 * their holds and are charged to the new period.
 */
export type Account = AiAccountsTable

export interface Balance {
  mode: Account['mode']
  allowance_micro: number
  granted_micro: number
  used_micro: number
  reserved_micro: number
  total_micro: number
  remaining_micro: number
  period_start: string
  renews_at: string
}

export const toCredits = (micro: number) => micro / MICRO_PER_CREDIT
const fmt = (micro: number) => `${toCredits(micro).toFixed(2)} credits`

/** `from` plus `months` calendar months (UTC); a day the target month lacks becomes its last. */
export function addMonths(from: Date, months: number): Date {
  const d = new Date(from)
  const day = d.getUTCDate()
  d.setUTCDate(1)
  d.setUTCMonth(d.getUTCMonth() + months)
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate()
  d.setUTCDate(Math.min(day, last))
  return d
}

/** The start of the period `now` falls in, for periods anchored at `start` (whole months). */
export function periodStartAt(start: Date, now: Date): Date {
  let months = 0
  while (addMonths(start, months + 1) <= now) months++
  return addMonths(start, months)
}

export function balanceOf(a: Account): Balance {
  const total = a.allowance_micro + a.granted_micro
  return {
    mode: a.mode,
    allowance_micro: a.allowance_micro,
    granted_micro: a.granted_micro,
    used_micro: a.used_micro,
    reserved_micro: a.reserved_micro,
    total_micro: total,
    // Negative only when holds from the last period outlast a smaller new allowance.
    remaining_micro: Math.max(0, total - a.used_micro - a.reserved_micro),
    period_start: a.period_start,
    renews_at: addMonths(new Date(a.period_start), 1).toISOString(),
  }
}

const remainingSql = sql<number>`allowance_micro + granted_micro - used_micro - reserved_micro`

export class CreditStore implements CreditLedger {
  private readonly now: () => Date

  constructor(
    private readonly db: Db,
    opts: { now?: () => Date } = {},
  ) {
    this.now = opts.now ?? (() => new Date())
  }

  private select(userId: string) {
    return this.db
      .selectFrom('ai_accounts')
      .selectAll()
      .where('user_id', '=', userId)
      .executeTakeFirst()
  }

  /** The user's account in its current period: made on first use, renewed when a month passed. */
  async account(userId: string): Promise<Account> {
    let row = (await this.select(userId)) ?? (await this.create(userId))
    const now = this.now()
    if (addMonths(new Date(row.period_start), 1) <= now) {
      await this.renew(row, now)
      row = (await this.select(userId)) as Account
    }
    return row
  }

  private async create(userId: string): Promise<Account> {
    const user = await this.db
      .selectFrom('users')
      .select('plan')
      .where('id', '=', userId)
      .executeTakeFirst()
    if (!user) throw notFound('resource', userId)
    const now = this.now().toISOString()
    // Two first uses at once: the primary key keeps one row, and both read it back.
    await this.db
      .insertInto('ai_accounts')
      .values({
        user_id: userId,
        mode: BUILTIN_DEFAULTS.mode,
        default_provider: BUILTIN_DEFAULTS.provider,
        default_model: BUILTIN_DEFAULTS.model,
        period_start: now,
        allowance_micro: plans[user.plan].ai_credits_monthly * MICRO_PER_CREDIT,
        granted_micro: 0,
        used_micro: 0,
        reserved_micro: 0,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('user_id').doNothing())
      .execute()
    return (await this.select(userId)) as Account
  }

  /**
   * Starts the period `now` falls in, from the row as read. Fenced on the period read: a second
   * renewal from the same (now stale) row changes nothing. Returns whether this call renewed.
   */
  async renew(read: Account, now: Date): Promise<boolean> {
    const start = periodStartAt(new Date(read.period_start), now)
    if (start.toISOString() === read.period_start) return false
    const user = await this.db
      .selectFrom('users')
      .select('plan')
      .where('id', '=', read.user_id)
      .executeTakeFirst()
    if (!user) return false
    const res = await this.db
      .updateTable('ai_accounts')
      .set({
        period_start: start.toISOString(),
        allowance_micro: plans[user.plan].ai_credits_monthly * MICRO_PER_CREDIT,
        // What spending took beyond the allowance came out of the grants; the rest carries over.
        granted_micro: sql`case
          when used_micro <= allowance_micro then granted_micro
          when granted_micro - (used_micro - allowance_micro) > 0
            then granted_micro - (used_micro - allowance_micro)
          else 0 end`,
        used_micro: 0,
        updated_at: now.toISOString(),
      })
      .where('user_id', '=', read.user_id)
      .where('period_start', '=', read.period_start)
      .executeTakeFirst()
    return res.numUpdatedRows > 0n
  }

  async balance(userId: string): Promise<Balance> {
    return balanceOf(await this.account(userId))
  }

  /** What a call may spend right now (for sizing it, e.g. clamping max_tokens). */
  async available(userId: string): Promise<number> {
    return (await this.balance(userId)).remaining_micro
  }

  async reserve(userId: string, micro: number): Promise<Reservation> {
    if (!Number.isSafeInteger(micro) || micro < 0) throw new Error(`bad reservation ${micro}`)
    const account = await this.account(userId)
    // A call that costs nothing (a free model) needs no balance, even an exhausted one.
    if (micro === 0) return { userId, micro: 0 }
    const res = await this.db
      .updateTable('ai_accounts')
      .set({ reserved_micro: sql`reserved_micro + ${micro}` })
      .where('user_id', '=', userId)
      .where(remainingSql, '>=', micro)
      .executeTakeFirst()
    if (res.numUpdatedRows > 0n) return { userId, micro }
    throw exhausted(balanceOf((await this.select(userId)) ?? account), micro)
  }

  async settle(reservation: Reservation, chargedMicro: number): Promise<void> {
    if (reservation.micro === 0) return
    const charged = Math.min(Math.max(0, Math.ceil(chargedMicro) || 0), reservation.micro)
    await this.db
      .updateTable('ai_accounts')
      .set({
        reserved_micro: sql`reserved_micro - ${reservation.micro}`,
        used_micro: sql`used_micro + ${charged}`,
        updated_at: this.now().toISOString(),
      })
      .where('user_id', '=', reservation.userId)
      .execute()
  }

  /** An administrator's grant: kept across periods until spent. */
  async grant(userId: string, micro: number): Promise<Balance> {
    if (!Number.isSafeInteger(micro) || micro <= 0) throw new Error(`bad grant ${micro}`)
    await this.account(userId)
    await this.db
      .updateTable('ai_accounts')
      .set({
        granted_micro: sql`granted_micro + ${micro}`,
        updated_at: this.now().toISOString(),
      })
      .where('user_id', '=', userId)
      .execute()
    return this.balance(userId)
  }
}

export function exhausted(b: Balance, neededMicro: number): ApiError {
  return new ApiError(
    'CREDITS_EXHAUSTED',
    `AI credits exhausted: ${fmt(b.remaining_micro)} left of ${fmt(b.total_micro)} this period, ` +
      `this call needs up to ${fmt(neededMicro)}; the monthly allowance renews at ${b.renews_at} ` +
      `(or use a cheaper model, rigbox/free, or bring your own key)`,
    {
      remaining_micro: b.remaining_micro,
      needed_micro: neededMicro,
      total_micro: b.total_micro,
      renews_at: b.renews_at,
    },
  )
}
