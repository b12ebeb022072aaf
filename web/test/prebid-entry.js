// SPDX-License-Identifier: Apache-2.0
//
// The Prebid.js build of the web tests (scripts/test-web.sh bundles it with esbuild into
// target/web-test/prebid.js): Prebid with its User ID module and the UID2 and EUID ID
// modules, as the README of the npm package `prebid.js` shows.
import pbjs from 'prebid.js';
import 'prebid.js/modules/userId';
import 'prebid.js/modules/uid2IdSystem';
import 'prebid.js/modules/euidIdSystem';

pbjs.processQueue();
