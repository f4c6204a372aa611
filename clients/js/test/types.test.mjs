// The build and the types: dist/ is what src/ compiles to (so the committed build is never stale), dist/client.js
// imports nothing and dist/react.js only react and ./client.js, test/types-check.ts and test/react-types-check.ts
// compile against the .d.ts files (tsc --noEmit), and dist/client.d.ts needs neither the DOM nor Node types.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import * as client from '../dist/client.js';
import * as react from '../dist/react.js';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Runs this package's tsc; its diagnostics become the failure message. */
function tsc(...args) {
  try {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), ...args], { cwd: root, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc ${args.join(' ')}:\n${e.stdout}${e.stderr}`);
  }
}
const read = (p) => readFileSync(join(root, p), 'utf8');

test('dist/ is the build of src/ (run `npm run build` after changing src/client.ts)', () => {
  const out = mkdtempSync(join(tmpdir(), 'switchboard-client-build-'));
  try {
    tsc('-p', 'tsconfig.json', '--outDir', out);
    assert.equal(read('dist/client.js'), readFileSync(join(out, 'client.js'), 'utf8'), 'dist/client.js is stale');
    for (const f of ['client.d.ts', 'react.js', 'react.d.ts']) {
      assert.equal(read(`dist/${f}`), readFileSync(join(out, f), 'utf8'), `dist/${f} is stale`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  const min = transformSync(read('dist/client.js'), { minify: true, format: 'esm', target: 'es2020', legalComments: 'none' }).code;
  assert.equal(read('dist/client.min.js'), min, 'dist/client.min.js is stale');
});

test('dist/client.js is one ES module with no imports, and exports the API', () => {
  const src = read('dist/client.js');
  assert.doesNotMatch(src, /^\s*import[\s{*'"]|\bimport\s*\(|\brequire\s*\(/m);
  assert.deepEqual(Object.keys(client).sort(), ['SwitchboardError', 'configure', 'connect', 'sendDevWebhook', 'subscribeToBackendEvents']);
  const pkg = JSON.parse(read('package.json'));
  assert.deepEqual(pkg.dependencies ?? {}, {}, 'no runtime dependencies');
});

test('dist/react.js imports only react and ./client.js; react is an optional peer dependency', () => {
  const imports = [...read('dist/react.js').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
  assert.deepEqual(imports, ['react', './client.js']);
  assert.deepEqual(Object.keys(react).sort(), ['syncAgents', 'useAgentSync']);
  const pkg = JSON.parse(read('package.json'));
  assert.equal(pkg.exports['./react'].import, './dist/react.js');
  assert.deepEqual(pkg.peerDependenciesMeta, { react: { optional: true } });
});

test('tsc --noEmit: the samples against the types (React Query\'s QueryClient for the react entry), and the types without DOM or Node', () => {
  tsc('-p', 'test/tsconfig.json');
  tsc('-p', 'test/tsconfig.nodom.json');
  tsc('-p', 'test/tsconfig.react.json');
});
