import type { Generated } from 'kysely'

export interface UsersTable {
  id: string
  email: string
  name: string | null
  plan: 'free' | 'pro'
  is_admin: Generated<number>
  created_at: string
}

export interface ApiKeysTable {
  id: string
  user_id: string
  name: string
  /** The first characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string
  key_hash: string
  created_at: string
  last_used_at: string | null
}

export type DesiredState = 'provisioned' | 'running' | 'stopped' | 'deleted'

export interface WorkspacesTable {
  id: string
  user_id: string
  node_id: string
  name: string
  image: string
  template_id: string | null
  ram_mb: number
  vcpu_count: number
  disk_size_mb: number
  status: string
  desired_state: DesiredState
  /** Bumped by every transition; updates are fenced on it so stale writers lose. */
  version: number
  env_vars: string
  ip_address: string | null
  failure_code: string | null
  failure_reason: string | null
  creation_attempts: number
  creation_started_at: string | null
  created_at: string
  updated_at: string
}

export interface Database {
  users: UsersTable
  api_keys: ApiKeysTable
  workspaces: WorkspacesTable
}
