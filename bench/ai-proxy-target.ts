/**
 * The processes bench/ai-proxy.ts measures, each in its own process so none shares an event loop
 * with the client: `upstream` (the local AI upstream of the tests) or `proxy <openai-url>
 * <anthropic-url>` (the real app, SQLite stores and bridge, one workspace's channel). Prints one
 * JSON line with its URL when ready.
 */
import { startAiBridge } from '../test/helpers/ai-bridge.ts'
import { startAiUpstream } from '../test/helpers/ai-upstream.ts'

const [mode, openaiUrl, anthropicUrl] = process.argv.slice(2)
if (mode === 'upstream') {
  const up = await startAiUpstream()
  console.log(JSON.stringify({ url: up.url }))
} else if (mode === 'proxy' && openaiUrl && anthropicUrl) {
  const env = await startAiBridge({
    env: { RIGBOX_AI_UPSTREAM_URL: openaiUrl, RIGBOX_AI_ANTHROPIC_URL: anthropicUrl },
  })
  const ws = await env.workspace('bench')
  console.log(JSON.stringify({ url: ws.url }))
} else {
  console.error('usage: ai-proxy-target.ts upstream | proxy <openai-url> <anthropic-url>')
  process.exit(2)
}
