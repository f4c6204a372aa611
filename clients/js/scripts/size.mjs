// The last build step (`npm run build` runs it after tsc): checks that dist/client.js is one self-contained ES
// module (no import, no require), writes the minified dist/client.min.js with esbuild, and prints the sizes
// (raw, minified, minified+gzipped) that the README quotes, and those of the react entry point (dist/react.js, which
// imports only react and ./client.js).
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { transformSync } from 'esbuild';

const url = (p) => new URL(`../dist/${p}`, import.meta.url);
const src = readFileSync(url('client.js'), 'utf8');
if (/^\s*import[\s{*'"]|\bimport\s*\(|\brequire\s*\(/m.test(src)) {
  console.error('dist/client.js must not import anything');
  process.exit(1);
}
const min = transformSync(src, { minify: true, format: 'esm', target: 'es2020', legalComments: 'none' }).code;
writeFileSync(url('client.min.js'), min);
const gz = gzipSync(min, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(2)} KiB`;
console.log(`dist/client.js ${kb(src.length)}; minified ${kb(min.length)}; minified+gzipped ${kb(gz)} (${gz} bytes)`);
const react = transformSync(readFileSync(url('react.js'), 'utf8'), { minify: true, format: 'esm', target: 'es2020', legalComments: 'none' }).code;
const rgz = gzipSync(react, { level: 9 }).length;
console.log(`dist/react.js minified ${kb(react.length)}; minified+gzipped ${kb(rgz)} (${rgz} bytes) on top of client.js`);
