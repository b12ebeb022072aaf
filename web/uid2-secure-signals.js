// SPDX-License-Identifier: Apache-2.0
//
// uid2-secure-signals.js: hands the UID2 (or EUID) advertising token that uid2d keeps
// for this device to Google's ad SDKs on the web (GPT and the IMA HTML5 SDK) as a
// "secure signal". The web counterpart of the GMA/IMA secure-signals adapters that
// the UID2 mobile SDKs ship. Plain ES module, no dependencies, no build step.
//
// The token comes from the TV runtime's native bridge (OEM-specific), which calls
// com.uid2.Manager1.GetAdvertisingToken on the system bus for the app. See README.md
// beside this file for what the bridge must provide.

/** Signal source of UID2 tokens: the provider id that Ad Manager knows UID2 by. */
export const UID2_SOURCE = 'uidapi.com';
/** Signal source of EUID tokens. */
export const EUID_SOURCE = 'euid.eu';

/**
 * Why the collector had nothing to send. `status` is the identity status from the
 * bridge's getStatus ("no_identity", "expired", "opt_out", "refresh_expired", ...),
 * or undefined when no getStatus was given or it failed. An empty token while the
 * status is "established" or "refreshed" means the device's limit-ad-tracking policy
 * is on. The message never holds a token.
 */
export class NoUid2TokenError extends Error {
  constructor(source, status) {
    super(`no ${source} token to send` + (status ? ` (status: ${status})` : ''));
    this.name = 'NoUid2TokenError';
    this.source = source;
    this.status = status;
  }
}

/**
 * A secure-signal provider object, `{ id, collectorFunction }`, in the shape GPT and
 * IMA read from `googletag.secureSignalProviders`.
 *
 * @param {object} options
 * @param {() => Promise<string>} options.getToken  the bridge's call to uid2d's
 *   GetAdvertisingToken: resolves with the token, or '' when there is none to use.
 * @param {() => Promise<string>} [options.getStatus]  the bridge's call to
 *   GetIdentityStatus; only used to say why there was no token.
 * @param {'uidapi.com'|'euid.eu'} [options.source]  UID2 (default) or EUID.
 */
export function createUid2SecureSignalProvider({ getToken, getStatus, source = UID2_SOURCE } = {}) {
  if (typeof getToken !== 'function') {
    throw new TypeError('createUid2SecureSignalProvider: getToken must be a function');
  }
  if (source !== UID2_SOURCE && source !== EUID_SOURCE) {
    throw new TypeError(`createUid2SecureSignalProvider: source must be '${UID2_SOURCE}' or '${EUID_SOURCE}'`);
  }
  return {
    id: source,
    // Asks the bridge on every call rather than caching here: uid2d answers from
    // memory and refreshes the token on its own schedule, so the freshest token is
    // one cheap call away, and a token that has just expired or been opted out is
    // never handed on from a stale copy.
    collectorFunction: async () => {
      const token = await getToken();
      if (typeof token === 'string' && token !== '') return token;
      // Reject rather than resolve with '': the SDK then sends no signal for this
      // source, whereas an empty string could be passed on (and cached) as a signal.
      let status;
      if (typeof getStatus === 'function') {
        try {
          status = await getStatus();
        } catch {
          // The reason is only a diagnostic; the rejection below is what matters.
        }
      }
      throw new NoUid2TokenError(source, status);
    },
  };
}

// Providers already registered, per window and source: GPT caches signals per
// provider id, and the UID2 web SDK found that registering the same id twice can
// upset bidding, so a second registration is a no-op.
const registered = new WeakMap();

/**
 * Registers the provider where GPT and the IMA HTML5 SDK look for secure-signal
 * providers, `googletag.secureSignalProviders`, creating the queue if GPT is not
 * loaded (yet, or at all: an IMA-only page). Call it before the IMA AdsLoader is
 * created. Returns the provider (the first one, if this source was already
 * registered on this window).
 *
 * Sources for where the SDKs look:
 *  - GPT and IMA: https://developers.google.com/interactive-media-ads/docs/sdks/html5/client-side/securesignals
 *    ("push it to the googletag.secureSignalProviders array before creating your
 *    adsLoader instance"); same page for IMA DAI:
 *    https://developers.google.com/ad-manager/dynamic-ad-insertion/sdk/html5/secure-signals
 *  - UID2's own GPT integration and its id: https://unifiedid.com/docs/guides/integration-google-ss
 *
 * @param {object} options  as createUid2SecureSignalProvider, plus
 * @param {object} [options.target]  the window to register on (default: globalThis)
 */
export function registerUid2SecureSignals({ getToken, getStatus, source = UID2_SOURCE, target = globalThis } = {}) {
  const provider = createUid2SecureSignalProvider({ getToken, getStatus, source });
  let bySource = registered.get(target);
  if (!bySource) registered.set(target, (bySource = new Map()));
  if (bySource.has(source)) return bySource.get(source);

  // Before GPT loads, a plain array is the queue that GPT takes over when it does
  // (and that IMA reads); once loaded, GPT has replaced it with its own object with
  // a push() of its own. push() works on both, so no googletag.cmd is needed.
  const googletag = (target.googletag = target.googletag || { cmd: [] });
  googletag.secureSignalProviders = googletag.secureSignalProviders || [];
  googletag.secureSignalProviders.push(provider);
  bySource.set(source, provider);
  return provider;
}

/**
 * Clears the secure signals that GPT and IMA have cached, so that the next ad request
 * collects afresh. The SDKs cache a collected signal and do not call the collector
 * again while it is cached; call this when uid2d's IdentityStatusChanged reports a
 * change (opt_out, no_identity after a reset, a new identity) or limit-ad-tracking is
 * turned on, so that an old token is not sent on.
 * GPT: googletag.secureSignalProviders.clearAllCache() (see the UID2 guide above);
 * IMA: google.ima.secureSignals.clearAllCache(),
 * https://developers.google.com/interactive-media-ads/docs/sdks/html5/client-side/reference/js/google.ima.secureSignals
 */
export function clearUid2SecureSignalsCache({ target = globalThis } = {}) {
  const googletag = (target.googletag = target.googletag || { cmd: [] });
  // clearAllCache exists only once GPT has loaded; cmd runs it then (or now).
  googletag.cmd = googletag.cmd || [];
  googletag.cmd.push(() => {
    const providers = target.googletag.secureSignalProviders;
    if (providers && typeof providers.clearAllCache === 'function') providers.clearAllCache();
  });
  const ima = target.google && target.google.ima;
  if (ima && ima.secureSignals && typeof ima.secureSignals.clearAllCache === 'function') {
    ima.secureSignals.clearAllCache();
  }
}

/**
 * Registers the token of a `__uid2` or `__euid` object (web/uid2-tv-sdk.js, or the UID2
 * web SDK) as a secure signal: the source comes from the SDK's `getTokenInfo()` (uid2d's
 * GetTokenInfo: `uidapi.com` or `euid.eu`), so nobody sets it by hand; each collection
 * waits for the SDK's first answer (`getAdvertisingTokenAsync`); and every
 * `IdentityUpdated` of the SDK clears the ad SDKs' cache. Await it before creating the
 * IMA AdsLoader. Resolves with the provider; rejects if `getTokenInfo` fails or names
 * another source.
 *
 * @param {object} options
 * @param {object} options.sdk  the installed `__uid2`/`__euid` object
 * @param {object} [options.target]  the window to register on (default: globalThis)
 */
export async function registerSecureSignalsFromSdk({ sdk, target = globalThis } = {}) {
  if (!sdk || typeof sdk.getTokenInfo !== 'function' || typeof sdk.getAdvertisingTokenAsync !== 'function') {
    throw new TypeError('registerSecureSignalsFromSdk: sdk must be an installed __uid2 or __euid object');
  }
  const { source, status } = await sdk.getTokenInfo();
  const provider = registerUid2SecureSignals({
    // A rejection (no identity) becomes '' and so the collector's NoUid2TokenError.
    getToken: () => sdk.getAdvertisingTokenAsync().catch(() => ''),
    getStatus: async () => (await sdk.getTokenInfo()).status ?? status,
    source,
    target,
  });
  sdk.callbacks.push((event) => {
    if (event === 'IdentityUpdated') clearUid2SecureSignalsCache({ target });
  });
  return provider;
}
