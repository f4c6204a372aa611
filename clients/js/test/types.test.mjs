// The build and the types: dist/ is what src/client.ts compiles to (so the committed build is never stale),
// dist/client.js imports nothing, test/types-check.ts compiles against dist/client.d.ts (tsc --noEmit), and the
// .d.ts needs neither the DOM nor Node types.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import * as client from '../dist/client.js';

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
    assert.equal(read('dist/client.d.ts'), readFileSync(join(out, 'client.d.ts'), 'utf8'), 'dist/client.d.ts is stale');
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

test('tsc --noEmit: test/types-check.ts against the types, and the types without DOM or Node', () => {
  tsc('-p', 'test/tsconfig.json');
  tsc('-p', 'test/tsconfig.nodom.json');
});
