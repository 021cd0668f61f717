// A real nginx on loopback that terminates TLS, verifies client certificates and forwards them to Fastify
// over keep-alive upstream connections, with the headers of the plugin's `nginx` preset.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const candidates = [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx', '/opt/homebrew/bin/nginx', '/usr/local/bin/nginx']

/** The nginx binary and its version line, or null when none is installed. */
export function findNginx () {
  for (const bin of candidates) {
    if (bin === undefined || bin === '' || !existsSync(bin)) continue
    const result = spawnSync(bin, ['-v'], { encoding: 'utf8' })
    if (result.status === 0) return { bin, version: result.stderr.trim().replace(/^nginx version: /, '') }
  }
  return null
}

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = server.address().port
  server.close()
  await once(server, 'close')
  return port
}

function config ({ dir, port, upstreamPort, certs }) {
  // `user` only matters (and is only allowed) when nginx starts as root; the worker then keeps root's access
  // to the temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : ''
  return `${user}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream fastify {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certs.serverCertPath};
    ssl_certificate_key ${certs.serverKeyPath};
    ssl_client_certificate ${certs.caPath};
    ssl_verify_client on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    location / {
      proxy_pass http://fastify;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
    }
  }
}
`
}

/**
 * Starts nginx in front of `upstreamPort`. Resolves once it accepts connections; `stop()` ends it and removes
 * its temp dir.
 */
export async function startNginx (bin, { upstreamPort, certs }) {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-client-cert-bench-nginx-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, config({ dir, port, upstreamPort, certs }))
  const child = spawn(bin, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })
  const exited = once(child, 'exit')
  async function stop () {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGQUIT: graceful shutdown of master and worker.
      child.kill('SIGQUIT')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 10_000
  while (!await accepts(port)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''
      await stop()
      throw new Error(`nginx did not start: ${(stderr + log).trim().slice(-2000)}`)
    }
    await sleep(50)
  }
  /** Synchronous last resort (Ctrl-C): no waiting for a graceful exit. */
  function abort () {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  return { port, stop, abort }
}

function accepts (port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}
