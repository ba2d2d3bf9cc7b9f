// Drive the real posthog-js (the browser SDK) in jsdom against a portal; print one JSON report on stdout
// (tests/wire/test_sdks_node.py). The page is served from the portal's origin, as behind a reverse proxy.
// Usage: node browser.js <portal url> <service key> <correlation id> [script|json]
// `script` (the default): the page runs the scripts posthog-js adds, as a browser does (its remote config,
// /array/<key>/config.js). `json`: posthog-js may load no script (disable_external_dependency_loading), so
// it fetches the JSON config instead, as posthog-js 1.451 and later always do, and as a page whose CSP
// refuses the script gets.
'use strict';
const [portal, key, cid, mode = 'script'] = process.argv.slice(2);
const { JSDOM, requestInterceptor } = require('jsdom');
const report = { requests: [], logged: [] };

// Every request it makes and its answer, scripts included; fetch is Node's (jsdom has none), which
// posthog-js finds globally. jsdom reports a script it could not load (a 404) as a console error.
const send = globalThis.fetch;
const scripts = requestInterceptor(async (request) => {
  const response = await send(request.url, { headers: request.headers });
  report.requests.push([new URL(request.url).pathname, response.status]);
  return response;
});
const dom = new JSDOM('<!doctype html><html><body></body></html>', {
  url: `${portal}/shop/`,
  pretendToBeVisual: true,
  runScripts: 'dangerously',
  resources: { interceptors: [scripts] },
});
for (const name of ['window', 'document', 'navigator', 'localStorage', 'sessionStorage', 'location', 'XMLHttpRequest']) {
  Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true, writable: true });
}
globalThis.fetch = async (url, options = {}) => {
  const response = await send(url, options);
  report.requests.push([new URL(url).pathname, response.status]);
  return response;
};
for (const level of ['error', 'warn']) {
  console[level] = (...args) => report.logged.push(`${level}: ${args.map(String).join(' ')}`);
}

const posthog = require('posthog-js').default;
posthog.init(key, {
  api_host: `${portal}/posthog`,
  autocapture: false,
  capture_pageview: false,
  capture_pageleave: false,
  disable_session_recording: true,
  disable_surveys: true,
  disable_external_dependency_loading: mode === 'json',
});
posthog.identify('user-42', { plan: 'pro' });
posthog.capture('basket_filled', { items: 3, correlation_id: cid, name: 'Zoë ✓' });
posthog.onFeatureFlags(() => {
  report.flag = String(posthog.getFeatureFlag('new-checkout'));
  report.enabled = String(posthog.isFeatureEnabled('new-checkout'));
  report.compression = posthog.compression ?? null;
  // What the remote config script filed under the key (null when no script was run).
  report.scriptConfig = window._POSTHOG_REMOTE_CONFIG?.[key] ?? null;
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
