import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/**
 * nginx (Debian package `nginx`) as the reference proxy for bench/router.ts: one worker, like
 * the router's one event loop, a keep-alive upstream pool, the same X-Forwarded-* work, and
 * unbuffered like the router (which streams). Generated config in a temp dir, loopback only.
 */
export async function startNginx(upstreamPort: number, port: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-bench-nginx-'))
  const tmp = (name: string) => path.join(dir, name)
  fs.writeFileSync(
    tmp('nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${tmp('nginx.pid')};
error_log ${tmp('error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Node's server has no per-connection request cap; without this nginx closes every 1000.
  keepalive_requests 1000000;
  client_body_temp_path ${tmp('body')};
  proxy_temp_path ${tmp('proxy')};
  fastcgi_temp_path ${tmp('fastcgi')};
  uwsgi_temp_path ${tmp('uwsgi')};
  scgi_temp_path ${tmp('scgi')};
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    server_name ~^[a-z0-9-]+\\.localhost$;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
    }
  }
}
`,
  )
  const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', tmp('nginx.conf')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`nginx: ${err.message} (apt-get install nginx)`)))
    child.once('exit', (code) => reject(new Error(`nginx exited ${code}: see ${tmp('error.log')}`)))
  })
  exited.catch(() => {}) // observed through the race below
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await Promise.race([canConnect(port), exited])
    if (up) break
    if (Date.now() > deadline) throw new Error('nginx did not start listening')
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    port,
    stop: async () => {
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGQUIT') // graceful stop
      await gone
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
