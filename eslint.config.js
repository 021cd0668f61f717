import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.tap/**', 'benchmarks/node_modules/**', 'benchmarks/results/**', 'test/fixtures/generated/**']
})
