import { isIP } from 'node:net'
import { getPreset } from '../sources/presets/index.js'

/** The reverse proxies whose configuration `proxyConfig` writes (each has the preset of the same name). */
export type ProxyKind = 'nginx' | 'apache' | 'haproxy' | 'caddy'

export const proxyKinds: readonly ProxyKind[] = Object.freeze(['nginx', 'apache', 'haproxy', 'caddy'])

export interface ProxyConfigOptions {
  /** Where the proxy accepts clients (TLS). */
  listen: { host: string, port: number }
  /**
   * The host name clients address the proxy by (SNI and Host), default `localhost`. Caddy serves only this
   * name: with client authentication it answers 421 when SNI and Host differ, and clients send no SNI for an IP.
   */
  serverName?: string
  /** Where Fastify listens: a TCP address (bind it to 127.0.0.1) or a Unix domain socket path. */
  upstream: { host: string, port: number } | { socket: string }
  /** The proxy's own certificate, PEM, followed by its intermediates. HAProxy: the same file as the key (or the key in `<cert>.key`). */
  serverCertPath: string
  serverKeyPath: string
  /** The CA certificate(s), PEM, that issue client certificates. */
  clientCaPath: string
  /** `optional`: a request without a certificate reaches the app (which answers 401 where one is required); `required`: the proxy refuses it. */
  verify: 'optional' | 'required'
  /** An absolute directory for the pid file, logs and temporary files. */
  workDir: string
  /**
   * The account the proxy's workers run as when it starts as root (nginx `user`, Apache `User`, HAProxy `user`;
   * Caddy does not switch). Omitted: nginx falls back to `nobody`, HAProxy stays root, Apache needs one.
   */
  user?: string
  /** The group for `user`; defaults to the user's name. */
  group?: string
  /** A shared secret header the proxy adds to every request (see the plugin's `proxy.secret`). */
  secret?: { header: string, value: string }
  /** Apache only: the directory holding `mod_ssl.so` and friends. Default: Debian's `/usr/lib/apache2/modules`. */
  apacheModulesDir?: string
}

interface Checked {
  listen: string
  serverName: string
  /** listen host as the proxy writes it when it takes host and port apart (Caddy `bind`) */
  listenHost: string
  listenPort: number
  /** `host:port`, `[v6]:port`, or null for a socket */
  upstreamAddress: string | null
  upstreamHost: string | null
  upstreamSocket: string | null
  cert: string
  key: string
  ca: string
  required: boolean
  work: string
  user: string | null
  group: string | null
  secret: { header: string, value: string } | null
  apacheModules: string
}

// What a path may hold so that it needs no quoting or escaping in any of the four formats (no whitespace,
// quotes, backslashes, comment, variable or placeholder markers, separators of one syntax or another).
const SAFE_PATH = /^\/[A-Za-z0-9._+/-]*$/
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
const ACCOUNT = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/
// The conventional subset of RFC 9110 token characters: the others mean something in one config syntax or another.
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/
// Written bare into four config syntaxes: letters, digits and base64/base64url punctuation only.
const SECRET_VALUE = /^[A-Za-z0-9+/=_.~-]{16,512}$/

function fail (option: string, reason: string): never {
  throw new TypeError(`proxyConfig: ${option} ${reason}`)
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function path (value: unknown, option: string): string {
  if (typeof value !== 'string' || !SAFE_PATH.test(value) || value.split('/').includes('..')) {
    fail(option, 'must be an absolute path of letters, digits and ._+-/ (no spaces, quotes or "..")')
  }
  return value
}

function host (value: unknown, option: string): string {
  if (typeof value !== 'string' || (isIP(value) === 0 && !HOSTNAME.test(value))) fail(option, 'must be an IP address or a host name')
  return value
}

function port (value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) fail(option, 'must be an integer from 1 to 65535')
  return value
}

function account (value: unknown, option: string): string | null {
  if (value === undefined) return null
  if (typeof value !== 'string' || !ACCOUNT.test(value)) fail(option, 'must be a user or group name')
  return value
}

/** `host:port`, with IPv6 literals in brackets as every one of the four proxies reads them. */
function hostPort (hostName: string, portNumber: number): string {
  return `${isIP(hostName) === 6 ? `[${hostName}]` : hostName}:${portNumber}`
}

function check (kind: unknown, options: unknown): Checked {
  if (!(proxyKinds as readonly unknown[]).includes(kind)) fail('kind', `must be one of ${proxyKinds.join(', ')}`)
  if (!isRecord(options)) fail('options', 'must be an object')
  const { listen, upstream } = options
  if (!isRecord(listen)) fail('options.listen', 'must be { host, port }')
  if (!isRecord(upstream)) fail('options.upstream', 'must be { host, port } or { socket }')
  const listenHost = host(listen.host, 'options.listen.host')
  const listenPort = port(listen.port, 'options.listen.port')
  let upstreamAddress: string | null = null
  let upstreamHost: string | null = null
  let upstreamSocket: string | null = null
  if (upstream.socket !== undefined) {
    if (upstream.host !== undefined || upstream.port !== undefined) fail('options.upstream', 'takes { host, port } or { socket }, not both')
    upstreamSocket = path(upstream.socket, 'options.upstream.socket')
  } else {
    upstreamHost = host(upstream.host, 'options.upstream.host')
    upstreamAddress = hostPort(upstreamHost, port(upstream.port, 'options.upstream.port'))
  }
  if (options.verify !== 'optional' && options.verify !== 'required') fail('options.verify', "must be 'optional' or 'required'")
  const cert = path(options.serverCertPath, 'options.serverCertPath')
  const key = path(options.serverKeyPath, 'options.serverKeyPath')
  if (kind === 'haproxy' && key !== cert && key !== `${cert}.key`) {
    fail('options.serverKeyPath', 'must be serverCertPath itself (certificate and key in one PEM file) or serverCertPath + ".key": HAProxy 2.6 reads the key from there')
  }
  const user = account(options.user, 'options.user')
  const group = account(options.group, 'options.group')
  if (group !== null && user === null) fail('options.group', 'needs options.user')
  let secret: Checked['secret'] = null
  if (options.secret !== undefined) {
    const given = options.secret
    if (!isRecord(given)) fail('options.secret', 'must be { header, value }')
    if (typeof given.header !== 'string' || !HEADER_NAME.test(given.header)) fail('options.secret.header', 'must be a header name of letters, digits and -')
    if (getPreset(kind as ProxyKind)!.headers.includes(given.header.toLowerCase())) fail('options.secret.header', 'must not be a certificate header')
    if (typeof given.value !== 'string' || !SECRET_VALUE.test(given.value)) {
      fail('options.secret.value', 'must be 16 to 512 characters of letters, digits and +/=_.~- (e.g. base64url of 32 random bytes)')
    }
    secret = { header: given.header, value: given.value }
  }
  let serverName = 'localhost'
  if (options.serverName !== undefined) {
    if (typeof options.serverName !== 'string' || !HOSTNAME.test(options.serverName) || isIP(options.serverName) !== 0) {
      fail('options.serverName', 'must be a host name, not an IP address')
    }
    serverName = options.serverName
  }
  return {
    listen: hostPort(listenHost, listenPort),
    serverName,
    listenHost,
    listenPort,
    upstreamAddress,
    upstreamHost,
    upstreamSocket,
    cert,
    key,
    ca: path(options.clientCaPath, 'options.clientCaPath'),
    required: options.verify === 'required',
    work: path(options.workDir, 'options.workDir'),
    user,
    group: user === null ? null : group ?? user,
    secret,
    apacheModules: options.apacheModulesDir === undefined ? '/usr/lib/apache2/modules' : path(options.apacheModulesDir, 'options.apacheModulesDir')
  }
}

/** The address Fastify sees the proxy connect from, as far as the configuration tells. */
function trustHint (c: Checked): string {
  if (c.upstreamHost === null) return "'unix'"
  // A connection to a loopback address leaves from 127.0.0.1 (IPv4) or ::1.
  if (c.upstreamHost.startsWith('127.') && isIP(c.upstreamHost) === 4) return "'127.0.0.1'"
  if (c.upstreamHost === '::1') return "'::1'"
  if (c.upstreamHost === 'localhost') return "'loopback'"
  return "'<address of this proxy as Fastify sees it>'"
}

function registration (preset: ProxyKind, c: Checked): string {
  const trust = trustHint(c)
  const secret = c.secret === null ? '' : `, secret: { header: '${c.secret.header}', value: process.env.PROXY_SECRET }`
  return `# Fastify: app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: '${preset}', trust: [${trust}]${secret} } })`
}

/** How each proxy is checked and run from the directory its file is saved in: the path given absolute, as nginx and Apache resolve a relative one against their own prefix. */
const launch: Record<ProxyKind, (c: Checked) => { file: string, check: string, run: string }> = {
  nginx: (c) => ({
    file: 'nginx.conf',
    // -e: nginx opens its default error log before reading the file, which fails for a user who cannot write there.
    check: `nginx -t -e ${c.work}/error.log -c "$PWD/nginx.conf"`,
    run: `nginx -e ${c.work}/error.log -c "$PWD/nginx.conf" -g 'daemon off;'`
  }),
  apache: () => ({ file: 'apache.conf', check: 'apachectl -t -f "$PWD/apache.conf"', run: 'apachectl -f "$PWD/apache.conf" -DFOREGROUND' }),
  haproxy: () => ({ file: 'haproxy.cfg', check: 'haproxy -c -f "$PWD/haproxy.cfg"', run: 'haproxy -db -f "$PWD/haproxy.cfg"' }),
  caddy: () => ({
    file: 'Caddyfile',
    check: 'caddy validate --adapter caddyfile --config "$PWD/Caddyfile"',
    run: 'caddy run --adapter caddyfile --config "$PWD/Caddyfile"'
  })
}

/** The comment lines every configuration opens with: what it does, how Fastify trusts it, and how to start it as printed. */
function header (kind: ProxyKind, what: string, c: Checked): string[] {
  const { file, check, run } = launch[kind](c)
  return [
    `# ${what} terminates mutual TLS and forwards the client certificate to Fastify.`,
    registration(kind, c),
    `# Save as ${file}; then, in its directory, create the work directory, check the file, run it in the foreground:`,
    `#   mkdir -p ${c.work}`,
    `#   ${check}`,
    `#   ${run}`
  ]
}

function nginx (c: Checked): string {
  const lines = [...header('nginx', 'nginx', c), '']
  if (c.user !== null) lines.push('# Workers run as this account when nginx starts as root.', `user ${c.user} ${c.group!};`)
  lines.push(
    '# One worker: it holds the keep-alive connections to Fastify (each worker has its own).',
    'worker_processes 1;',
    `pid ${c.work}/nginx.pid;`,
    `error_log ${c.work}/error.log warn;`,
    '',
    'events {',
    '  worker_connections 1024;',
    '}',
    '',
    'http {',
    '  # WebSocket upgrades pass through; an ordinary request sends no Connection header and keeps its',
    "  # keep-alive connection to Fastify (nginx's usual 'close' here would end it after every request).",
    '  map $http_upgrade $connection_upgrade {',
    '    default upgrade;',
    "    '' '';",
    '  }',
    '',
    `  access_log ${c.work}/access.log;`,
    `  client_body_temp_path ${c.work}/client_body_temp;`,
    `  proxy_temp_path ${c.work}/proxy_temp;`,
    `  fastcgi_temp_path ${c.work}/fastcgi_temp;`,
    `  uwsgi_temp_path ${c.work}/uwsgi_temp;`,
    `  scgi_temp_path ${c.work}/scgi_temp;`,
    '',
    '  upstream fastify {',
    `    server ${c.upstreamSocket === null ? c.upstreamAddress! : `unix:${c.upstreamSocket}`};`,
    '    # Idle connections kept open to Fastify: one carries the requests of many clients in turn.',
    '    keepalive 16;',
    "    # Shorter than Fastify's keepAliveTimeout (72 s): nginx never reuses a connection Fastify is closing.",
    '    keepalive_timeout 60s;',
    '  }',
    '',
    '  server {',
    `    listen ${c.listen} ssl;`,
    `    server_name ${c.serverName};`,
    `    ssl_certificate ${c.cert};`,
    `    ssl_certificate_key ${c.key};`,
    '    ssl_protocols TLSv1.2 TLSv1.3;',
    '',
    '    # The CA(s) that issue client certificates.',
    `    ssl_client_certificate ${c.ca};`,
    c.required
      ? '    # Every request needs a valid client certificate; nginx itself answers 400 otherwise.'
      : '    # A request without a certificate still reaches Fastify; an invalid one gets nginx\'s own 400.',
    `    ssl_verify_client ${c.required ? 'on' : 'optional'};`,
    '    # Leaf, intermediate, root: 2 admits certificates issued by an intermediate CA.',
    '    ssl_verify_depth 2;',
    '',
    '    location / {',
    '      proxy_pass http://fastify;',
    '      # HTTP/1.1 without "Connection: close": required for keep-alive to Fastify (and for upgrades).',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Upgrade $http_upgrade;',
    '      proxy_set_header Connection $connection_upgrade;',
    '      proxy_set_header Host $host;',
    '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '      proxy_set_header X-Forwarded-Proto $scheme;',
    '      # Security: nginx drops the client\'s own copies of every header set here, even when its value is',
    '      # empty, so a client cannot forge them. A location with proxy_set_header lines of its own inherits',
    '      # none of these: repeat them there. $ssl_client_escaped_cert is the URL-encoded PEM: never forward',
    '      # $ssl_client_cert (deprecated) or $ssl_client_raw_cert, whose line breaks Node refuses.',
    '      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;',
    '      # SUCCESS, FAILED:<reason> or NONE.',
    '      proxy_set_header X-SSL-Client-Verify $ssl_client_verify;'
  )
  if (c.secret !== null) {
    lines.push(
      '      # Proves to Fastify that the request came through this proxy (proxy.secret).',
      `      proxy_set_header ${c.secret.header} "${c.secret.value}";`
    )
  }
  lines.push('    }', '  }', '}')
  return lines.join('\n') + '\n'
}

function apache (c: Checked): string {
  const module = (name: string): string => `LoadModule ${name}_module ${c.apacheModules}/mod_${name}.so`
  const backend = c.upstreamSocket === null ? `http://${c.upstreamAddress!}/` : `unix:${c.upstreamSocket}|http://localhost/`
  const lines = [
    ...header('apache', 'Apache httpd 2.4', c),
    '# apachectl hands these flags to the server binary (apache2 on Debian, httpd elsewhere), which takes them directly too.',
    '',
    module('mpm_event'),
    // Without an authorization module Apache refuses every request.
    module('authz_core'),
    module('socache_shmcb'),
    module('ssl'),
    module('headers'),
    module('proxy'),
    module('proxy_http'),
    '',
    `ServerName ${c.serverName}`,
    `Listen ${c.listen}`,
    `PidFile ${c.work}/apache.pid`,
    `DefaultRuntimeDir ${c.work}`,
    `ErrorLog ${c.work}/error.log`,
    'LogLevel warn'
  ]
  if (c.user !== null) {
    lines.push('# Children run as this account when Apache starts as root (Apache refuses to serve as root itself).', `User ${c.user}`, `Group ${c.group!}`)
  }
  lines.push(
    '# One server process with threads: mod_proxy keeps its connections to Fastify per process.',
    'StartServers 1',
    'ServerLimit 1',
    'ThreadsPerChild 64',
    'MaxRequestWorkers 64',
    'MinSpareThreads 16',
    'MaxSpareThreads 64',
    '',
    `SSLSessionCache shmcb:${c.work}/ssl_scache(512000)`,
    'SSLProtocol -all +TLSv1.2 +TLSv1.3',
    '',
    `<VirtualHost ${c.listen}>`,
    `  ServerName ${c.serverName}`,
    '  SSLEngine on',
    `  SSLCertificateFile ${c.cert}`,
    `  SSLCertificateKeyFile ${c.key}`,
    '  # The CA(s) that issue client certificates.',
    `  SSLCACertificateFile ${c.ca}`,
    c.required
      ? '  # Every request needs a valid client certificate: the handshake fails otherwise.'
      : '  # A request without a certificate still reaches Fastify; an invalid one fails the handshake.',
    `  SSLVerifyClient ${c.required ? 'require' : 'optional'}`,
    '  # Leaf, intermediate, root. The default of 1 refuses every certificate issued by an intermediate CA.',
    '  SSLVerifyDepth 2',
    '',
    '  # Security: mod_proxy deletes every request header the client names in Connection, after the "set"',
    '  # lines below: "Connection: X-SSL-Client-Cert" would drop the certificate, its status and the secret.',
    '  # Removed before anything else runs, the client\'s Connection header can name none of them.',
    '  RequestHeader unset Connection early',
    '  # Security: "set" replaces the client\'s own copies of the header (with "(null)" when there is no',
    '  # certificate), so a client cannot forge it. SSL_CLIENT_CERT is the PEM with line breaks as spaces.',
    '  RequestHeader set X-SSL-Client-Cert "%{SSL_CLIENT_CERT}s"',
    '  # SUCCESS, FAILED:<reason> or NONE.',
    '  RequestHeader set X-SSL-Client-Verify "%{SSL_CLIENT_VERIFY}s"'
  )
  if (c.secret !== null) {
    lines.push(
      '  # Proves to Fastify that the request came through this proxy (proxy.secret).',
      `  RequestHeader set ${c.secret.header} "${c.secret.value}"`
    )
  }
  lines.push(
    '',
    '  # mod_proxy keeps connections to Fastify open and reuses them for any client; ttl closes idle ones',
    "  # before Fastify's keepAliveTimeout (72 s) does, keepalive=On adds TCP keep-alive probes.",
    `  ProxyPass / ${backend} keepalive=On ttl=60`,
    '  ProxyPreserveHost On',
    '</VirtualHost>'
  )
  return lines.join('\n') + '\n'
}

function haproxy (c: Checked): string {
  const lines = [
    ...header('haproxy', 'HAProxy 2.6', c),
    `# ${c.cert}: the certificate, its intermediates and the key, in one file.`,
    '',
    'global',
    `  pidfile ${c.work}/haproxy.pid`
  ]
  if (c.user !== null) lines.push('  # Drops root after binding.', `  user ${c.user}`, `  group ${c.group!}`)
  lines.push(
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    '',
    'defaults',
    '  mode http',
    '  option forwardfor',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-keep-alive 60s',
    '',
    'frontend mtls',
    c.required
      ? '  # Every request needs a valid client certificate: the handshake fails otherwise.'
      : '  # A request without a certificate still reaches Fastify; an invalid one fails the handshake.',
    `  bind ${c.listen} ssl crt ${c.cert} ca-file ${c.ca} verify ${c.required ? 'required' : 'optional'}`,
    '  # Security: set-header deletes every copy the client sent (in any letter case) before adding its own.',
    '  http-request set-header X-SSL-Client-Cert %[ssl_c_der,base64]',
    '  # 0 means verified, but also no certificate at all: X-SSL-Client-Used (1 or 0) tells them apart.',
    '  http-request set-header X-SSL-Client-Verify %[ssl_c_verify]',
    '  http-request set-header X-SSL-Client-Used %[ssl_c_used]',
    '  # The intermediates the client sent, DER back to back, for proxy.ca (empty on resumed sessions).',
    '  http-request set-header X-SSL-Client-Chain %[ssl_c_chain_der,base64]'
  )
  if (c.secret !== null) {
    lines.push(
      '  # Proves to Fastify that the request came through this proxy (proxy.secret).',
      `  http-request set-header ${c.secret.header} ${c.secret.value}`
    )
  }
  lines.push(
    '  default_backend fastify',
    '',
    'backend fastify',
    '  # Idle connections to Fastify carry any client\'s requests.',
    '  http-reuse always',
    `  server fastify ${c.upstreamSocket === null ? c.upstreamAddress! : `unix@${c.upstreamSocket}`}`
  )
  return lines.join('\n') + '\n'
}

function caddy (c: Checked): string {
  const lines = [
    ...header('caddy', 'Caddy 2.6', c),
    '{',
    '  admin off',
    '  auto_https off',
    '  # TCP only (HTTP/1.1 and HTTP/2): the protocols this configuration is tested with.',
    '  servers {',
    '    protocols h1 h2',
    '  }',
    `  storage file_system ${c.work}/caddy`,
    '  log {',
    `    output file ${c.work}/error.log`,
    '    level WARN',
    '  }',
    '}',
    '',
    '# A host name, not an IP: with client_auth Caddy answers 421 when SNI and Host differ, and clients send',
    '# no SNI for an IP address.',
    `${c.serverName}:${c.listenPort} {`,
    `  bind ${c.listenHost}`,
    `  tls ${c.cert} ${c.key} {`,
    '    protocols tls1.2 tls1.3',
    '    client_auth {',
    '      # Security: Caddy forwards no verification status, so the plugin counts every forwarded certificate',
    '      # as verified. Only verify_if_given and require_and_verify make that true: never request or require.',
    `      mode ${c.required ? 'require_and_verify' : 'verify_if_given'}`,
    '      # The CA(s) that issue client certificates.',
    `      trusted_ca_cert_file ${c.ca}`,
    '    }',
    '  }',
    `  reverse_proxy ${c.upstreamSocket === null ? c.upstreamAddress! : `unix/${c.upstreamSocket}`} {`,
    '    # Security: header_up replaces the client\'s own copies (with this placeholder\'s text when there is no',
    '    # certificate, which the plugin reads as none). Base64 DER: Caddy refuses the PEM\'s line breaks.',
    '    header_up X-SSL-Client-Cert {http.request.tls.client.certificate_der_base64}'
  ]
  if (c.secret !== null) {
    lines.push(
      '    # Proves to Fastify that the request came through this proxy (proxy.secret).',
      `    header_up ${c.secret.header} ${c.secret.value}`
    )
  }
  lines.push(
    '    transport http {',
    "      # Connections to Fastify are reused for any client; idle ones close before Fastify's 72 s.",
    '      keepalive 60s',
    '    }',
    '  }',
    '}'
  )
  // Caddy's own formatter (`caddy fmt`) indents with tabs, and Caddy warns about input that differs from it.
  return lines.map((line) => line.replace(/^(?: {2})+/, (indent) => '\t'.repeat(indent.length / 2))).join('\n') + '\n'
}

const writers: Record<ProxyKind, (c: Checked) => string> = { nginx, apache, haproxy, caddy }

/**
 * The complete configuration of a reverse proxy that terminates mutual TLS in front of Fastify and forwards
 * the client certificate in the headers of the preset of the same name. Throws a TypeError naming the option
 * on a bad value; values are checked to be safe to write into the configuration unquoted.
 */
export function proxyConfig (kind: ProxyKind, options: ProxyConfigOptions): string {
  const checked = check(kind, options)
  return writers[kind](checked)
}
