// The CommonJS entry: `require('fastify-client-cert')` hands out the plugin function itself, carrying every
// named export (and `default`) as properties, as @fastify/* plugins do. The namespace re-exports the public
// types for CommonJS TypeScript users (`import fcc = require('fastify-client-cert')`, then `fcc.RDN`).
import api = require('./index.js')

const plugin = Object.assign(api.fastifyClientCert, api)

declare namespace plugin {
  export type AllowRules = api.AllowRules
  export type AuthorizeHook = api.AuthorizeHook
  export type CacheOptions = api.CacheOptions
  export type CertificateDigestSource = api.CertificateDigestSource
  export type ClientCertDecision = api.ClientCertDecision
  export type ClientCertDecorator = api.ClientCertDecorator
  export type ClientCertIdentity = api.ClientCertIdentity
  export type ClientCertIdentityFields = api.ClientCertIdentityFields
  export type ClientCertMode = api.ClientCertMode
  export type ClientCertPresetName = api.ClientCertPresetName
  export type ClientCertReload = api.ClientCertReload
  export type ClientCertRouteOptions = api.ClientCertRouteOptions
  export type ClientCertUser = api.ClientCertUser
  export type ClientCertUserHolder = api.ClientCertUserHolder
  export type ClientCertUserProperty = api.ClientCertUserProperty
  export type CustomHeaderMapping = api.CustomHeaderMapping
  export type DistributionPointMode = api.DistributionPointMode
  export type DistributionPointOptions = api.DistributionPointOptions
  export type DNAttribute = api.DNAttribute
  export type FastifyClientCertOptions = api.FastifyClientCertOptions
  export type HttpsMaterial = api.HttpsMaterial
  export type IdentityOptions = api.IdentityOptions
  export type IdentitySource = api.IdentitySource
  export type InjectIdentity = api.InjectIdentity
  export type NameRule = api.NameRule
  export type OcspMode = api.OcspMode
  export type OcspOptions = api.OcspOptions
  export type OcspUnknown = api.OcspUnknown
  export type PemOrDerInput = api.PemOrDerInput
  export type ProxyClientCertIdentity = api.ProxyClientCertIdentity
  export type ProxyOptions = api.ProxyOptions
  export type RDN = api.RDN
  export type ResolveUserHook<User = unknown> = api.ResolveUserHook<User>
  export type RevocationOptions = api.RevocationOptions
  export type RevocationOrder = api.RevocationOrder
  export type SpiffeBundleInput = api.SpiffeBundleInput
  export type SpiffeJwkSet = api.SpiffeJwkSet
  export type SpiffeOptions = api.SpiffeOptions
  export type SubjectAltNames = api.SubjectAltNames
  export type TlsClientCertIdentity = api.TlsClientCertIdentity
  export type VerifiedClientCertIdentity = api.VerifiedClientCertIdentity
  export type WatchedPaths = api.WatchedPaths
  export type WatchOptions = api.WatchOptions
}

export = plugin
