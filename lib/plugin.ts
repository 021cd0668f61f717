import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  InjectOptions,
  LightMyRequestResponse
} from 'fastify'
import fp from 'fastify-plugin'
import { randomBytes, type X509Certificate } from 'node:crypto'
import { Server as TlsServer } from 'node:tls'
import { decide, identify, onRequestHook, refusal, testHeader, type State } from './authenticate.js'
import { certificatesOf, RevocationList, SYNC_LOAD_BYTES } from './revocation/crl.js'
import { ClientCertInvalidOptionError } from './errors.js'
import { certificateFields, composeIdentity, type ClientCertIdentity, type IdentityOptions } from './identity.js'
import {
  compileRoutePolicy,
  loadCertificates,
  normalizeOptions,
  type ClientCertRouteOptions,
  type FastifyClientCertOptions,
  type PemOrDerInput,
  type Settings
} from './options.js'
import { ProxySource } from './sources/proxy.js'
import { guardHandshakes } from './sources/tls.js'
import { UserCache } from './policy/user-cache.js'

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
   * Replaces the CRLs and/or the proxy CAs, for the next request, on open connections too. `null` removes
   * them; an omitted key keeps what is loaded. Lists up to 512 KiB are in force when it returns; a larger
   * CRL is parsed in slices that never stall the event loop, and the returned promise resolves once the new
   * lists are in force (the old ones stay until then; reloads take effect in call order). Input of the wrong
   * type, or any bad input of a small reload, throws at once; a large CRL that does not parse rejects. Either
   * way the old lists stay.
   */
  reload: (lists: { crl?: PemOrDerInput | null, ca?: PemOrDerInput | null }) => Promise<void>
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
  /** What the caches hold now, for metrics: users found by `resolveUser`, forwarded certificates that verified. */
  stats: () => ClientCertCacheStats
}

export interface ClientCertCacheStats {
  users: { entries: number }
  /** `bytes` is the estimate `cache.certificates.maxBytes` bounds. Always empty in mode `'tls'`. */
  certificates: { entries: number, bytes: number }
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
  if (settings.mode !== 'proxy' && fastify.server instanceof TlsServer) guardHandshakes(fastify.server)
  const state: State = {
    settings,
    generation: 0,
    crl: null,
    proxyCa: settings.proxyCa,
    proxy: settings.proxy === null ? null : new ProxySource(settings.proxy, settings.cache.certificates, fastify.server),
    users: new UserCache(settings.cache.users.max, settings.cache.users.ttl),
    tokens: settings.testing ? new Map() : null
  }

  fastify.decorateRequest('clientCert', null)
  if (settings.resolveUser !== null && !fastify.hasRequestDecorator('user')) fastify.decorateRequest('user', null)

  const secret = settings.proxy?.secret
  if (secret != null) {
    // Every route of the scope, clientCert: false ones and 404s too: the route's code and its logs never see
    // the shared secret. The check reads it from rawHeaders.
    fastify.addHook('onRequest', function clientCertDropSecret (request, _reply, done) {
      delete request.headers[secret.header]
      done()
    })
  }

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

  // The configured trust a CRL's signature is checked with: proxy.ca, and in direct mode the server's ca
  // (read again at each reload: setSecureContext() may have replaced it). Never what a client sent.
  const trustOf = (anchors: readonly X509Certificate[] | null): X509Certificate[] => {
    const server = fastify.server as unknown as { ca?: unknown }
    const serverCa = settings.mode !== 'proxy' && server instanceof TlsServer ? certificatesOf(server.ca) : []
    return [...(anchors ?? []), ...serverCa]
  }
  if (settings.crl !== null) state.crl = await RevocationList.load(settings.crl, 'crl', trustOf(state.proxyCa))
  // The tail of the reloads still in progress; null when the lists in force are the last ones asked for.
  let pendingReload: Promise<void> | null = null

  const decorator: ClientCertDecorator = {
    reload: function reload (lists) {
      if (lists === null || typeof lists !== 'object') throw new ClientCertInvalidOptionError('reload', 'takes { crl, ca }')
      for (const key of Object.keys(lists)) {
        if (key !== 'crl' && key !== 'ca') throw new ClientCertInvalidOptionError('reload.' + key, 'is not a reloadable list (crl, ca)')
      }
      const small = pendingReload === null && (lists.crl === undefined
        ? (state.crl?.bytes ?? 0) <= SYNC_LOAD_BYTES
        : RevocationList.inputBytes(lists.crl) <= SYNC_LOAD_BYTES)
      const smallCrl = lists.crl == null || !small ? null : RevocationList.from(lists.crl, 'reload.crl')
      let proxyCa: X509Certificate[] | null | undefined
      if (lists.ca !== undefined) {
        if (state.proxy === null) throw new ClientCertInvalidOptionError('reload.ca', "is the proxy CA list: only used in mode 'proxy' or 'auto'")
        if (lists.ca === null && !settings.proxy!.preset.proxyVerifies) {
          throw new ClientCertInvalidOptionError('reload.ca', `cannot be removed: preset '${settings.proxy!.preset.name}' needs it`)
        }
        proxyCa = lists.ca === null ? null : loadCertificates(lists.ca, 'reload.ca')
      }
      // A large CRL is parsed in slices from now on, and takes effect after the reloads asked for before it.
      const parsing = lists.crl == null || small ? null : RevocationList.load(lists.crl, 'reload.crl')
      // Its failure is reported by the promise reload() returns, once the reloads before it are done.
      parsing?.catch(() => {})
      const apply = (crl: RevocationList | null, anchors: X509Certificate[] | null): void => {
        state.crl = crl
        state.proxyCa = anchors
        state.generation++
        state.users.clear()
      }
      if (small) {
        const anchors = proxyCa === undefined ? state.proxyCa : proxyCa
        const list = lists.crl === undefined ? state.crl : smallCrl
        apply(list === null ? null : list.bind(trustOf(anchors)), anchors)
        return Promise.resolve()
      }
      // Until this reload is done, the lists in force stay in force; reloads take effect in call order.
      const done = (pendingReload ?? Promise.resolve()).then(async function applyReload () {
        const anchors = proxyCa === undefined ? state.proxyCa : proxyCa
        const list = lists.crl === undefined ? state.crl : lists.crl === null ? null : await parsing!
        apply(list === null ? null : await list.bindLater(trustOf(anchors)), anchors)
      })
      const settled = done.then(() => {}, () => {})
      pendingReload = settled
      settled.then(() => { if (pendingReload === settled) pendingReload = null }, () => {})
      return done
    },
    verify: function verify (verifyOptions = {}) {
      const policy = compileRoutePolicy({ required: true, ...verifyOptions }, settings, 'clientCert.verify()')!
      return async function verifyClientCert (request: FastifyRequest) {
        let identity: ClientCertIdentity | null
        try {
          identity = identify(state, request, true)
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
    },
    stats: function stats () {
      return { users: { entries: state.users.size }, certificates: state.proxy?.stats() ?? { entries: 0, bytes: 0 } }
    }
  }
  fastify.decorate('clientCert', decorator)
}

/** The plugin: `app.register(fastifyClientCert, options)`. */
export const fastifyClientCert: FastifyPluginAsync<FastifyClientCertOptions> = fp(plugin, {
  fastify: '5.x',
  name: 'fastify-client-cert'
})
