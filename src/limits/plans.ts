import type { Plan } from '../auth/store.ts'

export interface PlanLimits {
  max_vms: number
  max_ram_per_vm_mb: number
  max_vcpu_per_vm: number
  max_disk_per_vm_mb: number
  /** RAM of all running workspaces together. */
  max_ram_total_mb: number
  /** Disk of all workspaces together: disks exist whether or not the VM runs. */
  max_disk_total_mb: number
  max_running_vcpus: number
  max_apps: number
  max_snapshots_per_workspace: number
  max_ssh_keys: number
  /** AI credits a month (1 credit ≈ $0.01 of upstream cost). */
  ai_credits_monthly: number
}

/** The plan tiers (seeds' limits table): each limit, when exceeded, answers 402 naming it. */
export const plans: Record<Plan, PlanLimits> = {
  free: {
    max_vms: 2,
    max_ram_per_vm_mb: 1024,
    max_vcpu_per_vm: 1,
    max_disk_per_vm_mb: 4096,
    max_ram_total_mb: 2048,
    max_disk_total_mb: 8192,
    max_running_vcpus: 2,
    max_apps: 3,
    max_snapshots_per_workspace: 3,
    max_ssh_keys: 5,
    ai_credits_monthly: 250,
  },
  pro: {
    max_vms: 10,
    max_ram_per_vm_mb: 4096,
    max_vcpu_per_vm: 4,
    max_disk_per_vm_mb: 10240,
    max_ram_total_mb: 16384,
    max_disk_total_mb: 102400,
    max_running_vcpus: 16,
    max_apps: 20,
    max_snapshots_per_workspace: 10,
    max_ssh_keys: 20,
    ai_credits_monthly: 2000,
  },
}
