// uploadd's push service worker, served as /push/worker.js (scope /push/).
// Each Web Push message is the JSON uploadd sends (title, body, url, tag and
// the facts: file_id, filename, profile, ...): it becomes a notification;
// one with the same tag replaces the earlier. A click focuses an open
// uploadd page and shows the file there, or opens a new one.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function pageUrl(url) {
  try {
    const parsed = new URL(url, self.location.origin);
    return ["https:", "http:"].includes(parsed.protocol) ? parsed.href : null;
  } catch (error) {
    return null;
  }
}

self.addEventListener("push", (event) => {
  let message = {};
  if (event.data) {
    try {
      message = event.data.json();
    } catch (error) {
      message = { body: event.data.text() };
    }
  }
  const options = {
    body: message.body || "",
    data: { url: pageUrl(message.url || "/") || self.location.origin + "/", message },
  };
  if (message.tag) options.tag = message.tag;
  event.waitUntil(self.registration.showNotification(message.title || "uploadd", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.url) || self.location.origin + "/";
  event.waitUntil((async () => {
    // The page is outside this worker's scope: it is found among all of
    // the origin's windows and told where to go.
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const page = windows.find((client) => new URL(client.url).origin === self.location.origin);
    if (page) {
      page.postMessage({ uploaddOpen: target });
      await page.focus();
    } else {
      await self.clients.openWindow(target);
    }
  })());
});
