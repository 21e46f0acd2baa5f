// Web Push on uploadd's page: a "Notify me" control on the Upload and
// Library views that subscribes this browser, so its user hears when a
// file's renditions are ready, even with the page closed; and stops it.
// The service worker /push/worker.js shows the notifications. Self-contained:
// it reads the session app.js keeps in localStorage and adds its own
// controls, so app.js knows nothing of it.
"use strict";

(() => {
  const WORKER = "/push/worker.js";
  const SCOPE = "/push/";
  // Whose notifications this browser's subscription carries.
  const OWNER = "uploadd.push.owner";
  // A browser that cannot reach its push service may never answer.
  const SUBSCRIBE_WITHIN = 30000;
  const supported = window.isSecureContext && "serviceWorker" in navigator
    && "PushManager" in window && "Notification" in window;
  const controls = [];
  let syncedFor = null;

  function session() {
    try {
      const found = JSON.parse(localStorage.getItem("uploadd.session"));
      return found && found.exp * 1000 > Date.now() ? found : null;
    } catch (error) {
      return null;
    }
  }

  async function call(method, path, body, token) {
    const headers = { Authorization: `Bearer ${token || session().token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, keepalive: true, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const answer = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error((answer && answer.detail) || response.statusText);
    return answer;
  }

  function withTimeout(promise, milliseconds, message) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), milliseconds);
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  function bytes(base64url) {
    const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(text, (c) => c.charCodeAt(0));
  }

  function sameKey(subscription, key) {
    const held = subscription.options && subscription.options.applicationServerKey;
    if (!held) return false;
    const mine = new Uint8Array(held);
    return mine.length === key.length && mine.every((b, i) => b === key[i]);
  }

  async function subscription() {
    const registration = await navigator.serviceWorker.getRegistration(SCOPE);
    return registration ? registration.pushManager.getSubscription() : null;
  }

  // The worker is outside the page's scope, so navigator.serviceWorker.ready
  // never settles for it: wait for this registration's own worker instead.
  async function activeRegistration() {
    const registration = await navigator.serviceWorker.register(WORKER, { scope: SCOPE });
    const worker = registration.installing || registration.waiting;
    if (!registration.active && worker) {
      await new Promise((resolve) => {
        worker.addEventListener("statechange", () => {
          if (worker.state === "activated" || worker.state === "redundant") resolve();
        });
      });
    }
    return registration;
  }

  async function forget(held, token) {
    const listed = await call("GET", "/push/subscriptions", undefined, token);
    for (const known of listed.results) {
      if (known.endpoint === held.endpoint) {
        await call("DELETE", `/push/subscriptions/${known.id}`, undefined, token);
      }
    }
  }

  async function enable() {
    render("busy", "Asking the browser…");
    const permission = await Notification.requestPermission();
    if (permission !== "granted") {
      render(permission === "denied" ? "denied" : "off");
      return;
    }
    const registration = await activeRegistration();
    const { public_key: publicKey } = await (await fetch("/push/key")).json();
    const key = bytes(publicKey);
    let held = await registration.pushManager.getSubscription();
    if (held && !sameKey(held, key)) {
      await held.unsubscribe();
      held = null;
    }
    if (!held) {
      render("busy", "Subscribing with the browser's push service…");
      held = await withTimeout(
        registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
        SUBSCRIBE_WITHIN, "the browser's push service did not answer",
      );
    }
    await call("POST", "/push/subscriptions", held.toJSON());
    localStorage.setItem(OWNER, String(session().sub));
    syncedFor = session().token;
    render("on");
  }

  async function disable() {
    render("busy", "Stopping…");
    const held = await subscription();
    if (held) {
      await forget(held);
      await held.unsubscribe();
    }
    localStorage.removeItem(OWNER);
    render("off");
  }

  // What this browser does now, for whoever is signed in. A subscription of
  // another user (whose session ended here) is dropped: its push service
  // then answers 410 and uploadd forgets it. One of this user's is posted
  // again once per session, so a browser that renewed it stays reachable.
  async function refresh() {
    const current = session();
    if (!supported) return render("unsupported");
    if (!current) return undefined;
    if (Notification.permission === "denied") return render("denied");
    const held = await subscription();
    if (!held) return render("off");
    if (localStorage.getItem(OWNER) !== String(current.sub)) {
      await held.unsubscribe();
      localStorage.removeItem(OWNER);
      return render("off");
    }
    if (syncedFor !== current.token && Notification.permission === "granted") {
      syncedFor = current.token;
      await call("POST", "/push/subscriptions", held.toJSON());
    }
    return render("on");
  }

  const TEXT = {
    on: ["Stop notifications", "This device is notified when a file's renditions are ready."],
    off: ["Notify me when renditions are ready", ""],
    busy: ["Notify me when renditions are ready", ""],
    denied: ["Notify me when renditions are ready",
      "Notifications from uploadd are blocked in this browser's site settings."],
    unsupported: ["Notify me when renditions are ready",
      "This browser cannot show notifications from uploadd (it needs HTTPS or localhost)."],
  };

  function render(state, note) {
    const [label, text] = TEXT[state];
    for (const { box, button, status } of controls) {
      box.dataset.state = state;
      button.textContent = label;
      button.setAttribute("aria-pressed", String(state === "on"));
      button.disabled = state === "busy" || state === "denied" || state === "unsupported";
      status.textContent = note || text;
    }
  }

  function failed(error) {
    render("off", `Notifications could not be turned on: ${error.message || error}`);
  }

  function mount(section) {
    const heading = section && section.querySelector("h2");
    if (!heading) return;
    const box = document.createElement("div");
    box.className = "push-notify";
    const button = document.createElement("button");
    button.type = "button";
    const status = document.createElement("span");
    status.className = "state";
    status.setAttribute("aria-live", "polite");
    box.append(button, " ", status);
    button.addEventListener("click", () => {
      const turningOn = button.getAttribute("aria-pressed") !== "true";
      (turningOn ? enable() : disable()).catch(failed);
    });
    heading.after(box);
    controls.push({ box, button, status });
  }

  // Signing out stops this browser's notifications for that user (its token
  // is read before app.js forgets it).
  function onSignOut() {
    const current = session();
    if (!supported || !current) return;
    subscription().then(async (held) => {
      if (!held) return;
      localStorage.removeItem(OWNER);
      await forget(held, current.token).catch(() => {});
      await held.unsubscribe();
    }).catch(() => {});
  }

  mount(document.querySelector("#view-upload"));
  mount(document.querySelector("#view-library"));
  render(supported ? "off" : "unsupported");
  const signOut = document.querySelector("#sign-out");
  if (signOut) signOut.addEventListener("click", onSignOut, true);
  if (supported) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      const open = event.data && event.data.uploaddOpen;
      if (open && new URL(open).origin === location.origin) location.hash = new URL(open).hash;
    });
  }
  window.addEventListener("hashchange", () => refresh().catch(failed));
  refresh().catch(failed);
})();
