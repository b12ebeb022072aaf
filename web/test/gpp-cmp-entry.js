// SPDX-License-Identifier: Apache-2.0
//
// The IAB Tech Lab's GPP CMP API (npm `@iabgpp/cmpapi`) for a test page's CMP
// (scripts/test-web.sh bundles it with esbuild into target/web-test/gpp-cmpapi.js):
// `new IabGpp.CmpApi(cmpId, cmpVersion)` installs the page's `__gpp`. The IAB's GPP stub
// is not on the npm registry (`@iabgpp/stub`: 404), so pages use the CMP API itself.
import { CmpApi, SignalStatus } from '@iabgpp/cmpapi';

window.IabGpp = { CmpApi, SignalStatus };
