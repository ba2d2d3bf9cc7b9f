// Drive the real posthog-js (the browser SDK) in jsdom against a portal; print one JSON report on stdout
// (tests/wire/test_sdks_node.py). The page is served from the portal's origin, as behind a reverse proxy.
// Usage: node browser.js <portal url> <service key> <correlation id>
'use strict';
const [portal, key, cid] = process.argv.slice(2);
const { JSDOM } = require('jsdom');
const report = { requests: [], logged: [] };

const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: `${portal}/shop/`, pretendToBeVisual: true });
for (const name of ['window', 'document', 'navigator', 'localStorage', 'sessionStorage', 'location', 'XMLHttpRequest']) {
  Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true, writable: true });
}
// Every request it makes and its answer; fetch is Node's (jsdom has none), which posthog-js finds globally.
const send = globalThis.fetch;
globalThis.fetch = async (url, options = {}) => {
  const response = await send(url, options);
  report.requests.push([new URL(url).pathname, response.status]);
  return response;
};
for (const level of ['error', 'warn']) {
  console[level] = (...args) => report.logged.push(`${level}: ${args.map(String).join(' ')}`);
}

const posthog = require('posthog-js').default;
posthog.init(key, { api_host: `${portal}/posthog`, autocapture: false, capture_pageview: false, capture_pageleave: false, disable_session_recording: true, disable_surveys: true });
posthog.identify('user-42', { plan: 'pro' });
posthog.capture('basket_filled', { items: 3, correlation_id: cid, name: 'Zoë ✓' });
posthog.onFeatureFlags(() => {
  report.flag = String(posthog.getFeatureFlag('new-checkout'));
  report.enabled = String(posthog.isFeatureEnabled('new-checkout'));
  report.compression = posthog.compression ?? null;
  posthog.capture('checkout_done', { correlation_id: cid });
  // posthog-js sends its queue every few seconds: wait for it.
  setTimeout(() => {
    process.stdout.write(JSON.stringify(report) + '\n');
    process.exit(0);
  }, 5000);
});
setTimeout(() => {
  console.error('feature flags never loaded');
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0);
}, 30000);
