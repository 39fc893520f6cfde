import type { SecretBox } from '../ai/secrets.ts'
import type { Db } from '../db/database.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import { AppControl } from './control.ts'
import { LogSourceStore } from './log-sources.ts'
import { AppLogs } from './logs.ts'
import { MetricsQueries, MetricsRecorder } from './metrics.ts'
import { AppParams } from './params-service.ts'
import type { AppService } from './service.ts'
import { AppStore } from './store.ts'

export interface AppServices {
  control: AppControl
  params: AppParams
  sources: LogSourceStore
  logs: AppLogs
  /** The router's `onRequestDone` goes to `recorder.record`; close() flushes it. */
  recorder: MetricsRecorder
  metrics: MetricsQueries
  /** The SecretBox sealing sensitive param values (deliverParams needs it). */
  secrets: SecretBox
  close(): Promise<void>
}

/** Apps as services (control, params, logs, metrics), built once beside the AppService. */
export function wireAppServices(d: {
  db: Db
  apps: AppService
  workspaces: WorkspaceService
  node: NodeClient | null
  secrets: SecretBox
  onMetricsError?: (err: unknown) => void
}): AppServices {
  const store = new AppStore(d.db)
  const control = new AppControl({ apps: d.apps, store, workspaces: d.workspaces, node: d.node })
  const sources = new LogSourceStore(d.db)
  const recorder = new MetricsRecorder(d.db, { onError: d.onMetricsError })
  return {
    control,
    params: new AppParams({ apps: d.apps, store, control, secrets: d.secrets }),
    sources,
    logs: new AppLogs({ apps: d.apps, control, sources, workspaces: d.workspaces, node: d.node }),
    recorder,
    metrics: new MetricsQueries(d.db),
    secrets: d.secrets,
    close: () => recorder.close(),
  }
}
