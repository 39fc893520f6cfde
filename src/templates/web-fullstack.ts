import type { TemplateAutomation } from '../automation/types.ts'

/**
 * The `web-fullstack` template's starter: a Node.js server with no npm dependencies (so it runs
 * right after the first boot, with no registry reachable) serving a JSON API under /api and a
 * static front end from public/. It lives in ~/app, where the user takes it over.
 */

export const WEB_APP_DIR = '/home/developer/app'
export const WEB_PORT = 3000

const SERVER_JS = `// Starter server: plain Node.js (no dependencies). Edit freely; the unit rigbox-svc-web
// restarts it (sudo systemctl restart rigbox-svc-web). PORT comes from the unit (3000).
const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')

const port = Number(process.env.PORT || 3000)
const publicDir = path.join(__dirname, 'public')
const dataFile = path.join(__dirname, 'data.json')
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' }

const load = () => {
  try {
    return JSON.parse(fs.readFileSync(dataFile, 'utf8'))
  } catch {
    return { todos: [{ id: 1, text: 'Edit ~/app/server.js', done: false }] }
  }
}
const save = (data) => fs.writeFileSync(dataFile, JSON.stringify(data, null, 2))

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

const readBody = (req) =>
  new Promise((resolve) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      try {
        resolve(JSON.parse(raw || '{}'))
      } catch {
        resolve(null)
      }
    })
  })

async function api(req, res, url) {
  if (url.pathname === '/api/health') return json(res, 200, { ok: true, uptime_s: process.uptime() })
  if (url.pathname === '/api/todos' && req.method === 'GET') return json(res, 200, load().todos)
  if (url.pathname === '/api/todos' && req.method === 'POST') {
    const body = await readBody(req)
    if (!body || typeof body.text !== 'string' || !body.text.trim()) {
      return json(res, 400, { error: 'text is required' })
    }
    const data = load()
    const todo = { id: Date.now(), text: body.text.trim().slice(0, 200), done: false }
    data.todos.push(todo)
    save(data)
    return json(res, 201, todo)
  }
  return json(res, 404, { error: 'no such API route' })
}

function serveStatic(res, url) {
  const rel = url.pathname === '/' ? 'index.html' : url.pathname.slice(1)
  const file = path.join(publicDir, path.normalize(rel))
  if (!file.startsWith(publicDir)) return json(res, 403, { error: 'forbidden' })
  fs.readFile(file, (err, body) => {
    if (err) return json(res, 404, { error: 'not found' })
    res.writeHead(200, { 'content-type': types[path.extname(file)] || 'application/octet-stream' })
    res.end(body)
  })
}

http
  .createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost')
    if (url.pathname.startsWith('/api/')) {
      api(req, res, url).catch((err) => json(res, 500, { error: String(err) }))
    } else serveStatic(res, url)
  })
  .listen(port, () => console.log('starter app listening on port ' + port))
`

const INDEX_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Rigbox web starter</title>
    <link rel="stylesheet" href="style.css" />
  </head>
  <body>
    <main>
      <h1>Rigbox web starter</h1>
      <p>Served by <code>~/app/server.js</code> in your workspace. The list below comes from
        <code>/api/todos</code>.</p>
      <form id="add"><input id="text" placeholder="Something to do" /><button>Add</button></form>
      <ul id="todos"></ul>
    </main>
    <script src="app.js"></script>
  </body>
</html>
`

const APP_JS = `const list = document.getElementById('todos')
async function refresh() {
  const todos = await (await fetch('api/todos')).json()
  list.replaceChildren(...todos.map((t) => Object.assign(document.createElement('li'), { textContent: t.text })))
}
document.getElementById('add').addEventListener('submit', async (e) => {
  e.preventDefault()
  const input = document.getElementById('text')
  await fetch('api/todos', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: input.value }),
  })
  input.value = ''
  refresh()
})
refresh()
`

const STYLE_CSS = `body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; padding: 0 1rem; }
code { background: #f3f3f3; padding: 0 0.2em; }
form { display: flex; gap: 0.5rem; } input { flex: 1; }
`

const PACKAGE_JSON = `{
  "name": "rigbox-web-starter",
  "private": true,
  "version": "0.1.0",
  "scripts": { "start": "node server.js" }
}
`

/** bash that writes `files` under `dir` (never over an existing app: first boot only). */
export function writeFilesScript(dir: string, files: Record<string, string>): string {
  const writes = Object.entries(files).map(([name, text]) => {
    if (text.includes('\nRIGBOX_EOF\n')) throw new Error(`${name} contains the heredoc marker`)
    return `mkdir -p "$(dirname ${dir}/${name})"\ncat > ${dir}/${name} <<'RIGBOX_EOF'\n${text}RIGBOX_EOF\n`
  })
  return [
    'set -euo pipefail',
    `if [ -e ${dir} ]; then echo "${dir} exists; leaving it as it is"; exit 0; fi`,
    ...writes,
    `echo "wrote ${Object.keys(files).length} files to ${dir}"`,
  ].join('\n')
}

export const webFullstackAutomation: TemplateAutomation = {
  setup_scripts: [
    {
      name: 'web-starter',
      run_on: 'first_boot',
      content: writeFilesScript(WEB_APP_DIR, {
        'server.js': SERVER_JS,
        'package.json': PACKAGE_JSON,
        'public/index.html': INDEX_HTML,
        'public/app.js': APP_JS,
        'public/style.css': STYLE_CSS,
      }),
    },
  ],
  services: [
    {
      name: 'web',
      exec_start: '/usr/local/bin/node server.js',
      env_vars: { PORT: String(WEB_PORT) },
      environment_file: null,
      restart_policy: 'always',
      auto_enable: true,
      setup_script: '',
      working_directory: WEB_APP_DIR,
      port: WEB_PORT,
    },
  ],
}
