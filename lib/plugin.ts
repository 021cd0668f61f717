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
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import { decide, identify, onRequestHook, refusal, revocationPending, testHeader, type State } from './authenticate.js'
import { certificatesOf, RevocationList, SYNC_LOAD_BYTES } from './revocation/crl.js'
import { DistributionPoints } from './revocation/distribution-points.js'
import { OcspClient } from './revocation/ocsp.js'
import { ClientCertInvalidError, ClientCertInvalidOptionError, ClientCertMissingError } from './errors.js'
import {
  certificateFields,
  composeIdentity,
  type ClientCertIdentity,
  type IdentityOptions,
  type VerifiedClientCertIdentity
} from './identity.js'
import {
  compileRoutePolicy,
  loadCertificates,
  loadSpiffeOption,
  normalizeOptions,
  type ClientCertRouteOptions,
  type FastifyClientCertOptions,
  type PemOrDerInput,
  type Settings,
  type SpiffeOptions
} from './options.js'
import { FileWatcher, prepareSecureContext, swapSecureContext, type HttpsMaterial, type PreparedContext } from './rotation.js'
import type { SpiffeBundles } from './policy/spiffe-bundles.js'
import { ProxySource } from './sources/proxy.js'
import { guardHandshakes, setServerAnchors } from './sources/tls.js'
import { publishDecision } from './observability.js'
import { routeCoverage } from './route-coverage.js'
import { UserCache } from './policy/user-cache.js'

/**
 * Merge point for what `resolveUser` returns and where it goes, as `@fastify/jwt` offers one:
 * `declare module 'fastify-client-cert' { interface FastifyClientCertUser { user: MyUser, userProperty: 'account' } }`.
 * `user` types the user (default `unknown`); `userProperty` names the request property (default `'user'`), and
 * must then be given as the `userProperty` option too.
 */
export interface FastifyClientCertUser {}

/** The user `resolveUser` returns, as declared in `FastifyClientCertUser`. */
export type ClientCertUser = FastifyClientCertUser extends { user: infer User } ? User : unknown

/** The request property `resolveUser` fills, as declared in `FastifyClientCertUser`. */
export type ClientCertUserProperty = FastifyClientCertUser extends { userProperty: infer Name extends string } ? Name : 'user'

/**
 * The request property that holds the user: `null` on routes that resolve none (no `resolveUser`, no verified
 * certificate on an optional route, `clientCert: false`). FastifyRequest extends it rather than declaring the
 * property, so another plugin's `user` (@fastify/jwt's) may declare its own type beside it without a clash.
 */
export type ClientCertUserHolder = { [Name in ClientCertUserProperty]: ClientCertUser | null }

/** What a test hands `injectAs`: a certificate (verified unless said otherwise) or `null` for none. */
export interface InjectIdentity extends IdentityOptions {
  certificate: string | Buffer | X509Certificate | null
}

/** What `reload()` replaces; an omitted key keeps what is in force. */
export interface ClientCertReload {
  /** The CRLs; `null` removes them. */
  crl?: PemOrDerInput | null
  /** The proxy CAs (`proxy.ca`); `null` removes them where the preset allows. */
  ca?: PemOrDerInput | null
  /**
   * Direct TLS: the server's own key and certificate (together) and/or the CA bundle that verifies clients,
   * swapped in for new handshakes; open connections verified under a CA no longer listed are no longer verified.
   */
  https?: HttpsMaterial
  /** The SPIFFE bundles (`spiffe`); `null` removes the binding. */
  spiffe?: SpiffeOptions | null
}

/** `fastify.clientCert`. */
export interface ClientCertDecorator {
  /**
   * Replaces the CRLs, the proxy CAs, the server's TLS material and/or the SPIFFE bundles, all or nothing, for
   * the next request, on open connections too. Lists up to 512 KiB are in force when it returns; a larger
   * CRL is parsed in slices that never stall the event loop, and the returned promise resolves once the new
   * material is in force (the old stays until then; reloads take effect in call order). Input of the wrong
   * type, or any bad input of a small reload, throws at once; a large CRL that does not parse rejects. Either
   * way nothing is replaced.
   */
  reload: (material: ClientCertReload) => Promise<void>
  /**
   * A hook that authenticates like a `required: true` route (with `allow` when given), for `preHandler`
   * or `@fastify/auth`. It rejects with the same errors the route policy sends. It needs no reply, so it also
   * re-checks a request later: a WebSocket's upgrade request after `reload()`, against the lists now in force.
   */
  verify: (options?: Pick<ClientCertRouteOptions, 'allow'>) => (request: FastifyRequest, reply?: FastifyReply) => Promise<void>
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
  interface FastifyRequest extends ClientCertUserHolder {
    /** The client certificate's identity, or `null` when none reached the app. */
    clientCert: ClientCertIdentity | null
    /**
     * `clientCert` when it is verified; else throws the 401 a required route sends (`FST_CLIENT_CERT_MISSING`
     * without a certificate, `FST_CLIENT_CERT_INVALID` for one that is not verified).
     */
    requireClientCert: () => VerifiedClientCertIdentity
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

/**
 * The anchors direct TLS paths are rebuilt up to, for online revocation: the server's `ca`, read again when
 * `setSecureContext()` replaced it.
 */
function serverAnchors (fastify: FastifyInstance, serverTrust: () => X509Certificate[]): () => X509Certificate[] {
  const server = fastify.server as unknown as { ca?: unknown }
  let seen: unknown
  let anchors: X509Certificate[] = []
  return function serverAnchors () {
    if (server.ca !== seen) {
      seen = server.ca
      anchors = serverTrust()
    }
    return anchors
  }
}

/**
 * Online revocation sources (CRLs from distribution points, OCSP): a changed answer bumps the generation as
 * `reload()` does, fetches start when a TLS handshake with a certificate TLS authorized completes (one listener
 * for every source: the peer certificate is built once per handshake), and stop when the server closes.
 */
function startOnline (fastify: FastifyInstance, state: State, anchors: () => X509Certificate[]): void {
  const { distributionPoints, ocsp } = state.settings
  const onChange = function clientCertRevocationChanged (): void {
    state.generation++
  }
  if (distributionPoints !== null) state.distributionPoints = new DistributionPoints(distributionPoints, fastify.log, onChange, anchors)
  if (ocsp !== null) state.ocsp = new OcspClient(ocsp, fastify.log, onChange, anchors)
  const sources = [state.distributionPoints, state.ocsp].filter((source) => source !== null)
  if (state.settings.mode !== 'proxy' && fastify.server instanceof TlsServer) {
    fastify.server.on('secureConnection', function clientCertPrefetchRevocation (socket: TLSSocket) {
      const certificate = socket.authorized ? socket.getPeerX509Certificate() : undefined
      if (certificate !== undefined) for (const source of sources) source.prefetch(certificate)
    })
  }
  fastify.addHook('onClose', function clientCertStopRevocationFetches (_instance, done) {
    for (const source of sources) source.close()
    done()
  })
  state.distributionPoints?.start()
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
    spiffe: settings.spiffe,
    distributionPoints: null,
    ocsp: null,
    proxy: settings.proxy === null ? null : new ProxySource(settings.proxy, settings.cache.certificates, fastify.server),
    users: new UserCache(settings.cache.users.max, settings.cache.users.ttl),
    tokens: settings.testing ? new Map() : null
  }

  fastify.decorateRequest('clientCert', null)
  fastify.decorateRequest('requireClientCert', function requireClientCert (this: FastifyRequest) {
    const identity = this.clientCert
    if (identity === null) throw new ClientCertMissingError()
    if (!identity.verified) throw new ClientCertInvalidError()
    return identity as VerifiedClientCertIdentity
  })
  const userProperty = settings.userProperty
  if (settings.resolveUser !== null) {
    if (!fastify.hasRequestDecorator(userProperty)) fastify.decorateRequest(userProperty, null)
    else fastify.log.warn(`fastify-client-cert: request.${userProperty} is already a request decorator; resolveUser fills it too, and another plugin (such as @fastify/jwt) may overwrite it: set the userProperty option to another name`)
  }

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
  const coverage = routeCoverage(fastify)
  fastify.addHook('onRoute', function clientCertOnRoute (routeOptions) {
    coverage.see(routeOptions)
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
    const unseen = coverage.unseen()
    if (unseen !== null && unseen.length > 0) {
      fastify.log.warn({ routes: unseen }, `fastify-client-cert: these routes were declared before the plugin was registered, so it does not protect them: ${unseen.join(', ')}. Register the plugin with await before declaring routes.`)
    }
    ready()
  })

  // The configured trust a CRL's signature is checked with: proxy.ca, and in direct mode the server's ca
  // (read again at each reload: setSecureContext() may have replaced it). Never what a client sent.
  const trustOf = (anchors: readonly X509Certificate[] | null, tls: PreparedContext | null = null): X509Certificate[] => {
    const server = fastify.server as unknown as { ca?: unknown }
    const serverCa = settings.mode !== 'proxy' && server instanceof TlsServer ? tls?.anchors ?? certificatesOf(server.ca) : []
    return [...(anchors ?? []), ...serverCa]
  }
  if (settings.crl !== null) state.crl = await RevocationList.load(settings.crl, 'crl', trustOf(state.proxyCa))
  if (settings.distributionPoints !== null || settings.ocsp !== null) startOnline(fastify, state, serverAnchors(fastify, () => trustOf(null)))
  // The tail of the reloads still in progress; null when the lists in force are the last ones asked for.
  let pendingReload: Promise<void> | null = null

  // Everything is validated before anything is replaced, and replaced at once: a key with its certificate, a CA
  // with the CRLs bound to it. `where` names the options in errors: 'reload', or 'watch' for watched files.
  const replace = function replace (lists: ClientCertReload, where: string): Promise<void> {
    if (lists === null || typeof lists !== 'object') throw new ClientCertInvalidOptionError(where, 'takes { crl, ca }, https, spiffe')
    for (const key of Object.keys(lists)) {
      if (key !== 'crl' && key !== 'ca' && key !== 'https' && key !== 'spiffe') throw new ClientCertInvalidOptionError(`${where}.${key}`, 'is not a reloadable list (crl, ca, https, spiffe)')
    }
    // Watched files are named as the watch option names them (watch.proxy.ca for the proxy CAs).
    const name = (key: string): string => where === 'watch' && key === 'ca' ? 'watch.proxy.ca' : `${where}.${key}`
    const small = pendingReload === null && (lists.crl === undefined
      ? (state.crl?.bytes ?? 0) <= SYNC_LOAD_BYTES
      : RevocationList.inputBytes(lists.crl) <= SYNC_LOAD_BYTES)
    const smallCrl = lists.crl == null || !small ? null : RevocationList.from(lists.crl, name('crl'))
    let proxyCa: X509Certificate[] | null | undefined
    if (lists.ca !== undefined) {
      if (state.proxy === null) throw new ClientCertInvalidOptionError(name('ca'), "is the proxy CA list: only used in mode 'proxy' or 'auto'")
      if (lists.ca === null && !settings.proxy!.preset.proxyVerifies) {
        throw new ClientCertInvalidOptionError(name('ca'), `cannot be removed: preset '${settings.proxy!.preset.name}' needs it`)
      }
      proxyCa = lists.ca === null ? null : loadCertificates(lists.ca, name('ca'))
    }
    let tls: PreparedContext | null = null
    if (lists.https !== undefined) {
      const server = fastify.server as unknown
      if (settings.mode === 'proxy' || !(server instanceof TlsServer)) {
        throw new ClientCertInvalidOptionError(name('https'), 'is the TLS server\'s material: this server does not terminate TLS')
      }
      tls = prepareSecureContext(server, lists.https, name('https'))
    }
    const spiffe: SpiffeBundles | null | undefined = lists.spiffe == null ? lists.spiffe : loadSpiffeOption(lists.spiffe, name('spiffe'))
    // A large CRL is parsed in slices from now on, and takes effect after the reloads asked for before it.
    const parsing = lists.crl == null || small ? null : RevocationList.load(lists.crl, name('crl'))
    // Its failure is reported by the promise reload() returns, once the reloads before it are done.
    parsing?.catch(() => {})
    const apply = (crl: RevocationList | null, anchors: X509Certificate[] | null): void => {
      if (tls !== null) {
        swapSecureContext(fastify.server as unknown as TlsServer, tls)
        if (tls.anchors !== null) setServerAnchors(fastify.server as unknown as TlsServer, tls.anchors)
      }
      if (spiffe !== undefined) state.spiffe = spiffe
      state.crl = crl
      state.proxyCa = anchors
      state.generation++
      state.users.clear()
    }
    if (small) {
      const anchors = proxyCa === undefined ? state.proxyCa : proxyCa
      const list = lists.crl === undefined ? state.crl : smallCrl
      apply(list === null ? null : list.bind(trustOf(anchors, tls)), anchors)
      return Promise.resolve()
    }
    // Until this reload is done, the material in force stays in force; reloads take effect in call order.
    const done = (pendingReload ?? Promise.resolve()).then(async function applyReload () {
      const anchors = proxyCa === undefined ? state.proxyCa : proxyCa
      const list = lists.crl === undefined ? state.crl : lists.crl === null ? null : await parsing!
      apply(list === null ? null : await list.bindLater(trustOf(anchors, tls)), anchors)
    })
    const settled = done.then(() => {}, () => {})
    pendingReload = settled
    settled.then(() => { if (pendingReload === settled) pendingReload = null }, () => {})
    return done
  }

  const watcher = settings.watch === null
    ? null
    : new FileWatcher(settings.watch, async function applyWatched (material) { await replace(material, 'watch') }, fastify.log)
  if (watcher !== null) {
    // The files are read now, and must hold good material: at registration there is nothing older to keep.
    await watcher.start()
    fastify.addHook('onClose', function clientCertStopWatching (_instance, done) {
      watcher.close()
      done()
    })
  }

  const decorator: ClientCertDecorator = {
    reload: function reload (lists) {
      return replace(lists, 'reload')
    },
    verify: function verify (verifyOptions = {}) {
      const policy = compileRoutePolicy({ required: true, ...verifyOptions }, settings, 'clientCert.verify()')!
      return async function verifyClientCert (request: FastifyRequest) {
        let identity: ClientCertIdentity | null
        try {
          identity = identify(state, request, true)
          const waiting = revocationPending(state, identity)
          if (waiting !== null) {
            await waiting
            identity = identify(state, request, true)
          }
        } catch (error) {
          const refused = refusal(request, error)
          publishDecision(request, null, refused)
          throw refused
        }
        request.clientCert = identity
        const error = await decide(state, policy, identity, request)
        publishDecision(request, identity, error)
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
