// SPDX-License-Identifier: Apache-2.0
//
// Stand-ins for Google's ad SDKs, for the tests only: their real scripts cannot be
// fetched here, and a test must not make ad requests anyway. Each imitates only what
// the module relies on: GPT takes over googletag.secureSignalProviders when it loads
// and collects from every provider pushed before or after (the stub at once; the
// real GPT when it builds an ad request), runs googletag.cmd, offers clearAllCache;
// IMA reads the same array when an AdsLoader is created. Each collection is recorded
// in `collected` as { id, outcome, value | error, status }.

export const collected = [];
export const clears = { gpt: 0, ima: 0 };

function collect(provider) {
  const record = { id: provider.id };
  collected.push(record);
  // The SDKs call the collector asynchronously; a throw counts as a rejection.
  record.done = Promise.resolve()
    .then(() => provider.collectorFunction())
    .then(
      (value) => Object.assign(record, { outcome: 'resolved', value }),
      (err) => Object.assign(record, {
        outcome: 'rejected',
        error: err && err.name,
        message: err && err.message,
        status: err && err.status,
      }),
    );
}

/** What gpt.js does on load, as far as secure signals go. */
export function loadStubGpt(win = window) {
  const googletag = (win.googletag = win.googletag || { cmd: [] });
  const queued = googletag.secureSignalProviders || [];
  googletag.secureSignalProviders = {
    push(provider) { collect(provider); },
    clearAllCache() { clears.gpt++; },
  };
  for (const p of queued) collect(p);
  const commands = googletag.cmd || [];
  googletag.cmd = { push(fn) { fn(); } };
  for (const fn of commands) fn();
  googletag.__stubLoaded = true;
}

/** What ima3.js offers and does when an AdsLoader is created, as far as secure signals go. */
export function loadStubIma(win = window) {
  win.google = win.google || {};
  win.google.ima = {
    secureSignals: { clearAllCache() { clears.ima++; } },
    AdsLoader: class {
      constructor() {
        const providers = (win.googletag && win.googletag.secureSignalProviders) || [];
        for (const p of providers) collect(p);
      }
    },
  };
}

export async function settled() {
  await Promise.all(collected.map((r) => r.done));
  return collected.map(({ done, ...r }) => r);
}
