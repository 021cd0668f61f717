/**
 * Drives Debian's headless Chromium for the browser test: a throwaway HOME whose NSS database holds the
 * client certificate, a managed policy that selects it without a picker, and a hard timeout.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const CHROMIUM = process.env.MTLS_CHROMIUM ?? '/usr/bin/chromium'
// Debian's Chromium reads managed policies from here only.
export const POLICY_DIR = '/etc/chromium/policies/managed'

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run']

function onPath (tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Why the browser test cannot run here, or null. `fatal`: a missing tool, which CI must install. */
export function browserUnavailable (): { reason: string, fatal: boolean } | null {
  if (process.getuid?.() !== 0) return { reason: `writing a Chromium policy to ${POLICY_DIR} needs root`, fatal: false }
  const missing = [existsSync(CHROMIUM) ? null : CHROMIUM, onPath('pk12util') ? null : 'pk12util', onPath('certutil') ? null : 'certutil']
    .filter((tool) => tool !== null)
  if (missing.length > 0) return { reason: `missing ${missing.join(', ')} (apt-get install chromium libnss3-tools)`, fatal: true }
  return null
}

/**
 * A HOME whose `.pki/nssdb` trusts `caPath` for web sites and, when given, holds the PKCS#12 client
 * certificate (imported with the password in `passwordFile`).
 */
export function nssHome (home: string, caPath: string, p12?: { path: string, passwordFile: string }): string {
  const db = `sql:${join(home, '.pki', 'nssdb')}`
  mkdirSync(join(home, '.pki', 'nssdb'), { recursive: true })
  execFileSync('certutil', ['-N', '-d', db, '--empty-password'], { stdio: 'pipe' })
  execFileSync('certutil', ['-A', '-d', db, '-n', 'fastify-client-cert test root', '-t', 'C,,', '-i', caPath], { stdio: 'pipe' })
  if (p12 !== undefined) execFileSync('pk12util', ['-i', p12.path, '-d', db, '-w', p12.passwordFile], { stdio: 'pipe' })
  return home
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/** Writes a policy selecting a client certificate for `origin` without asking; returns its remover. */
export function autoSelectPolicy (origin: string): () => void {
  mkdirSync(POLICY_DIR, { recursive: true })
  // A run killed outright (SIGKILL) leaves its policy behind: the next run removes it.
  for (const name of readdirSync(POLICY_DIR)) {
    const owner = /^fastify-client-cert-test-(\d+)-[0-9a-f]+\.json$/.exec(name)
    if (owner !== null && !isRunning(Number(owner[1]))) rmSync(join(POLICY_DIR, name), { force: true })
  }
  const path = join(POLICY_DIR, `fastify-client-cert-test-${process.pid}-${randomBytes(4).toString('hex')}.json`)
  // A stray policy would select certificates in any later browser: removed on failure, exit and signals too.
  const onSignal = (signal: NodeJS.Signals): void => {
    rmSync(path, { force: true })
    process.kill(process.pid, signal)
  }
  const remove = (): void => {
    rmSync(path, { force: true })
    process.off('exit', remove).off('SIGINT', onSignal).off('SIGTERM', onSignal)
  }
  process.once('exit', remove).once('SIGINT', onSignal).once('SIGTERM', onSignal)
  writeFileSync(path, JSON.stringify({ AutoSelectCertificateForUrls: [JSON.stringify({ pattern: origin, filter: {} })] }))
  return remove
}

export interface BrowserRun {
  dom: string
  timedOut: boolean
  stderr: string
}

function killGroup (child: ChildProcess): void {
  try {
    // The browser's renderer, GPU and zygote processes share its process group.
    process.kill(-child.pid!, 'SIGKILL')
  } catch {}
}

/**
 * Loads `url` in headless Chromium with `home` as HOME and a fresh profile in `profile`, and resolves
 * with the page's DOM. Chromium waits for ever on a certificate picker, so `timeoutMs` kills it.
 */
export async function loadPage (url: string, options: { home: string, profile: string, screenshot?: string, timeoutMs?: number }): Promise<BrowserRun> {
  const args = [...FLAGS, `--user-data-dir=${options.profile}`, '--window-size=1000,640', '--hide-scrollbars', '--dump-dom']
  if (options.screenshot !== undefined) args.push(`--screenshot=${options.screenshot}`)
  args.push(url)
  const child = spawn(CHROMIUM, args, { env: { ...process.env, HOME: options.home }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let dom = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { dom += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    killGroup(child)
  }, options.timeoutMs ?? 30_000)
  await new Promise((resolve) => { child.once('close', resolve).once('error', resolve) })
  clearTimeout(timer)
  killGroup(child)
  return { dom, timedOut, stderr }
}
