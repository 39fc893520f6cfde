import type { Command } from 'commander'
import { unwrap } from '../../../client/index.ts'
import { action } from '../../action.ts'
import { collect, parseAssignments, waitForJob } from '../../apps.ts'
import { apiClient, print } from '../../context.ts'
import { resolveWorkspace } from '../../workspaces.ts'

/** The URL, then the generated credentials: the server shows those only in its first answer. */
const summary = (url: string, credentials: Record<string, string> | null) =>
  [`url: ${url}`, ...Object.entries(credentials ?? {}).map(([k, v]) => `${k}: ${v}`)].join('\n')

export default (parent: Command) =>
  parent
    .command('install <workspace> <catalog_id>')
    .description('install a catalog app into a running workspace; prints its URL and credentials')
    .option('--param <k=v>', 'a parameter of the app (repeatable; see `rig catalog`)', collect)
    .option('--no-wait', 'return as soon as the install is queued')
    .action(
      action(
        async (cmd, ref: string, catalogId: string, opts: { param?: string[]; wait: boolean }) => {
          const params = opts.param ? parseAssignments(opts.param, '--param') : undefined
          const api = apiClient()
          const { id, name } = await resolveWorkspace(api, ref)
          const res = unwrap(
            await api.POST('/api/v1/workspaces/{id}/install-app', {
              params: { path: { id } },
              body: { catalog_id: catalogId, params },
            }),
          )
          const jobId = res.job_id
          if (!opts.wait || !jobId)
            return print(cmd, res, () => summary(res.app.url, res.credentials))
          try {
            await waitForJob(`installing ${catalogId} in ${name}`, async () => {
              const job = unwrap(
                await api.GET('/api/v1/workspaces/{id}/jobs/{job_id}', {
                  params: { path: { id, job_id: jobId } },
                }),
              )
              const output = [job.stdout, job.stderr].filter(Boolean).join('\n')
              return { status: job.status, exit_code: job.exit_code, output }
            })
          } catch (err) {
            // A retry of the install may need them, and nothing shows them again.
            if (res.credentials) process.stderr.write(`${summary(res.app.url, res.credentials)}\n`)
            throw err
          }
          const { app } = unwrap(
            await api.GET('/api/v1/apps/{id}', { params: { path: { id: res.app.id } } }),
          )
          print(cmd, { ...res, app }, () => summary(app.url, res.credentials))
        },
      ),
    )
