import type { User } from '../auth/store.ts'
import { ApiError } from '../http/errors.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import { plans, type PlanLimits } from './plans.ts'

/** What holds RAM and CPU: a paused workspace gave both back, and resuming asks again. */
const ACTIVE = new Set(['starting', 'running'])

export interface Usage {
  workspace_count: number
  running_vcpus: number
  total_disk_mb: number
  total_ram_mb: number
}

export const limitsFor = (user: Pick<User, 'plan'>): PlanLimits => plans[user.plan]

/** Usage over a user's workspaces; `total_ram_mb` counts the running ones (RAM is held then). */
export function usageOf(rows: WorkspaceRow[]): Usage {
  const live = rows.filter((w) => w.status !== 'deleting')
  const running = live.filter((w) => ACTIVE.has(w.status))
  const sum = (xs: WorkspaceRow[], f: (w: WorkspaceRow) => number) =>
    xs.reduce((n, w) => n + f(w), 0)
  return {
    workspace_count: live.length,
    running_vcpus: sum(running, (w) => w.vcpu_count),
    total_disk_mb: sum(live, (w) => w.disk_size_mb),
    total_ram_mb: sum(running, (w) => w.ram_mb),
  }
}

export function exceed(limit: keyof PlanLimits, allowed: number, requested: number, what: string) {
  return new ApiError(
    'LIMIT_EXCEEDED',
    `plan limit ${limit} exceeded: ${what} ${requested}, your plan allows ${allowed}`,
    { limit, allowed, requested },
  )
}

export interface Size {
  ram_mb: number
  vcpu_count: number
  disk_size_mb: number
}

/** Per-workspace size limits. */
export function checkSize(limits: PlanLimits, size: Size) {
  if (size.ram_mb > limits.max_ram_per_vm_mb)
    throw exceed('max_ram_per_vm_mb', limits.max_ram_per_vm_mb, size.ram_mb, 'ram_mb')
  if (size.vcpu_count > limits.max_vcpu_per_vm)
    throw exceed('max_vcpu_per_vm', limits.max_vcpu_per_vm, size.vcpu_count, 'vcpu_count')
  if (size.disk_size_mb > limits.max_disk_per_vm_mb)
    throw exceed('max_disk_per_vm_mb', limits.max_disk_per_vm_mb, size.disk_size_mb, 'disk_size_mb')
}

/** Limits on a new workspace, or a resized one (`replacing` is its current row). */
export function checkAllocation(
  limits: PlanLimits,
  rows: WorkspaceRow[],
  size: Size,
  replacing?: WorkspaceRow,
) {
  checkSize(limits, size)
  const others = rows.filter((w) => w.id !== replacing?.id)
  const usage = usageOf(others)
  if (!replacing && usage.workspace_count + 1 > limits.max_vms)
    throw exceed('max_vms', limits.max_vms, usage.workspace_count + 1, 'workspaces')
  const disk = usage.total_disk_mb + size.disk_size_mb
  if (disk > limits.max_disk_total_mb)
    throw exceed('max_disk_total_mb', limits.max_disk_total_mb, disk, 'total disk_size_mb')
}

/** Limits on running one more workspace. */
export function checkStart(limits: PlanLimits, rows: WorkspaceRow[], ws: WorkspaceRow) {
  const usage = usageOf(rows.filter((w) => w.id !== ws.id))
  const vcpus = usage.running_vcpus + ws.vcpu_count
  if (vcpus > limits.max_running_vcpus)
    throw exceed('max_running_vcpus', limits.max_running_vcpus, vcpus, 'running vcpus')
  const ram = usage.total_ram_mb + ws.ram_mb
  if (ram > limits.max_ram_total_mb)
    throw exceed('max_ram_total_mb', limits.max_ram_total_mb, ram, 'running ram_mb')
}
