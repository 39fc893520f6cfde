import type { Logger } from 'pino'
import type { SecretBox } from '../ai/secrets.ts'
import type { AppService } from '../apps/service.ts'
import type { AppRow, AppStore } from '../apps/store.ts'
import type { User } from '../auth/store.ts'
import { ApiError } from '../http/errors.ts'
import type { NodeClient } from '../node/types.ts'
import type { WorkspaceService } from '../workspaces/service.ts'
import type { WorkspaceRow } from '../workspaces/store.ts'
import type { JobRunner } from './jobs.ts'

export interface ToolDeps {
  jobs: JobRunner
  apps: AppService
  appStore: AppStore
  workspaces: WorkspaceService
  node: NodeClient | null
  secrets: SecretBox
  findUser: (id: string) => Promise<User | undefined>
  log: Logger
}

export const HOME = '/home/developer'

/** What the tool and catalog services share: the running-VM check and their apps. */
export abstract class WorkspaceInstaller {
  constructor(protected readonly d: ToolDeps) {}

  /** At start-up: jobs a previous process ran can never finish, so they are failed. */
  recover() {
    return this.d.jobs.recover()
  }

  /** Resolves when the install jobs of this process have ended (tests). */
  idle() {
    return this.d.jobs.idle()
  }

  protected get node(): NodeClient {
    if (!this.d.node)
      throw new ApiError('NODE_UNAVAILABLE', 'this server has no node to run workspaces')
    return this.d.node
  }

  protected running(ws: WorkspaceRow) {
    if (ws.status !== 'running' || !this.d.node) {
      throw new ApiError('INVALID_STATE', `workspace ${ws.id} is ${ws.status}; start it first`)
    }
    return ws
  }

  protected async findApp(ws: WorkspaceRow, match: (a: AppRow) => boolean) {
    return (await this.d.appStore.listByWorkspace(ws.id)).find(match)
  }

  protected async freeName(base: string) {
    for (let i = 0; ; i++) {
      const name = i ? `${base}-${i}` : base
      if (!(await this.d.appStore.bySubdomain(name))) return name
    }
  }
}
