import { expect, test } from 'tstyche'
import fastifyClientCert = require('fastify-client-cert')
import Fastify = require('fastify')

test('require() hands out the plugin, typed, with every export on it', () => {
  expect(fastifyClientCert).type.toBeAssignableTo<typeof fastifyClientCert.fastifyClientCert>()
  expect(fastifyClientCert.default).type.toBe(fastifyClientCert.fastifyClientCert)
  expect(fastifyClientCert.parseDN('CN=a')).type.toBe<fastifyClientCert.RDN[]>()
  const app = Fastify()
  app.register(fastifyClientCert, { required: false })
  expect(app.register).type.not.toBeCallableWith(fastifyClientCert, { required: 'no' })
})

test('the CommonJS namespace carries every public type of the ESM entry', () => {
  expect<fastifyClientCert.ClientCertIdentity>().type.toBe<import('fastify-client-cert', { with: { 'resolution-mode': 'import' } }).ClientCertIdentity>()
  expect<fastifyClientCert.FastifyClientCertOptions>().type.toBe<import('fastify-client-cert', { with: { 'resolution-mode': 'import' } }).FastifyClientCertOptions>()
})
