// GENERATED from uid2-tv-sdk.js by build-classic.mjs: do not edit; run node web/build-classic.mjs.
//
// The classic-script build of the TV SDK: <script src="uid2-tv-sdk.classic.js"></script>
// installs window.__uid2 and window.__euid at once, on the endpoint or bridge the runtime
// put in window.__uid2TvConfig (docs/html5.md), and offers the module's exports as
// window.uid2TvSdk.
(function () {
'use strict';
// SPDX-License-Identifier: Apache-2.0
//
// uid2-tv-sdk.js: the UID2 web SDK's `__uid2` API (and the EUID twin, `__euid`) for an
// HTML5 TV app, backed by uid2d through the app's uid2-gateway session (docs/html5.md).
// The identity lives in uid2d, not in the page: storage, refresh while the app is closed,
// opt-out and the refresh token stay there. One ES module, no dependencies; the classic
// script uid2-tv-sdk.classic.js is built from it by build-classic.mjs.
//
//   import { installUid2TvSdk } from './uid2-tv-sdk.js';
//   installUid2TvSdk({ endpoint: launchParams.uid2Endpoint });   // ws://127.0.0.1:7685/session/…
//   window.__uid2.init({ callback: (state) => { … } });
//
// The behaviour follows the web SDK v4 (IABTechLab/uid2-web-integrations, src/sdkBase.ts,
// src/callbackManager.ts, src/promiseHandler.ts); web/README.md lists every difference.

/** The web SDK's status codes (`IdentityStatus`). */
const IdentityStatus = Object.freeze({
  ESTABLISHED: 0,
  REFRESHED: 1,
  EXPIRED: 100,
  NO_IDENTITY: -1,
  INVALID: -2,
  REFRESH_EXPIRED: -3,
  OPTOUT: -4,
});

/** The events the web SDK sends to `callbacks`. */
const EventType = Object.freeze({
  SdkLoaded: 'SdkLoaded',
  InitCompleted: 'InitCompleted',
  IdentityUpdated: 'IdentityUpdated',
  OptoutReceived: 'OptoutReceived',
});

/**
 * A JSON-RPC error from the gateway: `code` (docs/html5.md), `errorName` (e.g.
 * `InvalidArgument`). `-32010` `Unavailable` when the gateway cannot be reached; then
 * `localNetworkAccess` is the page's `loopback-network` permission state, if known.
 */
class Uid2GatewayError extends Error {
  constructor(code, name, detail) {
    super(detail ? `${name}: ${detail}` : name);
    this.name = 'Uid2GatewayError';
    this.code = code;
    this.errorName = name;
  }
}

const unavailable = (detail) => new Uid2GatewayError(-32010, 'Unavailable', detail);

// JSON-RPC 2.0 over any carrier of text frames: `send(text)` out, `receive(text)` in.
function jsonRpcPeer(send) {
  const pending = new Map();
  const handlers = [];
  let nextId = 1;
  let failure = null;
  return {
    receive(text) {
      let message;
      try { message = JSON.parse(text); } catch { return; }
      if (message === null || typeof message !== 'object') return;
      if (message.id !== undefined && pending.has(message.id)) {
        const { resolve, reject } = pending.get(message.id);
        pending.delete(message.id);
        if (message.error) {
          const { code, message: name, data } = message.error;
          reject(new Uid2GatewayError(code, name, data && data.detail));
        } else {
          resolve(message.result);
        }
      } else if (typeof message.method === 'string') {
        for (const handler of handlers) handler(message.method, message.params || {});
      }
    },
    fail(error) {
      failure = error;
      for (const { reject } of pending.values()) reject(error);
      pending.clear();
    },
    call(method, params = {}) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        try {
          send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
        } catch (error) {
          pending.delete(id);
          reject(unavailable(`the bridge refused the message: ${error.message}`));
        }
      });
    },
    onNotification(handler) { handlers.push(handler); },
  };
}

// The gateway's address without the session secret, for messages.
function gatewayAddress(endpoint) {
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}`;
  } catch {
    return 'uid2-gateway';
  }
}

// Why the WebSocket closed before it opened, as far as a page can tell. A page whose
// origin is public needs Local Network Access to reach a loopback address (Chromium 142+).
async function unreachable(endpoint) {
  const where = gatewayAddress(endpoint);
  let detail = `cannot connect to uid2-gateway at ${where}: the session is unknown, used or closed, ` +
    'the gateway is not running, or the browser blocked the connection';
  let permission;
  if (/^wss?:\/\/(127\.|localhost[:/]|\[::1\])/.test(endpoint) && globalThis.navigator?.permissions) {
    for (const name of ['loopback-network', 'local-network-access']) {
      try {
        permission = (await navigator.permissions.query({ name })).state;
        break;
      } catch { /* not a permission this browser knows */ }
    }
  }
  if (permission && permission !== 'granted') {
    detail += `. This page's loopback-network permission is "${permission}": a page whose origin is ` +
      `public (an app hosted on the internet) reaches ${where} only when the runtime grants its origin ` +
      'local network access (Chromium: the LoopbackNetworkAllowedForUrls policy), or gives it a bridge ' +
      'instead (docs/html5.md)';
  }
  const error = unavailable(detail);
  error.localNetworkAccess = permission;
  return error;
}

/**
 * A transport over the gateway's WebSocket endpoint: `call(method, params)` resolves with
 * the JSON-RPC result (rejects with Uid2GatewayError), `onNotification(handler)` receives
 * `(method, params)`. Calls made before the socket opens wait for it; if it does not open
 * (within `connectTimeoutMs`) or closes, they reject with `Unavailable` and the reason,
 * which is also written to the console once. Never names the session secret.
 */
function gatewayTransport(endpoint, { WebSocketImpl = globalThis.WebSocket, connectTimeoutMs = 10000 } = {}) {
  let socket;
  const peer = jsonRpcPeer((text) => socket.send(text));
  const fail = (error) => {
    console.error(`UID2 TV SDK: ${error.message}`);
    peer.fail(error);
  };
  const opened = new Promise((resolve, reject) => {
    try {
      socket = new WebSocketImpl(endpoint);
    } catch (error) {
      reject(unavailable(`cannot open a WebSocket to ${gatewayAddress(endpoint)}: ${error.name}`));
      return;
    }
    let open = false;
    const timer = setTimeout(() => {
      reject(unavailable(`uid2-gateway at ${gatewayAddress(endpoint)} did not answer within ` +
        `${connectTimeoutMs} ms (a local network access prompt the runtime does not show?)`));
      socket.close();
    }, connectTimeoutMs);
    socket.addEventListener('open', () => { open = true; clearTimeout(timer); resolve(); });
    socket.addEventListener('message', (event) => peer.receive(event.data));
    socket.addEventListener('close', () => {
      clearTimeout(timer);
      if (open) peer.fail(unavailable('the gateway session ended'));
      else unreachable(endpoint).then(reject);
    });
  });
  opened.catch(fail);
  return {
    async call(method, params) {
      await opened;
      return peer.call(method, params);
    },
    onNotification: peer.onNotification,
    close() { if (socket) socket.close(); },
  };
}

/**
 * A transport over a bridge the runtime injects instead of a network endpoint: an object
 * with `postMessage(text)` (a JSON-RPC request to relay to the app's gateway session) and
 * an `onmessage` property that this sets and the runtime calls with each JSON-RPC text
 * (a string, or an event whose `data` is one) the gateway sent. A MessagePort fits.
 */
function bridgeTransport(bridge) {
  if (!bridge || typeof bridge.postMessage !== 'function') {
    throw new TypeError('a bridge needs postMessage(text) and an onmessage the SDK sets');
  }
  const peer = jsonRpcPeer((text) => bridge.postMessage(text));
  bridge.onmessage = (message) => peer.receive(typeof message === 'string' ? message : message && message.data);
  return { call: peer.call, onNotification: peer.onNotification };
}

// A page given no way to reach uid2d: every call fails with the reason.
function unavailableTransport(reason) {
  console.error(`UID2 TV SDK: ${reason}`);
  const error = unavailable(reason);
  return { call: () => Promise.reject(error), onNotification() {} };
}

/** The web SDK's `__uid2Helper`: DII normalisation and hashing as the SDK does them. */
class Uid2Helper {
  normalizeEmail(email) {
    if (!email || !email.length) return undefined;
    const parsed = email.trim().toLowerCase();
    if (parsed.indexOf(' ') > 0) return undefined;
    const parts = parsed.split('@');
    if (parts.length !== 2 || parts.some((part) => part === '')) return undefined;
    let [address] = parts;
    const domain = parts[1];
    if (domain === 'gmail.com') address = address.replaceAll('.', '').split('+')[0];
    return address ? `${address}@${domain}` : undefined;
  }

  /** SHA-256 of `value`, hex. */
  async hashIdentifier(value) {
    const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value));
    return [...new Uint8Array(hash)].map((x) => x.toString(16).padStart(2, '0')).join('');
  }

  /** SHA-256 of `value`, Base64: what `setIdentityFromEmailHash` takes. */
  async hashAndEncodeIdentifier(value) {
    const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value));
    return btoa(String.fromCharCode(...new Uint8Array(hash)));
  }

  isNormalizedPhone(phone) { return /^\+[0-9]{10,15}$/.test(phone); }
}

// When a page's CMP is looked for again after init(), in ms from init(): a CMP's stub is
// meant to be in the page's head (then it is found at once), a CMP without one may load later.
const CMP_LOOKS_MS = [250, 1000, 3000, 10000];
// TCF v2.2 events that carry the person's choice (CMP API v2.2, "addEventListener").
const TCF_EVENTS = new Set(['tcloaded', 'useractioncomplete']);

/**
 * Forwards the page's consent management platform (CMP) to uid2d: registers an event
 * listener with `__tcfapi` (IAB TCF v2.2 CMP API) and `__gpp` (IAB GPP CMP API v1.1) and
 * reads `__uspapi` (US Privacy), and on each TCF `tcloaded`/`useractioncomplete` event and
 * each GPP event whose `pingData.signalStatus` is `ready` sends the merged IAB on-device
 * keys (`IABTCF_TCString`, `IABTCF_gdprApplies` 0/1, `IABGPP_HDR_GppString`,
 * `IABGPP_GppSID` = `applicableSections` joined by `_`, `IABUSPrivacy_String`) with
 * `setPrivacySignals`, which replaces the app's whole set; a set equal to the last one sent
 * is not sent again. `start(enabled)` begins (the first call decides); an API not on the
 * page yet is looked for again CMP_LOOKS_MS after. A refusal goes to `console.warn` with
 * uid2d's reason, which names the key, never the string.
 */
function cmpForwarder(transport, target = globalThis) {
  const tcf = {};
  const gpp = {};
  let usPrivacy;
  let sent = null;
  let sending = Promise.resolve();
  let started = false;
  const listening = { tcf: false, gpp: false, usp: false };
  const warn = (what) => console.warn(`UID2 TV SDK: ${what}`);
  const replace = (held, fresh) => {
    for (const key of Object.keys(held)) delete held[key];
    Object.assign(held, fresh);
  };

  const forward = () => {
    const signals = { ...tcf, ...gpp };
    if (usPrivacy) signals.IABUSPrivacy_String = usPrivacy;
    const text = JSON.stringify(signals);
    if (text === sent) return;
    sent = text;
    sending = sending
      .then(() => transport.call('setPrivacySignals', { signals }))
      .then(() => {}, (error) => warn(`uid2d did not take the page's CMP signals: ${error.message}`));
  };

  // US Privacy has no events: it is read again whenever TCF or GPP says something changed.
  const readUsPrivacy = () => {
    if (typeof target.__uspapi !== 'function') return;
    try {
      target.__uspapi('getUSPData', 1, (data, success) => {
        const value = success && data && typeof data.uspString === 'string' ? data.uspString : '';
        if (value && value !== usPrivacy) {
          usPrivacy = value;
          forward();
        }
      });
    } catch (error) { warn(`the page's __uspapi threw ${error.name}`); }
  };

  const onTcf = (tcData, success) => {
    if (!success || !tcData || !TCF_EVENTS.has(tcData.eventStatus)) return;
    const fresh = {};
    if (typeof tcData.tcString === 'string' && tcData.tcString) fresh.IABTCF_TCString = tcData.tcString;
    if (typeof tcData.gdprApplies === 'boolean') fresh.IABTCF_gdprApplies = tcData.gdprApplies ? 1 : 0;
    replace(tcf, fresh);
    readUsPrivacy();
    forward();
  };

  const onGpp = (event, success) => {
    const ping = event && event.pingData;
    if (success === false || !ping || ping.signalStatus !== 'ready') return;
    const fresh = {};
    if (typeof ping.gppString === 'string' && ping.gppString) fresh.IABGPP_HDR_GppString = ping.gppString;
    const sections = ping.applicableSections;
    if (Array.isArray(sections) && sections.length && sections.every(Number.isInteger)) {
      fresh.IABGPP_GppSID = sections.join('_');
    }
    replace(gpp, fresh);
    readUsPrivacy();
    forward();
  };

  const listen = (name, register) => {
    try { register(); } catch (error) { warn(`the page's ${name} threw ${error.name}`); }
  };
  // Registers with each API the page has now; true once all three are heard.
  const look = () => {
    if (!listening.tcf && typeof target.__tcfapi === 'function') {
      listening.tcf = true;
      listen('__tcfapi', () => target.__tcfapi('addEventListener', 2, onTcf));
    }
    if (!listening.gpp && typeof target.__gpp === 'function') {
      listening.gpp = true;
      listen('__gpp', () => target.__gpp('addEventListener', onGpp));
    }
    if (!listening.usp && typeof target.__uspapi === 'function') {
      listening.usp = true;
      readUsPrivacy();
    }
    return listening.tcf && listening.gpp && listening.usp;
  };

  return {
    start(enabled) {
      if (started) return;
      started = true;
      if (!enabled || look()) return;
      for (const delay of CMP_LOOKS_MS) setTimeout(look, delay);
    },
  };
}

const PRODUCT_NAMES = { uid2: 'UID2', euid: 'EUID' };
// uid2d statuses in which a token is served (an empty one under limit ad tracking).
const SERVING = new Set(['established', 'refreshed']);

/** The `__uid2`-shaped object of one product (`uid2` or `euid`) over `transport`. */
class Uid2TvSdk {
  static IdentityStatus = IdentityStatus;
  static EventType = EventType;

  constructor(product, transport, existingCallbacks, cmp) {
    this.callbacks = Array.isArray(existingCallbacks) ? existingCallbacks : [];
    this._product = product;
    this._name = PRODUCT_NAMES[product];
    this._prefix = product === 'euid' ? 'euid.' : '';
    this._transport = transport;
    this._cmp = cmp;               // the page's cmpForwarder, shared by __uid2 and __euid
    // What the SDK holds: uid2d's state, once read.
    this._known = false;
    this._status = undefined;      // uid2d's status name
    this._token = '';              // what GetAdvertisingToken answered
    this._identity = null;         // the identity without its refresh secrets
    this._epoch = 0;               // disconnect() discards reads begun before it
    this._reads = Promise.resolve();
    // The web SDK reports a new identity as "established" after start and disconnect(),
    // "refreshed" otherwise.
    this._fresh = true;
    this._initCalled = false;
    this._initComplete = false;
    this._initCallbacks = [];
    this._initIdentity = undefined;
    this._initQueue = Promise.resolve();
    this._initPending = 0;
    this._inFlight = 0;            // identity-changing calls under way (active requests)
    this._resetting = 0;
    this._changedMeanwhile = false;
    this._waiting = [];            // getAdvertisingTokenAsync promises
    this._seenInitOrRejectAll = false;
    this._sdkLoaded = false;
    this._started = Promise.resolve();
    this._unavailable = null;     // why uid2d could not be reached, if it could not
    this._sentInit = false;
    this.callbacks.push = (...added) => {
      for (const callback of added) {
        if (this._sdkLoaded) this._run(callback, EventType.SdkLoaded, {});
        if (this._sentInit) this._run(callback, EventType.InitCompleted, { identity: this.getIdentity() });
      }
      return Array.prototype.push.apply(this.callbacks, added);
    };
    transport.onNotification((method, params) => {
      if (method === 'identityStatusChanged' && (params.product || 'uid2') === product) this._changed();
    });
  }

  _call(method, params) { return this._transport.call(this._prefix + method, params); }

  _run(callback, event, payload) {
    if (typeof callback !== 'function') return;
    try { callback(event, payload); } catch (error) { console.warn(`${this._name} TV SDK: a callback threw`, error); }
  }

  _emit(event) {
    if (event === EventType.SdkLoaded) this._sdkLoaded = true;
    if (event === EventType.InitCompleted) this._sentInit = true;
    const payload = { identity: this.getIdentity() };
    if (event === EventType.InitCompleted || event === EventType.IdentityUpdated) this._settle(payload.identity, event);
    if (!this._sdkLoaded) return;
    for (const callback of [...this.callbacks]) this._run(callback, event, payload);
  }

  // getAdvertisingTokenAsync promises settle on InitCompleted and IdentityUpdated once no
  // identity call is under way (the web SDK's PromiseHandler).
  _settle(identity, event) {
    if (event === EventType.InitCompleted) this._seenInitOrRejectAll = true;
    if (this._inFlight > 0) return;
    const waiting = this._waiting;
    this._waiting = [];
    for (const { resolve, reject } of waiting) {
      if (identity) resolve(identity.advertising_token);
      else reject(new Error('No identity available.'));
    }
  }

  _rejectAll(error) {
    this._seenInitOrRejectAll = true;
    const waiting = this._waiting;
    this._waiting = [];
    for (const { reject } of waiting) reject(error);
  }

  // Reads uid2d's state (one read at a time) and holds it: whether the status or the
  // token changed, and whether the user opted out just now.
  _read() {
    const read = this._reads.then(async () => {
      const epoch = this._epoch;
      const [status, token, identity] = await Promise.all([
        this._call('getIdentityStatus'), this._call('getAdvertisingToken'), this._call('getIdentity'),
      ]);
      if (epoch !== this._epoch) return { changed: false, optedOutNow: false };
      // A change is a new token or another kind of state: uid2d's "refreshed" for the
      // same identity set again is none (the web SDK compares the token).
      const kind = (name) => (SERVING.has(name) ? 'serving' : name);
      const change = {
        changed: kind(status) !== kind(this._status) || token !== this._token,
        optedOutNow: status === 'opt_out' && this._status !== 'opt_out',
      };
      this._known = true;
      this._unavailable = null;
      this._status = status;
      this._token = token;
      this._identity = identity;
      return change;
    });
    this._reads = read.catch(() => {});
    return read;
  }

  // The web SDK's init-callback status for what is held now.
  _initState(atInit) {
    const status = this._status;
    let state;
    if (SERVING.has(status)) {
      state = this._fresh ? [IdentityStatus.ESTABLISHED, 'Identity established'] : [IdentityStatus.REFRESHED, 'Identity refreshed'];
    } else if (status === 'expired') {
      state = [IdentityStatus.EXPIRED, 'Identity expired, refresh still valid'];
    } else if (status === 'opt_out') {
      state = [IdentityStatus.OPTOUT, atInit ? 'User has opted out' : 'User opted out'];
    } else if (status === 'refresh_expired') {
      state = [IdentityStatus.REFRESH_EXPIRED, atInit ? 'Identity expired, refresh expired' : 'Refresh token expired'];
    } else if (status === 'invalid') {
      state = [IdentityStatus.INVALID, 'Identity invalid'];
    } else {
      state = [IdentityStatus.NO_IDENTITY, 'Identity not available'];
    }
    return state;
  }

  // Runs every init({callback}) callback, as the web SDK does on each identity change.
  _notifyInit([status, statusText]) {
    this._fresh = false;
    const token = this.getAdvertisingToken();
    for (const callback of [...this._initCallbacks]) {
      try {
        callback({ advertisingToken: token, advertising_token: token, status, statusText });
      } catch (error) { console.warn(`${this._name} TV SDK: the init callback threw`, error); }
    }
  }

  // Tells the page about a change: init callbacks, OptoutReceived, IdentityUpdated.
  _announce(change, always = false) {
    if (change.changed) this._notifyInit(this._initState(false));
    if (change.optedOutNow) this._emit(EventType.OptoutReceived);
    if (change.changed || always) this._emit(EventType.IdentityUpdated);
    else this._settle(this.getIdentity(), EventType.IdentityUpdated);
  }

  // uid2d says this app's identity changed (a refresh, an opt-out, another page).
  _changed() {
    if (this._inFlight > 0 || this._resetting > 0 || this._initPending > 0) {
      this._changedMeanwhile = true;   // read when that call ends
      return;
    }
    this._read().then((change) => { if (this._initComplete) this._announce(change); }, () => {});
  }

  // After a call of the page's own: read, then announce as the web SDK does.
  async _afterCall(failure, always) {
    let change = { changed: false, optedOutNow: false };
    try { change = await this._read(); } catch (error) { failure = failure ?? error; }
    this._changedMeanwhile = false;
    if (this._initComplete) this._announce(change, always && !failure);
    if (failure) throw failure;
  }

  // An identity-changing call: getAdvertisingTokenAsync waits for it.
  async _change(method, params) {
    this._inFlight++;
    let failure;
    try { await this._call(method, params); } catch (error) { failure = error; }
    this._inFlight--;
    await this._afterCall(failure, true);
  }

  // Reads uid2d's state once the transport is there, then sends SdkLoaded. A page that
  // cannot reach uid2d holds no identity (and every call says why).
  async _start() {
    try { await this._read(); } catch (error) { this._unreachable(error); }
    this._emit(EventType.SdkLoaded);
  }

  _unreachable(error) {
    if (error.errorName === 'Unavailable') this._unavailable = error;
    if (!this._known) { this._known = true; this._status = 'no_identity'; }
  }

  /**
   * Starts the SDK, as often as the page likes (web SDK v4): `opts.callback` joins the
   * init callbacks, which run now and on every identity change; `opts.identity` is given
   * to uid2d (on a later call only when it expires later than the last one given). Then
   * `InitCompleted` (and `OptoutReceived` when opted out) go to `callbacks`. Completes at
   * once when uid2d's state is held and no identity is given; else once uid2d answered.
   * Returns a promise of that moment (the web SDK returns nothing). The page's first
   * `init()` (of `__uid2` or `__euid`) starts forwarding its CMP to uid2d (cmpForwarder)
   * unless `opts.forwardCmp` is `false`. Throws TypeError for options that are not an
   * object, a callback that is not a function or a `forwardCmp` that is not a boolean.
   */
  init(opts) {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('opts must be an object');
    if (opts.callback !== undefined && typeof opts.callback !== 'function') {
      throw new TypeError('opts.callback, if provided, must be a function');
    }
    if (opts.forwardCmp !== undefined && typeof opts.forwardCmp !== 'boolean') {
      throw new TypeError('opts.forwardCmp, if provided, must be a boolean');
    }
    if (this._cmp) this._cmp.start(opts.forwardCmp !== false);
    const first = !this._initCalled;
    this._initCalled = true;
    if (opts.callback && !this._initCallbacks.includes(opts.callback)) this._initCallbacks.push(opts.callback);
    let identity = null;
    if (opts.identity) {
      const last = this._initIdentity;
      if (first || !last || opts.identity.identity_expires > last.identity_expires) identity = opts.identity;
      this._initIdentity = opts.identity;
    }
    if (!identity && this._sdkLoaded && this._initPending === 0) {
      this._completeInit(first, null, { changed: false, optedOutNow: false });
      return Promise.resolve();
    }
    this._initPending++;
    const done = this._initQueue.then(() => this._initLater(first, identity));
    this._initQueue = done;
    return done;
  }

  async _initLater(first, identity) {
    await this._started;
    let failure = null;
    let change = { changed: false, optedOutNow: false };
    if (identity) {
      this._inFlight++;
      try { await this._call('setIdentity', { identity }); } catch (error) { failure = error; }
      this._inFlight--;
    }
    try {
      change = await this._read();
    } catch (error) {
      failure = failure ?? error;
      this._unreachable(error);
    }
    this._initPending--;
    this._changedMeanwhile = false;
    this._completeInit(first, failure, change);
  }

  _completeInit(first, failure, change) {
    failure = failure ?? this._unavailable;
    if (first) {
      // Starting without an identity, the web SDK clears what it holds and says so.
      if (!SERVING.has(this._status) && this._status !== 'expired' && this._status !== 'opt_out') {
        this._emit(EventType.IdentityUpdated);
      }
      // An identity uid2d refused is reported as the web SDK does (invalid, or refresh
      // expired), with uid2d's reason; so is a gateway that cannot be reached.
      const refused = failure
        ? { InvalidIdentity: IdentityStatus.INVALID, IdentityExpired: IdentityStatus.REFRESH_EXPIRED }[failure.errorName]
        : undefined;
      if (refused !== undefined) this._notifyInit([refused, failure.message]);
      else if (failure && failure.errorName === 'Unavailable') this._notifyInit([IdentityStatus.NO_IDENTITY, failure.message]);
      else this._notifyInit(this._initState(true));
    } else if (change.changed) {
      this._notifyInit(this._initState(false));
    }
    this._initComplete = true;
    this._emit(EventType.InitCompleted);
    if (this._status === 'opt_out') this._emit(EventType.OptoutReceived);
  }

  /** Whether `init()` has completed. */
  isInitComplete() { return this._initComplete; }

  /** The advertising token held (uid2d's `GetAdvertisingToken`), else `undefined`; also before init. */
  getAdvertisingToken() { return this._token || undefined; }

  /**
   * Resolves with the token once init (and any identity call under way) is done; rejects
   * when there is none: `Identity not available` at once, `No identity available.` when
   * it waited, `UID2 SDK aborted.` on disconnect() (the web SDK's words).
   */
  getAdvertisingTokenAsync() {
    if (!this._seenInitOrRejectAll || this._inFlight > 0) {
      return new Promise((resolve, reject) => this._waiting.push({ resolve, reject }));
    }
    return this._token ? Promise.resolve(this._token) : Promise.reject(new Error('Identity not available'));
  }

  /**
   * Whether the user must log in (or an identity be generated): false while one is held,
   * expired but refreshable, opted out, or being set; `undefined` until uid2d's state is
   * read (before SdkLoaded). Also before init, from what is held.
   */
  isLoginRequired() {
    if (!this._known) return undefined;
    if (SERVING.has(this._status) || this._status === 'opt_out' || this._status === 'expired') return false;
    return this._inFlight === 0;
  }

  /**
   * Whether an identity is held: true for a served one and for an opt-out (the web SDK
   * holds an opt-out identity), or while one is being set; before init, `undefined`
   * instead of false, as the web SDK.
   */
  isIdentityAvailable() {
    if (!this._known) return undefined;
    if (SERVING.has(this._status) || this._status === 'opt_out') return true;
    return this._initCalled ? this._inFlight > 0 : undefined;
  }

  /** `undefined` before init; else whether uid2d holds this app's opt-out. */
  hasOptedOut() {
    if (!this._initComplete) return undefined;
    return this._status === 'opt_out';
  }

  /** The identity held, without `refresh_token`/`refresh_response_key`, or `null`. */
  getIdentity() {
    return this._token && this._identity ? this._identity : null;
  }

  /**
   * Gives uid2d an identity from the publisher's server. Throws before init (as the web
   * SDK); returns a promise that resolves when uid2d stored it, then `IdentityUpdated`
   * follows. An identity uid2d refuses rejects it (and is logged) and changes nothing.
   */
  setIdentity(identity) {
    if (!this._initCalled) throw new Error('Cannot set identity before calling init.');
    const done = this._change('setIdentity', { identity });
    done.catch((error) => console.warn(`${this._name} TV SDK: setIdentity: ${error.message}`));
    return done;
  }

  /** Client-side token generation in uid2d; `opts` may name `subscriptionId` and
   * `serverPublicKey` (else uid2d's `[generate]` config). Rejects with Uid2GatewayError. */
  setIdentityFromEmail(email, opts) { return this._generate('email', email, opts); }
  setIdentityFromEmailHash(hash, opts) { return this._generate('email_hash', hash, opts); }
  setIdentityFromPhone(phone, opts) { return this._generate('phone', phone, opts); }
  setIdentityFromPhoneHash(hash, opts) { return this._generate('phone_hash', hash, opts); }

  async _generate(kind, value, opts = {}) {
    if (!this._initComplete) throw new Error('Cannot set identity before calling init.');
    const params = { kind, value };
    if (opts.subscriptionId !== undefined) params.subscriptionId = opts.subscriptionId;
    if (opts.serverPublicKey !== undefined) params.serverPublicKey = opts.serverPublicKey;
    return this._change('generateIdentity', params);
  }

  /**
   * Forgets the identity: at once in the page (no token, `IdentityUpdated` with `identity:
   * null`, waiting promises rejected), then in uid2d (`ResetIdentity`). Returns a promise
   * of uid2d's answer (the web SDK returns nothing).
   */
  disconnect() {
    this._rejectAll(new Error(`${this._name} SDK aborted.`));
    this._epoch++;
    this._known = true;
    this._status = 'no_identity';
    this._token = '';
    this._identity = null;
    this._fresh = true;
    this._emit(EventType.IdentityUpdated);
    this._resetting++;
    const reset = this._call('resetIdentity');
    const done = reset.then(
      () => { this._resetting--; return this._afterCall(null, false); },
      (error) => { this._resetting--; throw error; },
    );
    done.catch((error) => console.warn(`${this._name} TV SDK: uid2d did not forget the identity: ${error.message}`));
    return done;
  }

  /** uid2d's token info (status, product, source, environment, times); never a token. */
  getTokenInfo() { return this._call('getTokenInfo'); }

  /** The OpenRTB 2.6 `user.eids` array for the served token (`[]` without one). */
  getEids() { return this._call('getEids'); }

  /** A token that stays valid for `seconds` (one refresh first if needed), or `''`. */
  getAdvertisingTokenValidFor(seconds) { return this._call('getAdvertisingTokenValidFor', { seconds }); }

  /** The app's own privacy signals as uid2d holds them (the IAB keys), `{}` when none. */
  getPrivacySignals() { return this._call('getPrivacySignals'); }

  /**
   * Sets the app's privacy signals (an object of IAB keys; replaces the whole set): `granted`
   * or `denied`. A page whose CMP the SDK forwards need not call it (docs/html5.md).
   */
  setPrivacySignals(signals) { return this._call('setPrivacySignals', { signals }); }

  /** uid2d's decision for this product: `{consent, reason, source, jurisdiction, gdpr_applies}`. */
  getConsent() { return this._call('getConsent'); }

  /** The OpenRTB object (`user.eids`, `user.consent`, `regs`); `opts.placement`, `opts.product`. */
  getBidSignals(opts = {}) { return this._call('getBidSignals', opts); }

  /** The app's tracking authorization: `authorized`, `denied`, `restricted` or `not_determined`. */
  getTrackingAuthorization() { return this._call('getTrackingAuthorization'); }

  /** Asks the person (the TV's settings app) to decide; the state once decided, or `not_determined` after at most 20 s. */
  requestTrackingAuthorization() { return this._call('requestTrackingAuthorization'); }
}

/**
 * Installs `target.__uid2` and `target.__euid` (and the helpers `__uid2Helper`,
 * `__euidHelper`) over one transport: the gateway `endpoint` given to the app, a runtime
 * `bridge` (see bridgeTransport), or any `transport` with `call`/`onNotification`. With
 * none of the three it takes them from `target.__uid2TvConfig`, which a runtime sets
 * before the page's scripts run; with nothing there either, every call fails with the
 * reason (also on the console). Keeps callbacks a page pushed before (`window.__uid2 =
 * { callbacks: [] }`); reads uid2d's state, then sends them `SdkLoaded`.
 * Returns `{ uid2, euid, transport, ready }` (`ready`: a promise of SdkLoaded).
 */
function installUid2TvSdk({ endpoint, transport, bridge, target = globalThis, WebSocketImpl } = {}) {
  const given = endpoint !== undefined || transport !== undefined || bridge !== undefined;
  const config = given ? { endpoint, transport, bridge } : (target.__uid2TvConfig || {});
  if (config.transport) {
    transport = config.transport;
  } else if (config.bridge) {
    transport = bridgeTransport(config.bridge);
  } else if (typeof config.endpoint === 'string') {
    transport = gatewayTransport(config.endpoint, WebSocketImpl ? { WebSocketImpl } : undefined);
  } else {
    transport = unavailableTransport('this page was given no uid2-gateway endpoint or bridge: the runtime sets ' +
      'window.__uid2TvConfig = { endpoint } or { bridge } before the page runs (docs/html5.md)');
  }
  const installed = { transport };
  const cmp = cmpForwarder(transport, target);
  for (const [name, product] of [['__uid2', 'uid2'], ['__euid', 'euid']]) {
    const sdk = new Uid2TvSdk(product, transport, target[name] && target[name].callbacks, cmp);
    target[name] = sdk;
    target[`${name}Helper`] = new Uid2Helper();
    installed[product] = sdk;
  }
  for (const sdk of [installed.uid2, installed.euid]) sdk._started = sdk._start();
  installed.ready = Promise.all([installed.uid2._started, installed.euid._started]).then(() => {});
  return installed;
}

globalThis.uid2TvSdk = Object.freeze({ IdentityStatus, EventType, Uid2GatewayError, gatewayTransport, bridgeTransport, Uid2Helper, Uid2TvSdk, installUid2TvSdk });
if (!(globalThis.__uid2 && typeof globalThis.__uid2.init === 'function')) installUid2TvSdk();
})();
