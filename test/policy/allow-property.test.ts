import fc from 'fast-check'
import t from 'tap'
import { compileAllow, type AllowIdentity } from '../../lib/policy/allow.js'
import { formatDN, type DNAttribute, type RDN } from '../../lib/codecs/dn.js'
import { attributeTypes, type AttributeType } from '../../lib/codecs/oids.js'

const numRuns = process.env.CI ? 100_000 : 10_000

const types = attributeTypes()

// Characters that have a meaning in a DN string, beside ordinary and non-ASCII ones.
const valueUnit = fc.constantFrom(
  'a', 'B', 'z', '0', '9', ' ', '-', '.', '_', ',', '+', '=', ';', '\\', '"', '#', '<', '>', '/', 'é', 'Ü', '测', '😀'
)
const value = fc.string({ unit: valueUnit, minLength: 1, maxLength: 12 })
const attributeType = fc.constantFrom(...types)
const attribute = fc.record({ type: attributeType, value }).map(({ type, value }): DNAttribute => ({ type: type.name, oid: type.oid, value }))
const rdn = fc.array(attribute, { minLength: 1, maxLength: 3 })
const name = fc.array(rdn, { minLength: 1, maxLength: 5 })

function identity (subjectRDNs: RDN[]): AllowIdentity {
  return { subject: formatDN(subjectRDNs), issuer: null, subjectRDNs, issuerRDNs: null, san: null, spiffeId: null, fingerprint256: null }
}

function clone (rdns: RDN[]): RDN[] {
  return rdns.map((rdn) => rdn.map((attribute) => ({ ...attribute })))
}

type Change =
  | { kind: 'value', value: string }
  | { kind: 'type', type: AttributeType }
  | { kind: 'drop' }
  | { kind: 'add', attribute: DNAttribute, alone: boolean }

const change: fc.Arbitrary<Change> = fc.oneof(
  value.map((value): Change => ({ kind: 'value', value })),
  attributeType.map((type): Change => ({ kind: 'type', type })),
  fc.constant<Change>({ kind: 'drop' }),
  fc.record({ attribute, alone: fc.boolean() }).map(({ attribute, alone }): Change => ({ kind: 'add', attribute, alone }))
)

/** `rdns` with one attribute changed, dropped or added; null when the change would change nothing. */
function apply (rdns: RDN[], i: number, j: number, how: Change): RDN[] | null {
  const changed = clone(rdns)
  const target = changed[i][j]
  switch (how.kind) {
    case 'value':
      if (how.value === target.value) return null
      target.value = how.value
      break
    case 'type':
      if (how.type.oid === target.oid) return null
      target.type = how.type.name
      target.oid = how.type.oid
      break
    case 'drop':
      changed[i].splice(j, 1)
      if (changed[i].length === 0) changed.splice(i, 1)
      break
    case 'add':
      if (how.alone) changed.splice(i, 0, [how.attribute])
      else changed[i].push(how.attribute)
      break
  }
  return changed
}

t.test('a whole-name rule built with formatDN matches exactly that name', async (t) => {
  fc.assert(fc.property(name, fc.nat(), fc.nat(), change, (rdns, i, j, how) => {
    const allow = compileAllow({ subjects: [formatDN(rdns)] }, 'allow')
    if (!allow(identity(rdns))) return false
    const at = i % rdns.length
    const changed = apply(rdns, at, j % rdns[at].length, how)
    return changed === null || !allow(identity(changed))
  }), { numRuns })
  t.pass(`${numRuns} names`)
})

t.test('a whole-name rule ignores the order inside a multi-valued RDN', async (t) => {
  fc.assert(fc.property(name, (rdns) => {
    const allow = compileAllow({ subjects: [formatDN(rdns)] }, 'allow')
    return allow(identity(rdns.map((rdn) => [...rdn].reverse())))
  }), { numRuns })
  t.pass(`${numRuns} names`)
})

// Text that puts `type=value` inside another attribute's value, the way a crafted CN would.
const carrier = fc.record({
  before: fc.string({ unit: valueUnit, maxLength: 4 }),
  separator: fc.constantFrom(',', '+', ';', '/', ', ', '\\,', ''),
  after: fc.string({ unit: valueUnit, maxLength: 4 })
})

t.test('an object rule never matches a value smuggled into another attribute', async (t) => {
  fc.assert(fc.property(name, attributeType, value, attributeType, carrier, fc.nat(), fc.boolean(),
    (generated, wanted, wantedValue, carrierType, text, position, sameValue) => {
      // The name must not hold the wanted attribute for real: drop any generated occurrence.
      const rdns = generated
        .map((rdn) => rdn.filter((attribute) => attribute.oid !== wanted.oid || attribute.value !== wantedValue))
        .filter((rdn) => rdn.length > 0)
      // Either the bare value under another type, or `type=value` embedded in some attribute's value
      // (always longer than the value alone, so never the wanted attribute itself).
      const smuggled: DNAttribute = sameValue && carrierType.oid !== wanted.oid
        ? { type: carrierType.name, oid: carrierType.oid, value: wantedValue }
        : { type: carrierType.name, oid: carrierType.oid, value: `${text.before}${text.separator}${wanted.name}=${wantedValue}${text.after}` }
      const at = position % (rdns.length + 1)
      const injected = [...rdns.slice(0, at), [smuggled], ...rdns.slice(at)]
      const allow = compileAllow({ subjects: [{ [wanted.name]: wantedValue }] }, 'allow')
      if (allow(identity(injected))) return false
      // The same rule does match once the attribute is really there.
      return allow(identity([...injected, [{ type: wanted.name, oid: wanted.oid, value: wantedValue }]]))
    }), { numRuns })
  t.pass(`${numRuns} names`)
})
