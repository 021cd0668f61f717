import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  InjectOptions,
  LightMyRequestResponse
} from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes, type X509Certificate } from 'node:crypto'
import { Server as TlsServer } from 'node:tls'
import { RevocationList } from './crl.js'
import {
  ClientCertBadHeaderError,
  ClientCertForbiddenError,
  ClientCertInternalError,
  ClientCertInvalidError,
  ClientCertInvalidOptionError,
  ClientCertMissingError,
  ClientCertUntrustedSourceError
} from './errors.js'
import { certificateFields, composeIdentity, type ClientCertIdentity, type IdentityOptions } from './identity.js'
import {
  compileRoutePolicy,
  loadCertificates,
  normalizeOptions,
  type ClientCertRouteOptions,
  type FastifyClientCertOptions,
  type PemOrDerInput,
  type RoutePolicy,
  type Settings
} from './options.js'
import { CertificateParseError } from './parse-error.js'
import { ProxySource, type DecodedForward, type PeerConnection } from './proxy-source.js'
import { connectionOf, readPeer, samePeer, type TlsPeer } from './tls-source.js'
import { UserCache } from './user-cache.js'
import { judge } from './verdict.js'

/**
 * Merge point for the type of `request.user`, as `@fastify/jwt` offers one:
 * `declare module 'fastify-client-cert' { interface FastifyClientCertUser { user: MyUser } }`.
 */
export interface FastifyClientCertUser {}

export type ClientCertUser = FastifyClientCertUser extends { user: infer User } ? User : unknown

/** What a test hands `injectAs`: a certificate (verified unless said otherwise) or `null` for none. */
export interface InjectIdentity extends IdentityOptions {
  certificate: string | Buffer | X509Certificate | null
}

/** `fastify.clientCert`. */
export interface ClientCertDecorator {
  /**
   * Replaces the CRLs and/or the proxy CAs. Takes effect for the next request, on open connections too.
   * `null` removes them; an omitted key keeps what is loaded. Throws (and keeps the old lists) on bad input.
   */
  reload: (lists: { crl?: PemOrDerInput | null, ca?: PemOrDerInput | null }) => void
  /**
   * A hook that authenticates like a `required: true` route (with `allow` when given), for `preHandler`
   * or `@fastify/auth`. It rejects with the same errors the route policy sends.
   */
  verify: (options?: Pick<ClientCertRouteOptions, 'allow'>) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  /**
   * Test-only: `inject()` a request that carries `identity`. Needs `testing: true` (refused in production);
   * each call mints a single-use random token that only this process knows.
   */
  injectAs: (identity: InjectIdentity, options: InjectOptions | string) => Promise<LightMyRequestResponse>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The client certificate's identity, or `null` when none reached the app. */
    clientCert: ClientCertIdentity | null
    /** What `resolveUser` returned for the request's certificate. */
    user: ClientCertUser
  }
  interface FastifyInstance {
    clientCert: ClientCertDecorator
  }
  interface FastifyContextConfig {
    /** `false`: the plugin does nothing for the route; an object overrides the plugin's defaults. */
    clientCert?: false | ClientCertRouteOptions
  }
}

const kPeer = Symbol('fastify-client-cert.peer')
const kVerdict = Symbol('fastify-client-cert.verdict')
const testHeader = 'x-fastify-client-cert-test-token'

interface Verdict {
  /** Several registrations (encapsulated contexts) may judge one connection, each by its own lists. */
  state: State
  generation: number
  recheckAt: number
  identity: ClientCertIdentity | null
}

interface PeerEntry {
  peer: TlsPeer
  [kVerdict]?: Verdict
}

type Holder = Record<PropertyKey, unknown>

interface State {
  settings: Settings
  generation: number
  crl: RevocationList | null
  proxyCa: X509Certificate[] | null
  proxy: ProxySource | null
  users: UserCache
  tokens: Map<string, ClientCertIdentity | null> | null
}

function tlsIdentity (state: State, raw: unknown, now: number): ClientCertIdentity | null {
  const connection = connectionOf(raw)
  if (connection === null) return null
  const holder = connection.holder as Holder
  let entry = holder[kPeer] as PeerEntry | undefined
  if (entry === undefined || !samePeer(entry.peer, connection.socket)) {
    entry = { peer: readPeer(connection.socket) }
    holder[kPeer] = entry
  }
  const memo = entry[kVerdict]
  if (memo !== undefined && memo.state === state && memo.generation === state.generation && now <= memo.recheckAt) return memo.identity
  const peer = entry.peer
  let identity: ClientCertIdentity | null = null
  let recheckAt = Infinity
  if (peer.fields !== null) {
    const verdict = judge(state, peer.fields, peer.authorized, peer.authorizationError, peer.issuer, null, now)
    recheckAt = verdict.recheckAt
    identity = composeIdentity(peer.fields, { source: 'tls', proxy: null, verified: verdict.verified, verifyError: verdict.verifyError })
  }
  entry[kVerdict] = { state, generation: state.generation, recheckAt, identity }
  return identity
}

function proxyIdentity (state: State, decoded: DecodedForward & { [kVerdict]?: Verdict }, presetName: string, now: number): ClientCertIdentity | null {
  const memo = decoded[kVerdict]
  if (memo !== undefined && memo.state === state && memo.generation === state.generation && now <= memo.recheckAt) return memo.identity
  let identity: ClientCertIdentity | null = null
  let recheckAt = Infinity
  if (decoded.fields !== null) {
    const verdict = judge(state, decoded.fields, decoded.proxyVerified, decoded.proxyError, null, decoded.chain, now)
    recheckAt = verdict.recheckAt
    identity = composeIdentity(decoded.fields, { source: 'proxy', proxy: presetName, verified: verdict.verified, verifyError: verdict.verifyError })
  }
  decoded[kVerdict] = { state, generation: state.generation, recheckAt, identity }
  return identity
}

/** The request's identity by the configured mode; throws 400 errors for spoofed or malformed headers. */
function identify (state: State, request: FastifyRequest): ClientCertIdentity | null {
  const now = Date.now()
  const raw = request.raw
  if (state.tokens !== null) {
    const token = request.headers[testHeader]
    if (token !== undefined) return injectedIdentity(state, token)
  }
  const proxy = state.proxy
  if (proxy === null) return tlsIdentity(state, raw, now)
  const connection = raw as unknown as PeerConnection
  const lookup = proxy.lookup(raw.rawHeaders, connection)
  // The shared secret has done its work; the route's code (and its logs) never see it.
  const secret = state.settings.proxy!.secret
  if (secret !== null) delete request.headers[secret.header]
  if (lookup.kind === 'forwarded') return proxyIdentity(state, lookup.decoded, state.settings.proxy!.preset.name, now)
  // 'auto': a proxy's own connection has no user certificate, even when the proxy presented one itself.
  if (state.settings.mode === 'proxy' || proxy.isTrusted(connection)) return null
  return tlsIdentity(state, raw, now)
}

function injectedIdentity (state: State, token: string | string[]): ClientCertIdentity | null {
  // Node joins a repeated header into one string, which is no token either.
  const key = String(token)
  const identity = state.tokens!.get(key)
  if (identity === undefined) throw new ClientCertUntrustedSourceError()
  state.tokens!.delete(key)
  return identity
}

function describe (identity: ClientCertIdentity): Record<string, unknown> {
  return {
    subject: identity.subject,
    issuer: identity.issuer,
    serialNumber: identity.serialNumber,
    fingerprint256: identity.fingerprint256,
    source: identity.source
  }
}

/** The error to answer with when no identity could be read, logged; never a message that leaks details. */
function refusal (request: FastifyRequest, error: unknown): Error {
  if (error instanceof ClientCertUntrustedSourceError) {
    request.log.warn({ remoteAddress: request.raw.socket.remoteAddress }, 'client certificate headers refused from an untrusted source (spoofing attempt?)')
    return error
  }
  if (error instanceof ClientCertBadHeaderError) {
    const cause = error.cause instanceof Error ? error.cause.message : undefined
    request.log.warn({ reason: cause }, 'malformed client certificate headers refused')
    return error
  }
  if (error instanceof CertificateParseError) {
    // A certificate TLS accepted but whose names the codecs refuse: fail closed, never guess an identity.
    request.log.warn({ reason: error.message }, 'client certificate could not be read')
    return new ClientCertInvalidError()
  }
  request.log.error({ err: error }, 'client certificate authentication failed')
  return new ClientCertInternalError()
}

/**
 * Applies a route policy to an identity. Returns the error to answer with, `null` to go on, or a promise of
 * either when `authorize` / `resolveUser` are configured.
 */
function decide (state: State, policy: RoutePolicy, identity: ClientCertIdentity | null, request: FastifyRequest): Error | null | Promise<Error | null> {
  if (identity === null) {
    if (!policy.required) return null
    request.log.info('client certificate refused: none presented')
    return new ClientCertMissingError()
  }
  if (!identity.verified) {
    request.log.info({ clientCert: describe(identity), verifyError: identity.verifyError }, 'client certificate not verified')
    return policy.required ? new ClientCertInvalidError() : null
  }
  if (policy.allow !== null && !policy.allow(identity)) {
    request.log.info({ clientCert: describe(identity) }, 'client certificate refused by allow rules')
    return new ClientCertForbiddenError()
  }
  const { authorize, resolveUser } = state.settings
  if (authorize === null && resolveUser === null) {
    request.log.debug({ clientCert: describe(identity) }, 'client certificate admitted')
    return null
  }
  return runHooks(state, identity, request)
}

async function runHooks (state: State, identity: ClientCertIdentity, request: FastifyRequest): Promise<Error | null> {
  const { authorize, resolveUser } = state.settings
  if (authorize !== null) {
    let admitted: boolean
    try {
      admitted = await authorize(identity, request)
    } catch (error) {
      request.log.error({ err: error, clientCert: describe(identity) }, 'authorize threw: request refused')
      return new ClientCertInternalError()
    }
    if (admitted !== true) {
      request.log.info({ clientCert: describe(identity) }, 'client certificate refused by authorize')
      return new ClientCertForbiddenError()
    }
  }
  if (resolveUser !== null) {
    let user: unknown
    try {
      user = await state.users.resolve(identity, async function loadUser () { return await resolveUser(identity, request) })
    } catch (error) {
      request.log.error({ err: error, clientCert: describe(identity) }, 'resolveUser threw: request refused')
      return new ClientCertInternalError()
    }
    if (user === null || user === undefined) {
      request.log.info({ clientCert: describe(identity) }, 'client certificate refused: resolveUser found no user')
      return new ClientCertForbiddenError()
    }
    request.user = user as ClientCertUser
  }
  request.log.debug({ clientCert: describe(identity) }, 'client certificate admitted')
  return null
}

function onRequestHook (state: State, policy: RoutePolicy) {
  return function clientCertOnRequest (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let identity: ClientCertIdentity | null
    try {
      identity = identify(state, request)
    } catch (error) {
      done(refusal(request, error))
      return
    }
    request.clientCert = identity
    const outcome = decide(state, policy, identity, request)
    if (outcome === null) done()
    else if (outcome instanceof Error) done(outcome)
    else outcome.then((error) => { error === null ? done() : done(error) }, done)
  }
}

function checkServer (fastify: FastifyInstance, settings: Settings): void {
  if (settings.mode === 'proxy') return
  const server = fastify.server as unknown
  const tls = server instanceof TlsServer
  if (settings.mode === 'tls') {
    if (!tls) {
      throw new ClientCertInvalidOptionError('mode', "'tls' needs Fastify to terminate TLS: create it with https: { key, cert, ca, requestCert: true, rejectUnauthorized: false }")
    }
    if ((server as { requestCert?: boolean }).requestCert !== true) {
      throw new ClientCertInvalidOptionError('mode', "'tls' needs the server to ask for client certificates: set https.requestCert to true")
    }
  } else if (tls && (server as { requestCert?: boolean }).requestCert !== true) {
    fastify.log.warn("fastify-client-cert: mode 'auto' on a TLS server without https.requestCert: direct clients can never present a certificate")
  }
}

async function plugin (fastify: FastifyInstance, options: FastifyClientCertOptions): Promise<void> {
  const settings = normalizeOptions(options)
  checkServer(fastify, settings)
  const state: State = {
    settings,
    generation: 0,
    crl: settings.crl,
    proxyCa: settings.proxyCa,
    proxy: settings.proxy === null ? null : new ProxySource(settings.proxy, settings.cacheMax, settings.cacheTtl),
    users: new UserCache(settings.cacheMax, settings.cacheTtl),
    tokens: settings.testing ? new Map() : null
  }

  fastify.decorateRequest('clientCert', null)
  if (settings.resolveUser !== null && !fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null)

  let optionalRoutes = 0
  fastify.addHook('onRoute', function clientCertOnRoute (routeOptions) {
    const route = `${String(routeOptions.method)} ${routeOptions.url}`
    const policy = compileRoutePolicy(routeOptions.config?.clientCert, settings, route)
    if (policy === null || !policy.required) optionalRoutes++
    if (policy === null) return
    const hook = onRequestHook(state, policy)
    const existing = routeOptions.onRequest
    // First, so the route's own onRequest hooks already see request.clientCert.
    routeOptions.onRequest = existing === undefined ? [hook] : [hook, ...(Array.isArray(existing) ? existing : [existing])]
  })

  fastify.addHook('onReady', function clientCertOnReady (ready) {
    const server = fastify.server as unknown as { rejectUnauthorized?: boolean }
    if (settings.mode !== 'proxy' && server instanceof TlsServer && server.rejectUnauthorized === true && optionalRoutes > 0) {
      fastify.log.warn('fastify-client-cert: https.rejectUnauthorized is true, so TLS refuses clients without a valid certificate before any route runs: optional routes and clientCert: false routes cannot serve them. Set https.rejectUnauthorized to false and let the plugin decide per route.')
    }
    ready()
  })

  const decorator: ClientCertDecorator = {
    reload: function reload (lists) {
      if (lists === null || typeof lists !== 'object') throw new ClientCertInvalidOptionError('reload', 'takes { crl, ca }')
      for (const key of Object.keys(lists)) {
        if (key !== 'crl' && key !== 'ca') throw new ClientCertInvalidOptionError('reload.' + key, 'is not a reloadable list (crl, ca)')
      }
      let crl = state.crl
      let proxyCa = state.proxyCa
      if (lists.crl !== undefined) crl = lists.crl === null ? null : RevocationList.from(lists.crl, 'reload.crl')
      if (lists.ca !== undefined) {
        if (state.proxy === null) throw new ClientCertInvalidOptionError('reload.ca', "is the proxy CA list: only used in mode 'proxy' or 'auto'")
        if (lists.ca === null && !settings.proxy!.preset.proxyVerifies) {
          throw new ClientCertInvalidOptionError('reload.ca', `cannot be removed: preset '${settings.proxy!.preset.name}' needs it`)
        }
        proxyCa = lists.ca === null ? null : loadCertificates(lists.ca, 'reload.ca')
      }
      state.crl = crl
      state.proxyCa = proxyCa
      state.generation++
      state.users.clear()
    },
    verify: function verify (verifyOptions = {}) {
      const policy = compileRoutePolicy({ required: true, ...verifyOptions }, settings, 'clientCert.verify()')!
      return async function verifyClientCert (request: FastifyRequest) {
        let identity: ClientCertIdentity | null
        try {
          identity = identify(state, request)
        } catch (error) {
          throw refusal(request, error)
        }
        request.clientCert = identity
        const error = await decide(state, policy, identity, request)
        if (error !== null) throw error
      }
    },
    injectAs: function injectAs (identity, injectOptions) {
      if (state.tokens === null) {
        throw new ClientCertInvalidOptionError('testing', 'must be true to use injectAs() (tests only; refused in production)')
      }
      const token = randomBytes(24).toString('base64url')
      state.tokens.set(token, identity.certificate === null
        ? null
        : composeIdentity(certificateFields(identity.certificate), {
          source: identity.source ?? 'tls',
          proxy: identity.source === 'proxy' ? (identity.proxy ?? 'custom') : null,
          verified: identity.verified ?? true,
          verifyError: identity.verifyError ?? null
        }))
      const base: InjectOptions = typeof injectOptions === 'string' ? { url: injectOptions } : injectOptions
      return fastify.inject({ ...base, headers: { ...base.headers, [testHeader]: token } })
    }
  }
  fastify.decorate('clientCert', decorator)
}

/** The plugin: `app.register(fastifyClientCert, options)`. */
export const fastifyClientCert: FastifyPluginAsync<FastifyClientCertOptions> = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-client-cert'
})
