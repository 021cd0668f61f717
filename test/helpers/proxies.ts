/**
 * Real reverse proxies for integration tests: nginx, Apache httpd, HAProxy and Caddy, each started on
 * 127.0.0.1 with a free port and the configuration `proxyConfig()` writes, in a temp dir of its own.
 */
import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { proxyConfig, type ProxyConfigOptions, type ProxyKind } from '../../lib/cli/proxy-config.js'
import { getCorpus } from './certs.js'

export type { ProxyKind }

const binaries: Record<ProxyKind, { names: string[], apt: string }> = {
  nginx: { names: ['nginx'], apt: 'nginx' },
  apache: { names: ['apache2', 'httpd'], apt: 'apache2' },
  haproxy: { names: ['haproxy'], apt: 'haproxy' },
  caddy: { names: ['caddy'], apt: 'caddy' }
}

/** The proxy's executable, looked up in PATH and the sbin directories (often missing from a user's PATH). */
export function proxyBinary (kind: ProxyKind): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/local/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    for (const name of binaries[kind].names) {
      const candidate = join(dir, name)
      try {
        accessSync(candidate, constants.X_OK)
        return candidate
      } catch {}
    }
  }
  return null
}

export function proxyAvailable (kind: ProxyKind): boolean {
  return proxyBinary(kind) !== null
}

export function missingMessage (kind: ProxyKind): string {
  return `${kind} not installed: apt-get install ${binaries[kind].apt}`
}

/**
 * False (and the test is failed or skipped) when the proxy is not installed. With MTLS_REQUIRE_PROXIES=1
 * (CI) a missing proxy fails the test; otherwise it is skipped, loudly.
 */
export function requireProxy (t: Test, kind: ProxyKind): boolean {
  if (proxyAvailable(kind)) return true
  const message = missingMessage(kind)
  if (process.env.MTLS_REQUIRE_PROXIES === '1') {
    t.fail(message)
  } else {
    console.error(`# SKIPPED: ${message} (set MTLS_REQUIRE_PROXIES=1 to make this a failure)`)
    t.skip(message, () => {})
  }
  return false
}

export interface StartProxyOptions {
  upstream: ProxyConfigOptions['upstream']
  verify?: ProxyConfigOptions['verify']
  secret?: ProxyConfigOptions['secret']
  /** Rewrites the configuration proxyConfig() writes: a test that runs a variant of it (an older one, more headers). */
  edit?: (config: string) => string
}

export interface RunningProxy {
  kind: ProxyKind
  port: number
  /** `https://127.0.0.1:port`; clients send SNI and Host `localhost` (Caddy needs both) */
  url: string
  /** the configuration text it runs */
  config: string
  workDir: string
  /** the proxy's error log and whatever it printed */
  log: () => string
  stop: () => Promise<void>
}

const running = new Set<ChildProcess>()

function killAll (): void {
  for (const child of running) {
    // The proxy leads its own process group (detached): this reaches its workers too.
    try { process.kill(-child.pid!, 'SIGKILL') } catch {}
  }
  running.clear()
}

process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAll()
    process.kill(process.pid, signal)
  })
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function readLog (file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function command (kind: ProxyKind, binary: string, workDir: string, configPath: string): string[] {
  switch (kind) {
    case 'nginx': return [binary, '-p', workDir, '-e', join(workDir, 'error.log'), '-c', configPath, '-g', 'daemon off;']
    case 'apache': return [binary, '-d', workDir, '-f', configPath, '-DFOREGROUND']
    case 'haproxy': return [binary, '-db', '-f', configPath]
    case 'caddy': return [binary, 'run', '--adapter', 'caddyfile', '--config', configPath]
  }
}

/** Resolves once the proxy completes a TLS handshake; rejects when it exits first or after `ms`. */
async function waitForTls (port: number, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode}) before accepting TLS`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false })
      socket.once('secureConnect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { socket.destroy(); resolve(false) })
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`no TLS handshake on port ${port} within ${ms} ms`)
}

async function exited (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  return await Promise.race([
    new Promise<boolean>((resolve) => child.once('exit', () => resolve(true))),
    sleep(ms).then(() => false)
  ])
}

/** Starts `kind` on 127.0.0.1 in front of `upstream`; retries with another port when the chosen one is taken. */
export async function startProxy (kind: ProxyKind, options: StartProxyOptions): Promise<RunningProxy> {
  const binary = proxyBinary(kind)
  if (binary === null) throw new Error(missingMessage(kind))
  const corpus = await getCorpus()
  const server = corpus.leaves.serverauth
  let lastError = new Error(`${kind} could not find a free port`)
  for (let attempt = 0; attempt < 5; attempt++) {
    const workDir = mkdtempSync(join(tmpdir(), `client-cert-${kind}-`))
    let certPath = server.chainPath
    let keyPath = server.keyPath
    if (kind === 'haproxy') {
      certPath = join(workDir, 'server.pem')
      writeFileSync(certPath, server.chainPem + server.keyPem, { mode: 0o600 })
      keyPath = certPath
    }
    const port = await freePort()
    const root = process.getuid?.() === 0
    const generated = proxyConfig(kind, {
      listen: { host: '127.0.0.1', port },
      upstream: options.upstream,
      serverCertPath: certPath,
      serverKeyPath: keyPath,
      clientCaPath: corpus.caPath,
      verify: options.verify ?? 'optional',
      workDir,
      secret: options.secret,
      // nginx keeps root so its worker reaches a Unix socket in a private dir; Apache refuses root.
      ...(root ? kind === 'apache' ? { user: 'www-data' } : kind === 'nginx' ? { user: 'root' } : {} : {})
    })
    const config = options.edit === undefined ? generated : options.edit(generated)
    const configPath = join(workDir, kind === 'caddy' ? 'Caddyfile' : `${kind}.conf`)
    writeFileSync(configPath, config)
    const outputPath = join(workDir, 'output.log')
    const output = openSync(outputPath, 'a')
    const [file, ...args] = command(kind, binary, workDir, configPath)
    const child = spawn(file, args, {
      cwd: workDir,
      detached: true,
      stdio: ['ignore', output, output],
      env: { ...process.env, HOME: workDir, XDG_CONFIG_HOME: workDir, XDG_DATA_HOME: workDir }
    })
    closeSync(output)
    running.add(child)
    const log = (): string => [readLog(join(workDir, 'error.log')), readLog(outputPath)].filter((text) => text !== '').join('\n')
    const stop = async (): Promise<void> => {
      if (running.has(child)) {
        child.kill('SIGTERM')
        if (!await exited(child, 5000)) {
          try { process.kill(-child.pid!, 'SIGKILL') } catch {}
          await exited(child, 5000)
        }
        running.delete(child)
      }
      rmSync(workDir, { recursive: true, force: true })
    }
    try {
      await waitForTls(port, child, 15_000)
      return { kind, port, url: `https://127.0.0.1:${port}`, config, workDir, log, stop }
    } catch (error) {
      const text = log()
      await stop()
      lastError = new Error(`${kind} failed to start: ${(error as Error).message}\n${text}`)
      if (!/in use|EADDRINUSE|cannot bind|bind\(\) to .* failed/i.test(text)) throw lastError
    }
  }
  throw lastError
}
