import { fastifyClientCert } from './plugin.js'

export { fastifyClientCert }
export default fastifyClientCert

export type {
  ClientCertDecorator,
  ClientCertUser,
  FastifyClientCertUser,
  InjectIdentity
} from './plugin.js'
export type {
  AuthorizeHook,
  CacheOptions,
  ClientCertMode,
  ClientCertRouteOptions,
  FastifyClientCertOptions,
  PemOrDerInput,
  ProxyOptions,
  ResolveUserHook
} from './options.js'
export type { AllowRules, NameRule } from './allow.js'
export type { CustomHeaderMapping } from './presets/types.js'
export type { ClientCertIdentity, IdentityOptions, IdentitySource } from './identity.js'
export type { DNAttribute, RDN } from './dn.js'
export type { SubjectAltNames } from './san.js'
export { identityFromCertificate } from './identity.js'
export { parseDN, formatDN } from './dn.js'
export { CertificateParseError } from './parse-error.js'
// Every error constructor, for `instanceof` checks and custom error handlers.
export * from './errors.js'
