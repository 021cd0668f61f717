import { subscribe } from 'node:diagnostics_channel'
import type { FastifyInstance, RouteOptions } from 'fastify'

// A route declared before the plugin's onRoute hook exists (before `register`, or after a `register` that was
// not awaited, or in a context created before it) never gets the plugin's onRequest hook: it runs unprotected,
// silently. Fastify lists no routes, so every instance records the routes declared on it, from its creation on,
// through `fastify.initialization`; at ready a registration compares them with the routes it saw.

interface DeclaredRoute {
  /** The instance the route was declared on: its encapsulation context. */
  instance: object
  options: RouteOptions
}

const declared = new WeakMap<object, DeclaredRoute[]>()

subscribe('fastify.initialization', function clientCertRecordRoutes (message) {
  const fastify = (message as { fastify: FastifyInstance }).fastify
  const routes: DeclaredRoute[] = []
  declared.set(fastify, routes)
  fastify.addHook('onRoute', function clientCertRecordRoute (this: FastifyInstance, options) {
    routes.push({ instance: this, options: options as RouteOptions })
  })
})

function recordedRoutes (scope: object): DeclaredRoute[] | null {
  // An encapsulated context is created with Object.create(parent): its prototype chain leads to the root.
  for (let instance: object | null = scope; instance !== null; instance = Object.getPrototypeOf(instance)) {
    const routes = declared.get(instance)
    if (routes !== undefined) return routes
  }
  return null
}

export interface RouteCoverage {
  /** Called by the plugin's onRoute hook for every route it sees (and so protects or was told to skip). */
  see: (options: object) => void
  /**
   * `METHOD url` of each route of the scope (the registration's context and its children) the plugin did not
   * see, or `null` when the app was created before this module was loaded (nothing recorded).
   * A route declared with `config.clientCert: false` is not named: it runs without the plugin, as it asks.
   */
  unseen: () => string[] | null
}

export function routeCoverage (scope: FastifyInstance): RouteCoverage {
  const seen = new WeakSet<object>()
  return {
    see: function see (options) { seen.add(options) },
    unseen: function unseen () {
      const routes = recordedRoutes(scope)
      if (routes === null) return null
      const missed = routes.filter(({ instance, options }) =>
        !seen.has(options) &&
        (instance === scope || Object.prototype.isPrototypeOf.call(scope, instance)) &&
        options.config?.clientCert !== false)
      const names = missed.map(({ options }) => `${([] as string[]).concat(options.method).join(',')} ${options.url}`)
      // Fastify adds a HEAD route beside each GET one: name the pair once, by its GET.
      return names.filter((name) => !name.startsWith('HEAD ') || !names.includes('GET ' + name.slice(5)))
    }
  }
}
