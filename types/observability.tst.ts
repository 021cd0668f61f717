import type { FastifyRequest } from 'fastify'
import { subscribe } from 'node:diagnostics_channel'
import { expect, test } from 'tstyche'
import { decisionChannelName, type ClientCertDecision } from 'fastify-client-cert'

test('the decision channel is named by a constant', () => {
  expect(decisionChannelName).type.toBe<'fastify-client-cert:decision'>()
})

test('a decision message is typed, attribute by attribute', () => {
  subscribe(decisionChannelName, (message) => {
    const decision = message as ClientCertDecision
    expect(decision['client_cert.outcome']).type.toBe<'admitted' | 'refused'>()
    expect(decision['error.type']).type.toBe<string | null>()
    expect(decision['http.response.status_code']).type.toBe<number | null>()
    expect(decision['client_cert.verified']).type.toBe<boolean | null>()
    expect(decision['client_cert.source']).type.toBe<'tls' | 'proxy' | null>()
    expect(decision['tls.client.hash.sha256']).type.toBe<string | null>()
    expect(decision['tls.client.not_after']).type.toBe<string | null>()
    expect(decision['http.route']).type.toBe<string | null>()
    expect(decision.request).type.toBe<FastifyRequest>()
    expect(decision).type.not.toHaveProperty('tls.client.certificate')
  })
})
