// Every ```ts block of README.md and docs/*.md compiles under `strict` against the plugin's source, each block a
// program of its own (blocks declare different FastifyClientCertUser merges), so the documentation cannot drift.
import t from 'tap'
import ts from 'typescript'
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
// Type-checking takes seconds a program, more on a busy machine.
t.setTimeout(300_000)

interface Snippet {
  file: string
  line: number
  code: string
}

function extractTsBlocks (file: string, text: string): Snippet[] {
  const snippets: Snippet[] = []
  const lines = text.split('\n')
  let start = -1
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!
    if (start === -1) {
      if (/^```(ts|typescript)\s*$/.test(line)) start = index
    } else if (/^```\s*$/.test(line)) {
      snippets.push({ file, line: start + 1, code: lines.slice(start + 1, index).join('\n') + '\n' })
      start = -1
    }
  }
  return snippets
}

function documents (): string[] {
  const docs = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => join('docs', name))
  return ['README.md', ...docs.sort()]
}

// The project's settings, strict. Snippets may leave a variable unused. Libraries are not checked (another package's
// own declarations are not ours to test), but the plugin is compiled from its source, so a clash between its
// merged declarations and another plugin's (TS2717 beside @fastify/jwt) is reported where ours are declared.
const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  strict: true,
  exactOptionalPropertyTypes: false,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  isolatedModules: true,
  baseUrl: root,
  paths: { 'fastify-client-cert': ['./lib/index.ts'] }
}

const snippetName = (index: number): string => join(root, 'test', `__snippet_${index}__.ts`)

/**
 * Compiles snippets as modules of one program, held in memory beside the tests, and returns each one's
 * diagnostics; a diagnostic of a plugin file that merges into Fastify's types goes to every snippet.
 */
function compileSnippets (codes: readonly string[], oldProgram?: ts.Program): { errors: string[][], program: ts.Program } {
  const files = new Map(codes.map((code, index) => [snippetName(index), code]))
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) => files.has(name)
    ? ts.createSourceFile(name, files.get(name)!, languageVersion, true)
    : getSourceFile.call(host, name, languageVersion, onError, shouldCreate)
  const fileExists = host.fileExists
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name)
  const readFile = host.readFile
  host.readFile = (name) => files.get(name) ?? readFile.call(host, name)
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host, oldProgram })
  const format = (diagnostic: ts.Diagnostic): string => {
    const file = diagnostic.file
    const where = file === undefined
      ? ''
      : `${files.has(file.fileName) ? 'snippet' : file.fileName}:${file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}: `
    return `${where}TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`
  }
  const mergePoints = program.getSourceFiles().filter((file) => file.fileName.startsWith(join(root, 'lib')) && file.text.includes('declare module'))
  const shared = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...mergePoints.flatMap((file) => program.getSemanticDiagnostics(file))
  ].map(format)
  const errors = [...files.keys()].map((name) => {
    const file = program.getSourceFile(name)!
    return [...shared, ...[...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map(format)]
  })
  return { errors, program }
}

t.test('the checker reports what does not compile under strict', async (t) => {
  const { errors } = compileSnippets([[
    "import Fastify from 'fastify'",
    "import fastifyClientCert from 'fastify-client-cert'",
    'const app = Fastify()',
    "app.register(fastifyClientCert, { mode: 'proxy', proxy: { preset: 'ngnix', trust: '127.0.0.1' } })",
    "app.get('/', async (request) => request.clientCert.subject)"
  ].join('\n'), 'const fine: string = "yes"\nexport { fine }\n'])
  t.equal(errors[0]!.length, 2, errors[0]!.join('\n'))
  t.match(errors[0]![0], /^snippet:4: TS2769 [^]*'"ngnix"' is not assignable to type 'ClientCertPresetName/)
  t.match(errors[0]![1], /^snippet:5: TS18047 'request\.clientCert' is possibly 'null'/)
  t.same(errors[1], [], 'each snippet has its own diagnostics')
})

t.test('blocks are read from fenced ts code only', async (t) => {
  const text = '# x\n```js\nconst a = 1\n```\n```ts\nconst b: number = 2\n```\n```typescript\nconst c = 3\n```\n```ts\nunclosed\n'
  t.same(extractTsBlocks('X.md', text), [
    { file: 'X.md', line: 5, code: 'const b: number = 2\n' },
    { file: 'X.md', line: 8, code: 'const c = 3\n' }
  ])
})

t.test('every TypeScript snippet of the documentation compiles under strict', async (t) => {
  const snippets = documents().flatMap((file) => extractTsBlocks(file, readFileSync(join(root, file), 'utf8')))
  t.ok(snippets.some((snippet) => snippet.file === 'README.md'), 'the README has TypeScript snippets')
  // Snippets that merge declarations (FastifyClientCertUser, FastifyJWT) each get a program; the others share one.
  const merging = (snippet: Snippet): boolean => /\bdeclare\s+(module|global)\b/.test(snippet.code)
  const groups = [snippets.filter((snippet) => !merging(snippet)), ...snippets.filter(merging).map((snippet) => [snippet])]
  let previous: ts.Program | undefined
  for (const group of groups) {
    const { errors, program } = compileSnippets(group.map((snippet) => snippet.code), previous)
    previous = program
    group.forEach((snippet, index) => t.same(errors[index], [], `${snippet.file}:${snippet.line} compiles`))
  }
})
