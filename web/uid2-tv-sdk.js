// SPDX-License-Identifier: Apache-2.0
//
// uid2-tv-sdk.js: the UID2 web SDK's `__uid2` API (and the EUID twin, `__euid`) for an
// HTML5 TV app, backed by uid2d through the app's uid2-gateway session (docs/html5.md).
// The identity lives in uid2d, not in the page: storage, refresh while the app is closed,
// opt-out and the refresh token stay there. One ES module, no dependencies, no build step.
//
//   import { installUid2TvSdk } from './uid2-tv-sdk.js';
//   installUid2TvSdk({ endpoint: launchParams.uid2Endpoint });   // ws://127.0.0.1:7685/session/…
//   window.__uid2.init({ callback: (state) => { … } });
//
// Differences from the web SDK are listed in web/README.md.

/** The web SDK's status codes (`IdentityStatus`), by uid2d's status names. */
export const IdentityStatus = Object.freeze({
  ESTABLISHED: 0,
  REFRESHED: 1,
  EXPIRED: 100,
  NO_IDENTITY: -1,
  INVALID: -2,
  REFRESH_EXPIRED: -3,
  OPTOUT: -4,
});

const STATUS_CODES = {
  established: IdentityStatus.ESTABLISHED,
  refreshed: IdentityStatus.REFRESHED,
  expired: IdentityStatus.EXPIRED,
  no_identity: IdentityStatus.NO_IDENTITY,
  invalid: IdentityStatus.INVALID,
  refresh_expired: IdentityStatus.REFRESH_EXPIRED,
  opt_out: IdentityStatus.OPTOUT,
};

const STATUS_TEXT = {
  established: 'Identity established',
  refreshed: 'Identity refreshed',
  expired: 'Identity expired, refresh still valid',
  no_identity: 'Identity not available',
  invalid: 'Identity invalid',
  refresh_expired: 'Identity expired, refresh expired',
  opt_out: 'User has opted out',
};

/** The events the web SDK sends to `callbacks`. */
export const EventType = Object.freeze({
  SdkLoaded: 'SdkLoaded',
  InitCompleted: 'InitCompleted',
  IdentityUpdated: 'IdentityUpdated',
  OptoutReceived: 'OptoutReceived',
});

/** A JSON-RPC error from the gateway: `code` (docs/html5.md), `name` (e.g. `InvalidArgument`). */
export class Uid2GatewayError extends Error {
  constructor(code, name, detail) {
    super(detail ? `${name}: ${detail}` : name);
    this.name = 'Uid2GatewayError';
    this.code = code;
    this.errorName = name;
  }
}

/**
 * A transport over the gateway's WebSocket endpoint: `call(method, params)` resolves with
 * the JSON-RPC result (rejects with Uid2GatewayError), `onNotification(handler)` receives
 * `(method, params)`. Calls made before the socket opens wait for it; after it closes
 * they reject. Any OEM transport with these two functions works in its place.
 */
export function gatewayTransport(endpoint, { WebSocketImpl = globalThis.WebSocket } = {}) {
  const pending = new Map();
  const handlers = [];
  let nextId = 1;
  let closedError = null;
  const socket = new WebSocketImpl(endpoint);
  const opened = new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve());
    socket.addEventListener('close', () => reject(new Uid2GatewayError(-32010, 'Unavailable', 'no session')));
  });
  opened.catch(() => {});
  socket.addEventListener('close', () => {
    closedError = new Uid2GatewayError(-32010, 'Unavailable', 'the gateway session ended');
    for (const { reject } of pending.values()) reject(closedError);
    pending.clear();
  });
  socket.addEventListener('message', (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
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
  });
  return {
    async call(method, params = {}) {
      await opened;
      if (closedError) throw closedError;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      });
    },
    onNotification(handler) { handlers.push(handler); },
    close() { socket.close(); },
  };
}

const LOGGED_IN = new Set(['established', 'refreshed', 'expired']);

/** The `__uid2`-shaped object of one product (`uid2` or `euid`) over `transport`. */
export class Uid2TvSdk {
  static IdentityStatus = IdentityStatus;
  static EventType = EventType;

  constructor(product, transport, existingCallbacks) {
    this.callbacks = Array.isArray(existingCallbacks) ? existingCallbacks : [];
    this._product = product;
    this._prefix = product === 'euid' ? 'euid.' : '';
    this._transport = transport;
    this._status = undefined;      // uid2d's status name, once known
    this._token = '';              // what GetAdvertisingToken answered
    this._identity = null;         // the identity without its refresh secrets
    this._initCalled = false;
    this._initComplete = false;
    this._inFlight = 0;            // identity-changing calls under way
    this._waiting = [];            // getAdvertisingTokenAsync promises
    this._sdkLoaded = false;
    this.callbacks.push = (...added) => {
      for (const callback of added) {
        if (this._sdkLoaded) this._run(callback, EventType.SdkLoaded, {});
        if (this._initComplete) this._run(callback, EventType.InitCompleted, { identity: this.getIdentity() });
      }
      return Array.prototype.push.apply(this.callbacks, added);
    };
    transport.onNotification((method, params) => {
      if (method === 'identityStatusChanged' && (params.product || 'uid2') === product && this._initComplete) {
        this._sync().catch(() => {});
      }
    });
  }

  _call(method, params) { return this._transport.call(this._prefix + method, params); }

  _run(callback, event, payload) {
    if (typeof callback !== 'function') return;
    try { callback(event, payload); } catch (error) { console.warn(`${this._product} TV SDK: a callback threw`, error); }
  }

  _emit(event, payload = {}) {
    const enriched = event === EventType.SdkLoaded ? payload : { ...payload, identity: this.getIdentity() };
    for (const callback of [...this.callbacks]) this._run(callback, event, enriched);
  }

  _loaded() {
    this._sdkLoaded = true;
    this._emit(EventType.SdkLoaded);
  }

  // Reads uid2d's state; announces IdentityUpdated (and OptoutReceived) when the status
  // or the token changed.
  async _sync() {
    const [status, token, identity] = await Promise.all([
      this._call('getIdentityStatus'), this._call('getAdvertisingToken'), this._call('getIdentity'),
    ]);
    const changed = status !== this._status || token !== this._token;
    const optedOutNow = status === 'opt_out' && this._status !== 'opt_out';
    this._status = status;
    this._token = token;
    this._identity = identity;
    if (!this._initComplete) return;
    if (changed) this._emit(EventType.IdentityUpdated);
    if (optedOutNow) this._emit(EventType.OptoutReceived);
    this._settle();
  }

  _settle() {
    if (!this._initComplete || this._inFlight > 0) return;
    const waiting = this._waiting;
    this._waiting = [];
    for (const { resolve, reject } of waiting) {
      if (this._token) resolve(this._token);
      else reject(new Error('Identity not available'));
    }
  }

  // An identity-changing call: getAdvertisingTokenAsync waits for it.
  async _change(method, params) {
    if (!this._initComplete) throw new Error('Cannot set identity before calling init.');
    this._inFlight++;
    try {
      await this._call(method, params);
    } finally {
      this._inFlight--;
      await this._sync().catch(() => this._settle());
    }
  }

  /**
   * Starts the SDK: `opts.identity` (optional) is given to uid2d first; then uid2d's state
   * is read, `opts.callback({advertisingToken, advertising_token, status, statusText})`
   * runs, and `InitCompleted` (and `OptoutReceived` if opted out) go to `callbacks`.
   * Returns a promise of the same moment (the web SDK returns nothing). Throws TypeError
   * when called twice or with non-object options.
   */
  init(opts = {}) {
    if (this._initCalled) throw new TypeError('Calling init() more than once is not allowed');
    if (typeof opts !== 'object' || opts === null) throw new TypeError('init options must be an object');
    this._initCalled = true;
    return (async () => {
      let failure;
      if (opts.identity) {
        try { await this._call('setIdentity', { identity: opts.identity }); } catch (error) { failure = error; }
      }
      try {
        await this._sync();
      } catch (error) {
        // No gateway (or no session): the page has no identity, as the web SDK without
        // a stored one.
        failure = failure ?? error;
        this._status = this._status ?? 'no_identity';
      }
      this._initComplete = true;
      if (typeof opts.callback === 'function') {
        const token = this.getAdvertisingToken();
        // A refused `opts.identity` is reported as the web SDK does (invalid, or refresh
        // expired), with uid2d's reason.
        const refused = failure && { InvalidIdentity: 'invalid', IdentityExpired: 'refresh_expired' }[failure.errorName];
        const status = refused || this._status;
        try {
          opts.callback({
            advertisingToken: token, advertising_token: token,
            status: STATUS_CODES[status] ?? IdentityStatus.NO_IDENTITY,
            statusText: failure ? failure.message : STATUS_TEXT[status],
          });
        } catch (error) { console.warn(`${this._product} TV SDK: the init callback threw`, error); }
      }
      this._emit(EventType.InitCompleted);
      if (this._status === 'opt_out') this._emit(EventType.OptoutReceived);
      this._settle();
    })();
  }

  /** The advertising token uid2d serves now, or `undefined` (also before init). */
  getAdvertisingToken() { return this._token || undefined; }

  /** Resolves with the token once init (and any identity call under way) is done; else rejects. */
  getAdvertisingTokenAsync() {
    if (!this._initComplete || this._inFlight > 0) {
      return new Promise((resolve, reject) => this._waiting.push({ resolve, reject }));
    }
    return this._token ? Promise.resolve(this._token) : Promise.reject(new Error('Identity not available'));
  }

  /** `undefined` before init; else whether there is no identity uid2d can serve or refresh. */
  isLoginRequired() {
    if (!this._initComplete) return undefined;
    return !(LOGGED_IN.has(this._status) || this._inFlight > 0);
  }

  /** Whether an identity is held (or being set). */
  isIdentityAvailable() { return LOGGED_IN.has(this._status) || this._inFlight > 0; }

  /** `undefined` before init; else whether uid2d holds this app's opt-out. */
  hasOptedOut() {
    if (!this._initComplete) return undefined;
    return this._status === 'opt_out';
  }

  /** The current identity without `refresh_token`/`refresh_response_key`, or `null`. */
  getIdentity() {
    return this._token && this._identity ? this._identity : null;
  }

  /** Gives uid2d an identity from the publisher's server; resolves when it is stored. */
  setIdentity(identity) { return this._change('setIdentity', { identity }); }

  /** Client-side token generation in uid2d; `opts` may name `subscriptionId` and
   * `serverPublicKey` (else uid2d's `[generate]` config). Rejects with Uid2GatewayError. */
  setIdentityFromEmail(email, opts) { return this._generate('email', email, opts); }
  setIdentityFromEmailHash(hash, opts) { return this._generate('email_hash', hash, opts); }
  setIdentityFromPhone(phone, opts) { return this._generate('phone', phone, opts); }
  setIdentityFromPhoneHash(hash, opts) { return this._generate('phone_hash', hash, opts); }

  _generate(kind, value, opts = {}) {
    const params = { kind, value };
    if (opts.subscriptionId !== undefined) params.subscriptionId = opts.subscriptionId;
    if (opts.serverPublicKey !== undefined) params.serverPublicKey = opts.serverPublicKey;
    return this._change('generateIdentity', params);
  }

  /** Forgets this app's identity in uid2d (the web SDK clears its cookie); `IdentityUpdated` follows. */
  disconnect() {
    const waiting = this._waiting;
    this._waiting = [];
    for (const { reject } of waiting) reject(new Error(`${this._product.toUpperCase()} SDK disconnected.`));
    return this._call('resetIdentity').then(() => this._sync());
  }

  /** uid2d's token info (status, product, source, environment, times); never a token. */
  getTokenInfo() { return this._call('getTokenInfo'); }

  /** The OpenRTB 2.6 `user.eids` array for the served token (`[]` without one). */
  getEids() { return this._call('getEids'); }

  /** A token that stays valid for `seconds` (one refresh first if needed), or `''`. */
  getAdvertisingTokenValidFor(seconds) { return this._call('getAdvertisingTokenValidFor', { seconds }); }
}

/**
 * Installs `target.__uid2` and `target.__euid` over one transport (the gateway `endpoint`
 * given to the app, or an OEM `transport`), keeping callbacks a page pushed before
 * (`window.__uid2 = { callbacks: [] }`), and sends them `SdkLoaded`.
 * Returns `{ uid2, euid, transport }`.
 */
export function installUid2TvSdk({ endpoint, transport, target = globalThis, WebSocketImpl } = {}) {
  if (!transport) {
    if (typeof endpoint !== 'string') throw new TypeError('installUid2TvSdk needs an endpoint or a transport');
    transport = gatewayTransport(endpoint, WebSocketImpl ? { WebSocketImpl } : undefined);
  }
  const installed = { transport };
  for (const [name, product] of [['__uid2', 'uid2'], ['__euid', 'euid']]) {
    const sdk = new Uid2TvSdk(product, transport, target[name] && target[name].callbacks);
    target[name] = sdk;
    installed[product] = sdk;
  }
  installed.uid2._loaded();
  installed.euid._loaded();
  return installed;
}
