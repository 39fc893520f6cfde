import type { RestartPolicy } from './guest.ts'

/**
 * What a workspace's start runs, whoever declared it: its template (scripts run before the
 * user's), the user's attached setup scripts and service specs (src/automation/store.ts).
 */
export type RunOn = 'first_boot' | 'every_start'

export interface PlannedScript {
  /** `tpl:<template>:<name>` for a template's, the setup script's id for a user's. */
  id: string
  name: string
  /** bash, run as developer (with sudo) in /home/developer. */
  content: string
  run_on: RunOn
  source: 'template' | 'user'
}

export interface PlannedService {
  /** DNS-label-like; the unit is `rigbox-svc-<name>.service`. */
  name: string
  /** One command line for systemd (not a shell). */
  exec_start: string
  env_vars: Record<string, string>
  environment_file: string | null
  restart_policy: RestartPolicy
  auto_enable: boolean
  /** bash run once (as developer) before the unit first starts; '' for none. */
  setup_script: string
  working_directory: string
  /** The port it serves, when it is an app's (health, the services list). */
  port: number | null
  source: 'template' | 'user'
}

/** A template's own automation (src/templates/): declared in code, run before the user's. */
export interface TemplateAutomation {
  setup_scripts: { name: string; content: string; run_on: RunOn }[]
  services: Omit<PlannedService, 'source'>[]
}

/** One script run of the last start, as `setup_status.runs` shows it. */
export interface ScriptRun {
  script_id: string
  name: string
  source: 'template' | 'user'
  run_on: RunOn
  /** skipped: a first_boot script that already ran on this disk. */
  status: 'succeeded' | 'failed' | 'skipped'
  exit_code: number | null
  /** The last lines of its output (the whole output is in the workspace logs). */
  output_tail: string
  started_at: string
  finished_at: string
}

/** The workspace's `setup_status`: what its last boot ran, and whether that is done. */
export interface SetupStatus {
  state: 'running' | 'succeeded' | 'failed'
  started_at: string
  finished_at: string | null
  runs: ScriptRun[]
  /** Services started after the scripts: name → systemd's ActiveState right after. */
  services: { name: string; unit: string; state: string; error: string | null }[]
}
