import t from 'tap'
import { readFile } from 'node:fs/promises'
import { getPreset } from '../../lib/sources/presets/index.js'
import { proxyConfig, proxyKinds, type ProxyConfigOptions, type ProxyKind } from '../../lib/cli/proxy-config.js'

// The text itself runs against the real proxies in test/proxy-<kind>.test.ts; here: its options and variants.

function options (kind: ProxyKind, extra: Partial<ProxyConfigOptions> = {}): ProxyConfigOptions {
  return {
    listen: { host: '127.0.0.1', port: 8443 },
    upstream: { host: '127.0.0.1', port: 3000 },
    serverCertPath: '/etc/proxy/server.pem',
    serverKeyPath: kind === 'haproxy' ? '/etc/proxy/server.pem' : '/etc/proxy/server.key',
    clientCaPath: '/etc/proxy/client-ca.pem',
    verify: 'optional',
    workDir: '/var/lib/proxy',
    ...extra
  }
}

/** The lines that set a request header for the upstream, lower-cased header name first. */
function setHeaders (kind: ProxyKind, text: string): Map<string, string> {
  const directive = { nginx: 'proxy_set_header', apache: 'RequestHeader set', haproxy: 'http-request set-header', caddy: 'header_up' }[kind]
  const found = new Map<string, string>()
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (!trimmed.startsWith(directive + ' ')) continue
    const [name, ...value] = trimmed.slice(directive.length + 1).split(' ')
    found.set(name.toLowerCase(), value.join(' '))
  }
  return found
}

t.test('each proxy sets exactly the certificate headers its preset reads, with the documented values', async (t) => {
  const values: Record<ProxyKind, Record<string, string>> = {
    nginx: { 'x-ssl-client-cert': '$ssl_client_escaped_cert;', 'x-ssl-client-verify': '$ssl_client_verify;' },
    apache: { 'x-ssl-client-cert': '"%{SSL_CLIENT_CERT}s"', 'x-ssl-client-verify': '"%{SSL_CLIENT_VERIFY}s"' },
    haproxy: { 'x-ssl-client-cert': '%[ssl_c_der,base64]', 'x-ssl-client-verify': '%[ssl_c_verify]', 'x-ssl-client-used': '%[ssl_c_used]', 'x-ssl-client-chain': '%[ssl_c_chain_der,base64]' },
    caddy: { 'x-ssl-client-cert': '{http.request.tls.client.certificate_der_base64}' }
  }
  for (const kind of proxyKinds) {
    const headers = setHeaders(kind, proxyConfig(kind, options(kind)))
    const certificateHeaders = Object.fromEntries([...headers].filter(([name]) => name.startsWith('x-ssl-client-')))
    t.same(certificateHeaders, values[kind], `${kind}: values`)
    t.same(Object.keys(certificateHeaders).sort(), [...getPreset(kind)!.headers].sort(), `${kind}: the preset's header names`)
  }
})

t.test('verification modes', async (t) => {
  const lines: Record<ProxyKind, [RegExp, RegExp]> = {
    nginx: [/^ {4}ssl_verify_client optional;$/m, /^ {4}ssl_verify_client on;$/m],
    apache: [/^ {2}SSLVerifyClient optional$/m, /^ {2}SSLVerifyClient require$/m],
    haproxy: [/ ca-file \/etc\/proxy\/client-ca\.pem verify optional$/m, / ca-file \/etc\/proxy\/client-ca\.pem verify required$/m],
    caddy: [/^\t{3}mode verify_if_given$/m, /^\t{3}mode require_and_verify$/m]
  }
  for (const kind of proxyKinds) {
    t.match(proxyConfig(kind, options(kind)), lines[kind][0], `${kind}: optional`)
    t.match(proxyConfig(kind, options(kind, { verify: 'required' })), lines[kind][1], `${kind}: required`)
  }
  t.match(proxyConfig('nginx', options('nginx')), /^ {4}ssl_verify_depth 2;$/m, 'nginx: intermediates admitted')
  t.match(proxyConfig('apache', options('apache')), /^ {2}SSLVerifyDepth 2$/m, 'Apache: intermediates admitted (the default 1 refuses them)')
})

t.test('upstreams: TCP, IPv6 and Unix sockets', async (t) => {
  const tcp: Record<ProxyKind, RegExp> = {
    nginx: /^ {4}server \[::1\]:3000;$/m,
    apache: /^ {2}ProxyPass \/ http:\/\/\[::1\]:3000\/ keepalive=On ttl=60$/m,
    haproxy: /^ {2}server fastify \[::1\]:3000$/m,
    caddy: /^\treverse_proxy \[::1\]:3000 \{$/m
  }
  const unix: Record<ProxyKind, RegExp> = {
    nginx: /^ {4}server unix:\/run\/app\/fastify\.sock;$/m,
    apache: /^ {2}ProxyPass \/ unix:\/run\/app\/fastify\.sock\|http:\/\/localhost\/ keepalive=On ttl=60$/m,
    haproxy: /^ {2}server fastify unix@\/run\/app\/fastify\.sock$/m,
    caddy: /^\treverse_proxy unix\/\/run\/app\/fastify\.sock \{$/m
  }
  const listen: Record<ProxyKind, RegExp> = {
    nginx: /^ {4}listen \[::1\]:8443 ssl;$/m,
    apache: /^Listen \[::1\]:8443$[^]*^<VirtualHost \[::1\]:8443>$/m,
    haproxy: /^ {2}bind \[::1\]:8443 ssl /m,
    caddy: /^localhost:8443 \{\n\tbind ::1$/m
  }
  for (const kind of proxyKinds) {
    const v6 = proxyConfig(kind, options(kind, { listen: { host: '::1', port: 8443 }, upstream: { host: '::1', port: 3000 } }))
    t.match(v6, tcp[kind], `${kind}: IPv6 upstream in brackets`)
    t.match(v6, listen[kind], `${kind}: IPv6 listen address`)
    t.match(v6, "trust: ['::1']", `${kind}: registration hint`)
    const socket = proxyConfig(kind, options(kind, { upstream: { socket: '/run/app/fastify.sock' } }))
    t.match(socket, unix[kind], `${kind}: Unix socket upstream`)
    t.match(socket, "trust: ['unix']", `${kind}: registration hint`)
  }
})

t.test('the registration hint names the address Fastify sees', async (t) => {
  const hint = (host: string): string => proxyConfig('nginx', options('nginx', { upstream: { host, port: 3000 } })).split('\n')[1]
  t.equal(hint('127.0.0.1'), "# Fastify: app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'nginx', trust: ['127.0.0.1'] } })")
  t.match(hint('127.0.0.5'), "trust: ['127.0.0.1']")
  t.match(hint('localhost'), "trust: ['loopback']")
  t.match(hint('app.internal'), "trust: ['<address of this proxy as Fastify sees it>']")
  t.match(hint('10.0.0.7'), "trust: ['<address of this proxy as Fastify sees it>']")
  t.match(hint('127.example.org'), "trust: ['<address of this proxy as Fastify sees it>']", 'a host name starting with 127. is not loopback')
})

t.test('the server name clients use', async (t) => {
  const named = (kind: ProxyKind): string => proxyConfig(kind, options(kind, { serverName: 'api.example.org' }))
  t.match(named('nginx'), /^ {4}server_name api\.example\.org;$/m)
  t.match(named('apache'), /^ServerName api\.example\.org$[^]*^ {2}ServerName api\.example\.org$/m)
  t.match(named('caddy'), /^api\.example\.org:8443 \{$/m, 'the Caddy site address')
  t.match(proxyConfig('caddy', options('caddy')), /^localhost:8443 \{$/m, 'default localhost')
  t.notMatch(named('haproxy'), /api\.example\.org/, 'HAProxy serves any name')
})

t.test('keep-alive to the upstream is on', async (t) => {
  const nginx = proxyConfig('nginx', options('nginx'))
  // Connection is empty for an ordinary request (keep-alive), "upgrade" for a WebSocket upgrade.
  t.match(nginx, /^ {2}map \$http_upgrade \$connection_upgrade \{\n {4}default upgrade;\n {4}'' '';\n {2}\}$/m)
  t.match(nginx, /keepalive 16;[^]*proxy_http_version 1\.1;\n {6}proxy_set_header Upgrade \$http_upgrade;\n {6}proxy_set_header Connection \$connection_upgrade;/)
  t.notMatch(nginx, /Connection "close"|Connection close/)
  t.match(proxyConfig('apache', options('apache')), /ServerLimit 1\n/)
  t.match(proxyConfig('haproxy', options('haproxy')), /^ {2}http-reuse always$/m)
  t.match(proxyConfig('caddy', options('caddy')), /^\t{3}keepalive 60s$/m)
})

t.test('user and group', async (t) => {
  const none = Object.fromEntries(proxyKinds.map((kind) => [kind, proxyConfig(kind, options(kind))]))
  t.notMatch(none.nginx, /^user /m)
  t.notMatch(none.apache, /^User /m)
  t.notMatch(none.haproxy, /^ {2}user /m)
  t.match(proxyConfig('nginx', options('nginx', { user: 'www-data' })), /^user www-data www-data;$/m, 'group defaults to the user')
  t.match(proxyConfig('nginx', options('nginx', { user: 'nobody', group: 'nogroup' })), /^user nobody nogroup;$/m)
  t.match(proxyConfig('apache', options('apache', { user: 'www-data' })), /^User www-data\nGroup www-data$/m)
  t.match(proxyConfig('haproxy', options('haproxy', { user: 'haproxy', group: 'haproxy' })), /^ {2}user haproxy\n {2}group haproxy$/m)
  t.notMatch(proxyConfig('caddy', options('caddy', { user: 'caddy' })), /caddy run.*user|^\s*user /m, 'Caddy does not switch users')
})

t.test('a shared secret header', async (t) => {
  const secret = { header: 'X-Proxy-Secret', value: 'c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1wcm94eQ' }
  const values: Record<ProxyKind, string> = {
    nginx: `"${secret.value}";`,
    apache: `"${secret.value}"`,
    haproxy: secret.value,
    caddy: secret.value
  }
  for (const kind of proxyKinds) {
    const text = proxyConfig(kind, options(kind, { secret }))
    t.equal(setHeaders(kind, text).get('x-proxy-secret'), values[kind], `${kind}: sets the secret`)
    t.match(text, "secret: { header: 'X-Proxy-Secret', value: process.env.PROXY_SECRET }", `${kind}: registration hint`)
    t.notOk(setHeaders(kind, proxyConfig(kind, options(kind))).has('x-proxy-secret'), `${kind}: no secret unless asked`)
  }
})

t.test('paths: work dir, Apache modules, HAProxy key file', async (t) => {
  const nginx = proxyConfig('nginx', options('nginx'))
  for (const line of ['pid /var/lib/proxy/nginx.pid;', 'error_log /var/lib/proxy/error.log warn;', '  proxy_temp_path /var/lib/proxy/proxy_temp;']) {
    t.ok(nginx.includes(line), line)
  }
  t.match(proxyConfig('apache', options('apache')), 'LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so')
  t.match(proxyConfig('apache', options('apache', { apacheModulesDir: '/usr/lib64/httpd/modules' })), 'LoadModule ssl_module /usr/lib64/httpd/modules/mod_ssl.so')
  t.match(proxyConfig('haproxy', options('haproxy', { serverKeyPath: '/etc/proxy/server.pem.key' })), 'crt /etc/proxy/server.pem ')
  t.throws(() => proxyConfig('haproxy', options('haproxy', { serverKeyPath: '/etc/proxy/other.key' })), /serverKeyPath must be serverCertPath itself/)
  t.match(proxyConfig('caddy', options('caddy')), '\tstorage file_system /var/lib/proxy/caddy\n', 'Caddy storage')
})

t.test('Caddy gets tabs, as caddy fmt writes them; the others keep spaces', async (t) => {
  const caddy = proxyConfig('caddy', options('caddy'))
  t.notMatch(caddy, /^ +/m, 'no line starts with a space')
  t.match(caddy, /^\t\t\tmode verify_if_given$/m)
  t.notMatch(proxyConfig('nginx', options('nginx')), /\t/)
})

t.test('each configuration ends with one newline and has no trailing blanks', async (t) => {
  for (const kind of proxyKinds) {
    const text = proxyConfig(kind, options(kind, { verify: 'required', user: 'proxy', secret: { header: 'X-Proxy-Secret', value: 'abcdefghijklmnop' } }))
    t.ok(text.endsWith('}\n') || text.endsWith('>\n') || text.endsWith('sock\n') || /\n[^\n]+\n$/.test(text), `${kind}: one final newline`)
    t.notOk(text.endsWith('\n\n'), `${kind}: not two`)
    t.notMatch(text, /[ \t]$/m, `${kind}: no trailing blanks`)
  }
})

t.test('bad options throw a TypeError naming the option', async (t) => {
  const cases: Array<[string, unknown, unknown, RegExp]> = [
    ['unknown kind', 'traefik', options('nginx'), /^proxyConfig: kind must be one of nginx, apache, haproxy, caddy$/],
    ['options missing', 'nginx', undefined, /options must be an object/],
    ['options an array', 'nginx', [], /options must be an object/],
    ['listen missing', 'nginx', { ...options('nginx'), listen: undefined }, /options\.listen must be/],
    ['upstream null', 'nginx', { ...options('nginx'), upstream: null }, /options\.upstream must be/],
    ['listen host empty', 'nginx', options('nginx', { listen: { host: '', port: 1 } }), /options\.listen\.host must be an IP address or a host name/],
    ['listen host with a space', 'nginx', options('nginx', { listen: { host: 'a b', port: 1 } }), /options\.listen\.host/],
    ['listen host not a string', 'nginx', options('nginx', { listen: { host: 1 as unknown as string, port: 1 } }), /options\.listen\.host/],
    ['port 0', 'nginx', options('nginx', { listen: { host: '::1', port: 0 } }), /options\.listen\.port must be an integer from 1 to 65535/],
    ['port too big', 'nginx', options('nginx', { listen: { host: '::1', port: 65536 } }), /options\.listen\.port/],
    ['port fractional', 'nginx', options('nginx', { listen: { host: '::1', port: 1.5 } }), /options\.listen\.port/],
    ['port a string', 'nginx', options('nginx', { listen: { host: '::1', port: '443' as unknown as number } }), /options\.listen\.port/],
    ['upstream host injection', 'nginx', options('nginx', { upstream: { host: '127.0.0.1;\n', port: 3000 } }), /options\.upstream\.host/],
    ['upstream port', 'nginx', options('nginx', { upstream: { host: '127.0.0.1', port: -1 } }), /options\.upstream\.port/],
    ['socket and host', 'nginx', options('nginx', { upstream: { socket: '/run/a.sock', host: '127.0.0.1' } as unknown as { socket: string } }), /options\.upstream takes \{ host, port \} or \{ socket \}, not both/],
    ['socket and port', 'nginx', options('nginx', { upstream: { socket: '/run/a.sock', port: 1 } as unknown as { socket: string } }), /not both/],
    ['relative socket', 'nginx', options('nginx', { upstream: { socket: 'run/a.sock' } }), /options\.upstream\.socket must be an absolute path/],
    ['server name an IP', 'caddy', options('caddy', { serverName: '127.0.0.1' }), /options\.serverName must be a host name, not an IP address/],
    ['server name with a port', 'caddy', options('caddy', { serverName: 'a.example:1' }), /options\.serverName/],
    ['server name not a string', 'nginx', options('nginx', { serverName: 1 as unknown as string }), /options\.serverName/],
    ['verify', 'nginx', options('nginx', { verify: 'on' as 'optional' }), /options\.verify must be 'optional' or 'required'/],
    ['cert path with a space', 'nginx', options('nginx', { serverCertPath: '/etc/my certs/a.pem' }), /options\.serverCertPath must be an absolute path/],
    ['cert path with a quote', 'apache', options('apache', { serverCertPath: '/etc/"a.pem' }), /options\.serverCertPath/],
    ['cert path with ;', 'nginx', options('nginx', { serverCertPath: '/etc/a.pem;user' }), /options\.serverCertPath/],
    ['cert path with a placeholder', 'caddy', options('caddy', { serverCertPath: '/etc/{env.X}' }), /options\.serverCertPath/],
    ['key path with ..', 'nginx', options('nginx', { serverKeyPath: '/etc/../root/key' }), /options\.serverKeyPath/],
    ['key path not a string', 'nginx', options('nginx', { serverKeyPath: 1 as unknown as string }), /options\.serverKeyPath/],
    ['CA path with a newline', 'nginx', options('nginx', { clientCaPath: '/etc/ca.pem\nuser root;' }), /options\.clientCaPath/],
    ['work dir relative', 'nginx', options('nginx', { workDir: 'tmp' }), /options\.workDir/],
    ['modules dir with $', 'apache', options('apache', { apacheModulesDir: '/usr/$APACHE_MODULES' }), /options\.apacheModulesDir/],
    ['user with a space', 'nginx', options('nginx', { user: 'www data' }), /options\.user must be a user or group name/],
    ['user a number', 'nginx', options('nginx', { user: 0 as unknown as string }), /options\.user/],
    ['group with ;', 'nginx', options('nginx', { user: 'a', group: 'b;' }), /options\.group must be a user or group name/],
    ['group without user', 'nginx', options('nginx', { group: 'nogroup' }), /options\.group needs options\.user/],
    ['secret not an object', 'nginx', options('nginx', { secret: 'x' as unknown as { header: string, value: string } }), /options\.secret must be \{ header, value \}/],
    ['secret header with :', 'nginx', options('nginx', { secret: { header: 'X-A:', value: 'abcdefghijklmnop' } }), /options\.secret\.header must be a header name/],
    ['secret header missing', 'nginx', options('nginx', { secret: { value: 'abcdefghijklmnop' } as unknown as { header: string, value: string } }), /options\.secret\.header/],
    ['secret header a certificate header', 'haproxy', options('haproxy', { secret: { header: 'X-SSL-Client-Used', value: 'abcdefghijklmnop' } }), /options\.secret\.header must not be a certificate header/],
    ['secret too short', 'nginx', options('nginx', { secret: { header: 'X-S', value: 'short' } }), /options\.secret\.value must be 16 to 512 characters/],
    ['secret with a quote', 'nginx', options('nginx', { secret: { header: 'X-S', value: 'abcdefghijklmnop"' } }), /options\.secret\.value/],
    ['secret with %', 'haproxy', options('haproxy', { secret: { header: 'X-S', value: 'abcdefghijklmnop%[src]' } }), /options\.secret\.value/],
    ['secret with a placeholder', 'caddy', options('caddy', { secret: { header: 'X-S', value: '{http.request.uri}abcdefghij' } }), /options\.secret\.value/],
    ['secret not a string', 'nginx', options('nginx', { secret: { header: 'X-S', value: 1 as unknown as string } }), /options\.secret\.value/]
  ]
  for (const [name, kind, given, message] of cases) {
    t.throws(() => proxyConfig(kind as ProxyKind, given as ProxyConfigOptions), message, name)
    t.throws(() => proxyConfig(kind as ProxyKind, given as ProxyConfigOptions), TypeError, `${name}: a TypeError`)
  }
})

t.test('docs/proxies.md and the README show exactly what proxyConfig writes for their example\'s paths', async (t) => {
  const docs = await readFile(new URL('../../docs/proxies.md', import.meta.url), 'utf8')
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const fences: Record<ProxyKind, string> = { nginx: 'nginx', apache: 'apache', haproxy: 'haproxy', caddy: 'caddyfile' }
  const block = (text: string, kind: ProxyKind): string | null => {
    const start = text.indexOf('```' + fences[kind] + '\n')
    return start === -1 ? null : text.slice(start + fences[kind].length + 4, text.indexOf('```\n', start + 4))
  }
  for (const kind of proxyKinds) {
    const combined = kind === 'haproxy'
    const expected = proxyConfig(kind, {
      listen: { host: '0.0.0.0', port: 443 },
      upstream: { host: '127.0.0.1', port: 3000 },
      serverCertPath: combined ? '/etc/mtls-proxy/server.pem' : '/etc/mtls-proxy/server-chain.pem',
      serverKeyPath: combined ? '/etc/mtls-proxy/server.pem' : '/etc/mtls-proxy/server.key',
      clientCaPath: '/etc/mtls-proxy/client-ca.pem',
      verify: 'optional',
      workDir: '/var/lib/mtls-proxy',
      ...(kind === 'caddy' ? {} : { user: kind === 'haproxy' ? 'haproxy' : 'www-data' })
    })
    t.equal(block(docs, kind), expected, `${kind}: the docs/proxies.md block`)
  }
  t.equal(block(readme, 'nginx'), block(docs, 'nginx'), 'the README shows the nginx block as docs/proxies.md does')
})
