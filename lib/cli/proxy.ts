import { proxyConfig, proxyKinds, type ProxyConfigOptions, type ProxyKind } from './proxy-config.js'
import { oneOf, stringOption, type Command, type Context } from './command.js'
import { absolute, CliError, existingFile, UsageError } from './io.js'

/** The flag for each option `proxyConfig` can name in an error: the user knows the flags. */
export const proxyConfigFlags: Readonly<Record<string, string>> = Object.freeze({
  kind: 'the proxy',
  options: 'the options',
  'options.listen': '--listen',
  'options.listen.host': '--listen',
  'options.listen.port': '--listen',
  'options.serverName': '--server-name',
  'options.upstream': '--upstream',
  'options.upstream.host': '--upstream',
  'options.upstream.port': '--upstream',
  'options.upstream.socket': '--upstream-socket',
  'options.serverCertPath': '--cert',
  'options.serverKeyPath': '--key',
  'options.clientCaPath': '--client-ca',
  'options.verify': '--verify',
  'options.workDir': '--work-dir',
  'options.user': '--user',
  'options.group': '--group',
  'options.secret': '--secret-header',
  'options.secret.header': '--secret-header',
  'options.secret.value': '--secret-value',
  'options.apacheModulesDir': '--apache-modules-dir'
})

/** `host:port`, `[v6]:port` or a bare port (all interfaces). */
function hostPort (text: string, flag: string, defaultHost: string): { host: string, port: number } {
  const colon = text.lastIndexOf(':')
  const host = colon === -1 ? defaultHost : text.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  const portText = text.slice(colon + 1)
  if (!/^[0-9]{1,5}$/.test(portText)) throw new UsageError(`${flag} must be host:port or a port number`)
  return { host, port: Number(portText) }
}

function translate (error: Error): CliError {
  return new CliError(error.message.replace(/^proxyConfig: (\S+)/, (_, option: string) => proxyConfigFlags[option]))
}

async function run ({ io, values, operand, output }: Context): Promise<unknown> {
  const kind = operand as ProxyKind
  if (!(proxyKinds as readonly string[]).includes(kind)) throw new UsageError(`the proxy must be one of ${proxyKinds.join(', ')}`)
  const path = (name: string, fallback?: string): string => {
    const value = stringOption(values, name) ?? fallback
    if (value === undefined) throw new UsageError(`--${name} is required`)
    return absolute(io.cwd, value)
  }
  // The proxy would refuse to start over a missing file: say so now, while the flag is at hand.
  const file = (name: string, fallback?: string): string => {
    const value = path(name, fallback)
    existingFile(io.cwd, value, `--${name}`)
    return value
  }
  const socket = stringOption(values, 'upstream-socket')
  if (socket !== undefined && values.upstream !== undefined) throw new UsageError('give --upstream or --upstream-socket, not both')
  const secretHeader = stringOption(values, 'secret-header')
  const secretValue = stringOption(values, 'secret-value')
  if ((secretHeader === undefined) !== (secretValue === undefined)) throw new UsageError('--secret-header and --secret-value go together')
  const options: ProxyConfigOptions = {
    listen: hostPort(stringOption(values, 'listen') ?? '443', '--listen', '0.0.0.0'),
    upstream: socket === undefined ? hostPort(stringOption(values, 'upstream') ?? '127.0.0.1:3000', '--upstream', '127.0.0.1') : { socket: absolute(io.cwd, socket) },
    serverCertPath: file('cert'),
    serverKeyPath: file('key'),
    clientCaPath: file('client-ca', 'pki/ca.crt'),
    verify: oneOf(values, 'verify', ['optional', 'required'] as const, 'optional'),
    workDir: path('work-dir', `${kind}-work`)
  }
  for (const name of ['user', 'group', 'server-name'] as const) {
    const value = stringOption(values, name)
    if (value !== undefined) options[name === 'server-name' ? 'serverName' : name] = value
  }
  if (secretHeader !== undefined) options.secret = { header: secretHeader, value: secretValue! }
  const modules = stringOption(values, 'apache-modules-dir')
  if (modules !== undefined) options.apacheModulesDir = absolute(io.cwd, modules)
  let config: string
  try {
    config = proxyConfig(kind, options)
  } catch (error) {
    throw translate(error as Error)
  }
  // The configuration is the output itself, tabs and all (its values were checked by proxyConfig).
  output(config)
  return { kind, options, config }
}

export const proxyConfigCommand: Command = {
  summary: 'print the tested configuration of a reverse proxy in front of Fastify',
  usage: 'proxy-config <nginx|apache|haproxy|caddy> --cert server.crt --key server.key [--listen 443] [--upstream 127.0.0.1:3000] [--json]',
  operand: 'required',
  options: {
    listen: { type: 'string' },
    'server-name': { type: 'string' },
    upstream: { type: 'string' },
    'upstream-socket': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'client-ca': { type: 'string' },
    verify: { type: 'string' },
    'work-dir': { type: 'string' },
    user: { type: 'string' },
    group: { type: 'string' },
    'secret-header': { type: 'string' },
    'secret-value': { type: 'string' },
    'apache-modules-dir': { type: 'string' }
  },
  help: `Prints the configuration the test suite runs against the real proxy, for your ports and paths (relative
paths become absolute; --cert, --key and --client-ca must exist). The proxy terminates mutual TLS and forwards
the certificate in the headers of the plugin's preset of the same name. The comment lines at the top say how
to register the plugin, the file name to save it as, and the lines that create the work directory, check
the file and run the proxy.

  --listen <[host:]port>      where the proxy accepts clients (default: 443 on all interfaces)
  --server-name <host>        the name clients address the proxy by (default: localhost)
  --upstream <host:port>      where Fastify listens (default: 127.0.0.1:3000)
  --upstream-socket <path>    or a Unix socket Fastify listens on
  --cert <file>, --key <file> the proxy's own certificate (with its intermediates) and key (required;
                              HAProxy: the key in the same file, or in <cert>.key)
  --client-ca <file>          the CA(s) of client certificates (default: pki/ca.crt)
  --verify <mode>             optional (default: the app decides per route) or required
  --work-dir <dir>            pid file, logs, temporary files (default: ./<proxy>-work)
  --user <name>, --group <name>   the account workers run as when the proxy starts as root
  --secret-header <name> --secret-value <value>   a shared secret the proxy adds (the plugin's proxy.secret)
  --apache-modules-dir <dir>  where mod_ssl.so and friends are (default: /usr/lib/apache2/modules)`,
  run
}
