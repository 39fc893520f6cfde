import { z } from 'zod'
import { logLineSchema } from '../workspaces/guest-routes.ts'
import { defineRoute, messageSchema } from '../http/route.ts'
import {
  createLogSourceRequest,
  logSourceSchema,
  updateLogSourceRequest,
  viewLogSource,
  type LogSourceStore,
} from './log-sources.ts'
import type { AppLogs } from './logs.ts'
import { metricRanges, type MetricsQueries } from './metrics.ts'
import type { AppParams } from './params-service.ts'
import { paramSpecSchema } from './params.ts'
import { appIdParams, getAppResponse } from './schemas.ts'
import type { AppService } from './service.ts'

export interface AppServiceRoutesDeps {
  apps: AppService
  params: AppParams
  sources: LogSourceStore
  logs: AppLogs
  metrics: MetricsQueries
}

const tag = 'apps'
const common = { tag, auth: 'user' as const, rateClass: 'apps' as const }

const stringMap = z.record(z.string(), z.string())
const appParamsResponse = z
  .object({ specs: z.array(paramSpecSchema), values: stringMap })
  .meta({ id: 'AppParamsResponse' })
const updateParamsRequest = z
  .object({ values: z.record(z.string().max(64), z.string().max(64 * 1024)) })
  .meta({ id: 'UpdateAppParamsRequest' })

const sourceParams = z.object({ id: z.string().min(1).max(64), source_id: z.string().max(64) })
const listSourcesResponse = z
  .object({ sources: z.array(logSourceSchema) })
  .meta({ id: 'ListAppLogSourcesResponse' })
const getSourceResponse = z
  .object({ source: logSourceSchema })
  .meta({ id: 'GetAppLogSourceResponse' })

const logsQuery = z.object({
  lines: z.coerce.number().int().min(1).max(5000).default(200),
  source_id: z.string().max(64).optional(),
  cursor: z.string().max(512).optional(),
})
const logsResponse = z
  .object({
    source: logSourceSchema,
    lines: z.array(logLineSchema),
    has_more: z.boolean(),
    cursor: z.string().nullable(),
  })
  .meta({ id: 'GetAppLogsResponse' })

const rangeSchema = z.enum(metricRanges).meta({ id: 'AppMetricsRange' })
const rangeQuery = z.object({ range: rangeSchema.default('1h') })
const points = z.array(z.object({ t: z.number().int(), v: z.number() }).meta({ id: 'MetricPoint' }))
const metricsResponse = z
  .object({
    range: rangeSchema,
    step_seconds: z.number().int(),
    hosts: z.array(z.string()),
    series: z
      .object({
        request_rate: points.describe('requests per second'),
        error_rate_5xx: points.describe('share of requests answered 5xx (0..1)'),
        latency_p50_ms: points,
        latency_p95_ms: points,
        latency_p99_ms: points,
        bandwidth_out_bps: points.describe('response body bytes per second'),
      })
      .meta({ id: 'AppMetricsSeries' }),
    status_codes: z.array(
      z
        .object({ class: z.string(), count: z.number(), ratio: z.number() })
        .meta({ id: 'AppStatusCodeMetric' }),
    ),
  })
  .meta({ id: 'AppMetricsResponse' })
const summaryResponse = z
  .object({
    range: rangeSchema,
    hosts: z.array(z.string()),
    total_requests: z.number(),
    total_errors_5xx: z.number(),
    error_rate_5xx: z.number(),
    request_rate_avg: z.number(),
    latency_p50_ms: z.number(),
    latency_p95_ms: z.number(),
    latency_p99_ms: z.number(),
    bandwidth_out_bytes: z.number(),
  })
  .meta({ id: 'AppMetricsSummaryResponse' })

/** Apps as services: params, log sources, logs (and their stream), router-counted metrics. */
export function appServiceRoutes(d: AppServiceRoutesDeps) {
  const owned = (user: Parameters<AppService['get']>[0], id: string) => d.apps.get(user, id)
  return [
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/params',
      summary: "The app's param specs and current values (sensitive values are never shown)",
      params: appIdParams,
      response: appParamsResponse,
      handler: ({ user, params }) => d.params.get(user, params.id),
    }),
    defineRoute({
      ...common,
      method: 'PATCH',
      path: '/apps/:id/params',
      summary: 'Set param values ("" resets one); a running app gets them as env, restarted',
      params: appIdParams,
      body: updateParamsRequest,
      response: getAppResponse,
      handler: async ({ user, params, body }) => ({
        app: d.apps.view(await d.params.update(user, params.id, body.values)),
      }),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/log-sources',
      summary: "The app's log sources (systemd units, files)",
      params: appIdParams,
      response: listSourcesResponse,
      handler: async ({ user, params }) => {
        const app = await owned(user, params.id)
        return { sources: (await d.sources.list(app.id)).map(viewLogSource) }
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      path: '/apps/:id/log-sources',
      summary: 'Add a log source: systemd_unit (a unit name) or file_path (an absolute path)',
      params: appIdParams,
      body: createLogSourceRequest,
      response: getSourceResponse,
      handler: async ({ user, params, body }) => {
        const app = await owned(user, params.id)
        return { source: viewLogSource(await d.sources.create(app.id, body)) }
      },
    }),
    defineRoute({
      ...common,
      method: 'PATCH',
      path: '/apps/:id/log-sources/:source_id',
      summary: 'Change a log source (is_primary: true makes it the default one)',
      params: sourceParams,
      body: updateLogSourceRequest,
      response: getSourceResponse,
      handler: async ({ user, params, body }) => {
        const app = await owned(user, params.id)
        return { source: viewLogSource(await d.sources.update(app.id, params.source_id, body)) }
      },
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      path: '/apps/:id/log-sources/:source_id',
      summary: 'Remove a log source',
      params: sourceParams,
      response: messageSchema,
      handler: async ({ user, params }) => {
        const app = await owned(user, params.id)
        await d.sources.remove(app.id, params.source_id)
        return { message: `log source ${params.source_id} deleted` }
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/logs',
      summary: "The app's logs: the chosen source, else the primary one, else its unit's journal",
      params: appIdParams,
      querystring: logsQuery,
      response: logsResponse,
      handler: ({ user, params, query }) => d.logs.read(user, params.id, query),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/logs/stream',
      summary: "Server-Sent Events of the app unit's journal (file sources cannot be followed)",
      params: appIdParams,
      querystring: z.object({ source_id: z.string().max(64).optional() }),
      raw: true,
      response: z.unknown(),
      handler: ({ user, params, query, request, reply }) =>
        d.logs.stream(user, params.id, query.source_id, request, reply),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/metrics',
      summary: 'Request rate, 5xx share, latency percentiles and bandwidth, as the router counted',
      params: appIdParams,
      querystring: rangeQuery,
      response: metricsResponse,
      handler: async ({ user, params, query }) =>
        d.metrics.series((await owned(user, params.id)).id, query.range),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      path: '/apps/:id/metrics/summary',
      summary: 'Totals and p50/p95/p99 latency over the range',
      params: appIdParams,
      querystring: rangeQuery,
      response: summaryResponse,
      handler: async ({ user, params, query }) =>
        d.metrics.summary((await owned(user, params.id)).id, query.range),
    }),
  ]
}
