import Fastify, { type FastifyRequest } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { X509Certificate } from 'node:crypto'
import { expect, test } from 'tstyche'
import {
  certificateThumbprint,
  ClientCertTokenMismatchError,
  ClientCertTokenUnboundError,
  trustCertificateBoundToken,
  verifyCertificateBinding,
  type ClientCertIdentity
} from 'fastify-client-cert'

test('certificateThumbprint takes an identity or an X509Certificate and may have none', () => {
  expect(certificateThumbprint).type.toBeCallableWith({} as ClientCertIdentity)
  expect(certificateThumbprint).type.toBeCallableWith({} as X509Certificate)
  expect(certificateThumbprint).type.not.toBeCallableWith(null)
  expect(certificateThumbprint({} as ClientCertIdentity)).type.toBe<string | null>()
})

test('trustCertificateBoundToken is an @fastify/jwt trusted option; verifyCertificateBinding a step that throws', () => {
  const app = Fastify()
  app.register(fastifyJwt, { secret: 'a secret of some length', trusted: trustCertificateBoundToken })
  expect(verifyCertificateBinding({} as FastifyRequest, {})).type.toBe<void>()
  expect(new ClientCertTokenUnboundError().code).type.toBe<'FST_CLIENT_CERT_TOKEN_UNBOUND'>()
  expect(new ClientCertTokenMismatchError().statusCode).type.toBe<401>()
})
