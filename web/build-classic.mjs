// SPDX-License-Identifier: Apache-2.0
//
// Builds uid2-tv-sdk.classic.js, the classic-script build of uid2-tv-sdk.js, for pages
// that load the SDK with a plain <script src> (as they load the UID2 web SDK) and use
// __uid2 in the inline script right after it. Node's standard library only.
//
//   node web/build-classic.mjs           writes web/uid2-tv-sdk.classic.js
//   node web/build-classic.mjs --check   exits 1 when that file is not what the module builds
//
// The build wraps the module in a function, turns its `export function|class|const NAME`
// into plain declarations, publishes them as globalThis.uid2TvSdk, and installs __uid2 and
// __euid at once from window.__uid2TvConfig (unless a UID2 SDK is already installed).
// Any other export form is an error, so nothing is silently left out.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = dirname(fileURLToPath(import.meta.url));
const modulePath = join(web, 'uid2-tv-sdk.js');
const classicPath = join(web, 'uid2-tv-sdk.classic.js');

export function buildClassic(source) {
  const names = [];
  const body = source.replace(/^export (function|class|const) ([A-Za-z_$][\w$]*)/gm, (_, kind, name) => {
    names.push(name);
    return `${kind} ${name}`;
  });
  const stray = body.match(/^\s*export\b.*$/m);
  if (stray) throw new Error(`uid2-tv-sdk.js: an export build-classic.mjs does not take: ${stray[0].trim()}`);
  if (!names.includes('installUid2TvSdk')) throw new Error('uid2-tv-sdk.js exports no installUid2TvSdk');
  return `// GENERATED from uid2-tv-sdk.js by build-classic.mjs: do not edit; run node web/build-classic.mjs.
//
// The classic-script build of the TV SDK: <script src="uid2-tv-sdk.classic.js"></script>
// installs window.__uid2 and window.__euid at once, on the endpoint or bridge the runtime
// put in window.__uid2TvConfig (docs/html5.md), and offers the module's exports as
// window.uid2TvSdk.
(function () {
'use strict';
${body}
globalThis.uid2TvSdk = Object.freeze({ ${names.join(', ')} });
if (!(globalThis.__uid2 && typeof globalThis.__uid2.init === 'function')) installUid2TvSdk();
})();
`;
}

const built = buildClassic(readFileSync(modulePath, 'utf8'));
if (process.argv.includes('--check')) {
  let current = '';
  try { current = readFileSync(classicPath, 'utf8'); } catch { /* missing: not current */ }
  if (current !== built) {
    console.error('web/uid2-tv-sdk.classic.js is not the build of web/uid2-tv-sdk.js: run node web/build-classic.mjs');
    process.exit(1);
  }
  console.log('web/uid2-tv-sdk.classic.js is the build of web/uid2-tv-sdk.js');
} else {
  writeFileSync(classicPath, built);
  console.log(`wrote ${classicPath}`);
}
