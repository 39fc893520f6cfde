import type { TemplateAutomation } from '../automation/types.ts'
import { writeFilesScript } from './web-fullstack.ts'

/**
 * The `ai-agent-starter` template's sample agent: plain Node.js (no dependencies, so it runs with
 * no registry reachable) on port 8000. POST /chat sends the conversation to the managed AI proxy
 * on the VM bridge (OPENAI_BASE_URL, which the node sets in every managed workspace), runs the
 * tools the model asks for, and keeps a small memory in ~/agent/memory.json.
 */

export const AGENT_DIR = '/home/developer/agent'
export const AGENT_PORT = 8000

const AGENT_JS = `// Sample AI agent: plain Node.js 22 (global fetch), no dependencies. Edit freely; the unit
// rigbox-svc-agent restarts it (sudo systemctl restart rigbox-svc-agent).
// The model is reached through the workspace's managed AI proxy (OpenAI-compatible): no API key
// lives in this VM, the proxy adds the real one and charges your credits.
const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

const port = Number(process.env.PORT || 8000)
const baseUrl = (process.env.OPENAI_BASE_URL || 'http://172.16.0.1:9090/v1').replace(/\\/+$/, '')
const apiKey = process.env.OPENAI_API_KEY || 'managed-by-rigbox'
const model = process.env.AGENT_MODEL || 'rigbox/default'
const system =
  process.env.AGENT_SYSTEM_PROMPT ||
  'You are a helpful assistant running in a Rigbox workspace. Use the tools when they help.'
const memoryFile = path.join(__dirname, 'memory.json')
const MAX_HISTORY = 20
const MAX_TOOL_ROUNDS = 4

const loadMemory = () => {
  try {
    return JSON.parse(fs.readFileSync(memoryFile, 'utf8'))
  } catch {
    return { notes: [], history: [] }
  }
}
const saveMemory = (m) => fs.writeFileSync(memoryFile, JSON.stringify(m, null, 2))

// Tools the model may call: cheap, local, and safe to run on its say-so.
const tools = {
  get_time: {
    description: 'The current date and time (ISO 8601, UTC).',
    parameters: { type: 'object', properties: {} },
    run: () => new Date().toISOString(),
  },
  remember: {
    description: 'Save a short note to long-term memory, shown to you in later conversations.',
    parameters: {
      type: 'object',
      properties: { note: { type: 'string' } },
      required: ['note'],
    },
    run: (args, memory) => {
      memory.notes.push(String(args.note || '').slice(0, 500))
      memory.notes = memory.notes.slice(-50)
      return 'saved'
    },
  },
}
const toolSpecs = Object.entries(tools).map(([name, t]) => ({
  type: 'function',
  function: { name, description: t.description, parameters: t.parameters },
}))

async function complete(messages) {
  const res = await fetch(baseUrl + '/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + apiKey },
    body: JSON.stringify({ model, messages, tools: toolSpecs }),
  })
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error('AI proxy answered ' + res.status + ': ' + JSON.stringify(body.error || body))
  return body.choices[0].message
}

async function chat(text) {
  const memory = loadMemory()
  const notes = memory.notes.length ? '\\nThings you remember:\\n- ' + memory.notes.join('\\n- ') : ''
  const messages = [{ role: 'system', content: system + notes }, ...memory.history, { role: 'user', content: text }]
  const used = []
  let reply = null
  for (let round = 0; round <= MAX_TOOL_ROUNDS && reply === null; round++) {
    const msg = await complete(messages)
    messages.push(msg)
    if (!msg.tool_calls || !msg.tool_calls.length || round === MAX_TOOL_ROUNDS) {
      reply = msg.content || ''
      break
    }
    for (const call of msg.tool_calls) {
      const tool = tools[call.function.name]
      let args = {}
      try {
        args = JSON.parse(call.function.arguments || '{}')
      } catch {}
      const result = tool ? String(tool.run(args, memory)) : 'unknown tool ' + call.function.name
      used.push({ name: call.function.name, result })
      messages.push({ role: 'tool', tool_call_id: call.id, content: result })
    }
  }
  memory.history = [...memory.history, { role: 'user', content: text }, { role: 'assistant', content: reply }].slice(-MAX_HISTORY)
  saveMemory(memory)
  return { reply, tools_used: used, model }
}

const PAGE = \`<!doctype html>
<html lang="en"><head><meta charset="utf-8" /><title>Rigbox AI agent</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
#log p{white-space:pre-wrap}form{display:flex;gap:.5rem}input{flex:1}</style></head>
<body><h1>Rigbox AI agent</h1><p>A sample agent in <code>~/agent/agent.js</code>, talking to
models through the managed AI proxy. API: <code>POST /chat {"message": "..."}</code>.</p>
<div id="log"></div><form id="f"><input id="m" placeholder="Ask something" /><button>Send</button></form>
<script>
const log = document.getElementById('log')
const say = (who, text) => log.append(Object.assign(document.createElement('p'), { textContent: who + ': ' + text }))
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault()
  const m = document.getElementById('m'); const message = m.value; m.value = ''
  say('you', message)
  const r = await fetch('chat', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message }) })
  const body = await r.json()
  say('agent', body.reply || body.error)
})
</script></body></html>\`

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

http
  .createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost')
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end(PAGE)
    }
    if (req.method === 'GET' && url.pathname === '/health') return json(res, 200, { ok: true, model })
    if (req.method === 'GET' && url.pathname === '/memory') return json(res, 200, loadMemory())
    if (req.method !== 'POST' || url.pathname !== '/chat') return json(res, 404, { error: 'not found' })
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', async () => {
      let message
      try {
        message = JSON.parse(raw || '{}').message
      } catch {}
      if (typeof message !== 'string' || !message.trim()) {
        return json(res, 400, { error: 'send {"message": "..."}' })
      }
      try {
        json(res, 200, await chat(message))
      } catch (err) {
        console.error(err)
        json(res, 502, { error: String(err.message || err) })
      }
    })
  })
  .listen(port, () => console.log('agent listening on port ' + port + ', model ' + model))
`

const README = `# Sample AI agent

\`agent.js\` is a small agent (Node.js, no dependencies) served as the app "agent" on port 8000:

    curl -X POST localhost:8000/chat -H 'content-type: application/json' -d '{"message":"hi"}'

It calls the managed AI proxy at $OPENAI_BASE_URL (set in every managed workspace), with two
tools (get_time, remember) and a memory in memory.json. AGENT_MODEL picks the model
(default rigbox/default). Restart after edits: sudo systemctl restart rigbox-svc-agent
`

export const aiAgentAutomation: TemplateAutomation = {
  setup_scripts: [
    {
      name: 'agent-starter',
      run_on: 'first_boot',
      content: writeFilesScript(AGENT_DIR, { 'agent.js': AGENT_JS, 'README.md': README }),
    },
  ],
  services: [
    {
      name: 'agent',
      exec_start: '/usr/local/bin/node agent.js',
      env_vars: { PORT: String(AGENT_PORT) },
      environment_file: null,
      restart_policy: 'always',
      auto_enable: true,
      setup_script: '',
      working_directory: AGENT_DIR,
      port: AGENT_PORT,
    },
  ],
}
