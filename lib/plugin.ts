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
import { RevocationList } from './revocation/crl.js'
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
